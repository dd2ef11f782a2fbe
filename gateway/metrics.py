"""/metrics in the Prometheus text format, read at scrape time from the live objects.

A custom collector asks the hub, caps, writer and freshness tracker for their counters
when Prometheus scrapes, so the hot paths carry no metrics code at all; prometheus_client's
process collector adds the process's memory, CPU and descriptors. deploy/grafana-dashboard.json
charts them (tests/test_deploy.py checks that every metric it queries is exported here).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import trio
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from . import gcstats
from .writer import BATCH_MS_BUCKETS, wall_ms

if TYPE_CHECKING:
    from .handle import Gateway


class GatewayCollector(Collector):
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def collect(self) -> Iterator[Metric]:
        gw, hub = self.gw, self.gw.hub.statistics()
        conns = GaugeMetricFamily("gateway_stream_connections", "Open SSE and WebSocket streams",
                                  labels=["transport"])
        for transport, n in sorted(hub.by_transport.items()):
            conns.add_metric([transport], n)
        yield conns
        tiers = GaugeMetricFamily("gateway_stream_connections_by_tier", "Open streams by key tier", labels=["tier"])
        for tier, n in sorted(gw.caps.by_tier.items()):
            tiers.add_metric([tier or "unknown"], n)
        yield tiers
        yield CounterMetricFamily("gateway_frames_published", "Frames published to the hub", value=hub.published)
        yield CounterMetricFamily("gateway_frames_delivered", "Frames handed to subscribers", value=hub.delivered)
        yield CounterMetricFamily("gateway_slow_consumer_cuts", "Subscribers cut off for falling behind",
                                  value=hub.slow_consumer_cuts)
        yield CounterMetricFamily("gateway_connection_cap_rejections", "Streams refused at the per-key cap",
                                  value=gw.caps.rejections)
        w = gw.writer
        yield CounterMetricFamily("gateway_ingest_rows", "Rows committed by the writer", value=w.rows_committed)
        yield CounterMetricFamily("gateway_drops", "Drops detected and published", value=w.drops_published)
        yield GaugeMetricFamily("gateway_last_event_id", "Highest stream-log id", value=gw.view.last_seq)
        buckets, total = [], 0
        for bound, count in zip((*BATCH_MS_BUCKETS, float("inf")), w.batch_ms_buckets, strict=True):
            total += count
            buckets.append((str(bound / 1000) if bound != float("inf") else "+Inf", total))
        yield HistogramMetricFamily("gateway_writer_batch_seconds", "Writer batch latency: build, commit, publish",
                                    buckets=buckets, sum_value=w.batch_ms_sum / 1000)
        fresh = GaugeMetricFamily("gateway_source_age_seconds", "Seconds since a source's last event",
                                  labels=["source", "sport_key"])
        now = wall_ms()
        for sport in sorted(gw.view.freshness.sports()):
            for row in gw.view.freshness.rows(sport, now, gw.config.sources.stale_after_s):
                fresh.add_metric([str(row["source"]), sport], float(row["seconds_since_last_event"]))  # type: ignore[arg-type]
        yield fresh
        yield from _connections(gw)
        yield from _gc_pauses()
        if gw.cluster is not None:  # a cluster's writer or edge (gateway/cluster/)
            yield from gw.cluster.metrics()


def _gc_pauses() -> Iterator[Metric]:
    pauses = gcstats.PAUSES
    if pauses is None:  # installed by `gateway serve` only
        return
    hist = HistogramMetricFamily("gateway_gc_pause_seconds", "Garbage-collector passes (CPU time of each)",
                                 labels=["generation"])
    longest = GaugeMetricFamily("gateway_gc_pause_longest_seconds", "Longest garbage-collector pass since start (CPU)",
                                labels=["generation"])
    wall = GaugeMetricFamily("gateway_gc_pause_longest_wall_seconds",
                             "Longest garbage-collector pass since start, wall time (includes the OS running others)",
                             labels=["generation"])
    for gen in range(3):
        cumulative, buckets = 0, []
        for bound, n in zip((*gcstats.BUCKETS_S, float("inf")), pauses.buckets[gen], strict=True):
            cumulative += n
            buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
        hist.add_metric([str(gen)], buckets, pauses.total[gen])
        longest.add_metric([str(gen)], pauses.longest[gen])
        wall.add_metric([str(gen)], pauses.longest_wall[gen])
    yield hist
    yield longest
    yield wall


def _connections(gw: Gateway) -> Iterator[Metric]:
    """What hostile or broken clients cost: tasks, pending connections, cuts (hypercorn_patches.py)."""
    yield GaugeMetricFamily("gateway_ingest_kept_connections", "Keep-alive ingest connections served without Hypercorn",
                            value=gw.ingest_kept)
    yield CounterMetricFamily("gateway_ingest_kept", "Ingest connections taken off Hypercorn after a 200",
                              value=gw.ingest_kept_total)
    yield GaugeMetricFamily("gateway_tasks", "Trio tasks in the process", value=_count_tasks())
    limits = gw.limits
    if limits is None:
        return
    yield GaugeMetricFamily("gateway_pending_connections", "Connections without a whole request yet",
                            value=len(limits.pending))
    yield CounterMetricFamily("gateway_pending_connections_evicted", "Oldest pending connections closed at the cap",
                              value=limits.evicted)
    yield CounterMetricFamily("gateway_request_timeouts", "Requests whose head or body stalled past its timeout",
                              value=limits.timed_out)
    yield CounterMetricFamily("gateway_connection_failures_contained", "Connections closed after an internal error",
                              value=limits.contained)


def _count_tasks() -> int:
    root = trio.lowlevel.current_root_task()
    todo, n = ([root] if root is not None else []), 0
    while todo:
        task = todo.pop()
        n += 1
        todo.extend(child for nursery in task.child_nurseries for child in nursery.child_tasks)
    return n


def registry_for(gw: Gateway) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(gw))
    ProcessCollector(registry=registry)  # process_*: RSS, CPU seconds, open fds (read from /proc at scrape)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
