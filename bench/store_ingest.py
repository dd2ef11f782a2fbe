"""Ingest throughput of the store: rows/s committed.

    python bench/store_ingest.py [--batches 50] [--rows 1000] [--http-duration 10] [--http-batch 500]
                                 [--http-clients 2] [--skip-inprocess] [--skip-http]

(a) In process: the writer's own batch building (board, drop detection, frames) turns price
    changes into a realistic WriteBatch of about `--rows` rows (quote rows, event rows and
    stream_log rows for the odds_update and odds_drop frames), then `Store.write` commits it
    (one transaction in a worker thread, WAL, synchronous=NORMAL). Reported: rows/s committed,
    ms per batch, and separately the build cost in the Trio thread. Two synthetic variants
    isolate the tables: 1000 quote rows only, 1000 stream_log rows only.
(b) End to end: a gateway subprocess; `--http-clients` processes POST batches of
    `--http-batch` flat quotes to /v1/ingest/odds back to back (each waits for its 200, which
    comes after the commit) for `--http-duration` s, each with its own ingest key. Rows
    committed = quotes accepted (from the 200 replies) + stream_log rows created in the
    window (counted with sqlite3 on the DB file after a clean shutdown).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trio

from bench._common import (
    BOOKS,
    HOST,
    SPORTS,
    CpuMeter,
    SystemCpu,
    add_quiet_args,
    percentiles,
    print_machine,
    print_table,
    profile_server,
    start_server,
    wait_quiet,
    write_config,
)
from bench._loadgen import Mover, build_market, run_loadgen
from bench._sseclient import latencies_of
from gateway.core.logcodec import STREAM_OF

# -- (a) in process -------------------------------------------------------------------------

def _quotes(mover: Mover, n: int, now_ms: int) -> list[Any]:
    from gateway.core.parse import parse_flat_quote

    body, _ = mover.batch(n)
    return [parse_flat_quote(r, now_ms=now_ms) for r in json.loads(body)]


def in_process(batches: int, rows: int, warmup: int = 3) -> list[tuple[str, object]]:
    from gateway.app import open_gateway
    from gateway.config import load_config
    from gateway.store import LogRow, WriteBatch
    from gateway.writer import _Item, wall_ms

    tmp = Path(tempfile.mkdtemp(prefix="gwbench-store-"))
    try:
        config = load_config(write_config(tmp, tmp / "store.db"))
        gw = open_gateway(config)
        writer, store = gw.writer, gw.store
        keys = build_market(list(SPORTS), list(BOOKS), 8, "s", 7)
        mover = Mover(keys, 0.1, 10, 8)
        # baselines: every key once (sets the board and the drop detector; no drops)
        base = [q for body in mover.baseline_bodies(10_000) for q in _parse(body)]
        b0, _ = writer._build([_Item(quotes=base, source="bench")], wall_ms())
        trio.run(store.write, b0)

        # how many price changes make a batch of ~`rows` rows
        probe, _ = writer._build([_Item(quotes=_quotes(mover, rows // 3, wall_ms()), source="bench")], wall_ms())
        trio.run(store.write, probe)
        per_batch = max(1, round(rows // 3 * rows / max(1, len(probe))))
        work = [[_Item(quotes=_quotes(mover, per_batch, wall_ms()), source="bench")]
                for _ in range(batches + warmup)]

        build_s = 0.0
        built = []
        for items in work:
            t = time.perf_counter()
            built.append(writer._build(items, wall_ms())[0])
            build_s += time.perf_counter() - t
        sizes = [len(b) for b in built[warmup:]]
        kinds = {"quotes": sum(len(b.quotes) for b in built[warmup:]),
                 "events": sum(len(b.events) for b in built[warmup:]),
                 "stream_log": sum(len(b.log) for b in built[warmup:])}
        payload_b = sum(len(r.payload) for b in built[warmup:] for r in b.log) / max(1, kinds["stream_log"])

        async def commit_all(batch_list: list[WriteBatch]) -> list[float]:
            times = []
            for b in batch_list:
                t = time.perf_counter()
                await store.write(b)
                times.append(time.perf_counter() - t)
            return times

        trio.run(commit_all, built[:warmup])
        mixed = trio.run(commit_all, built[warmup:])

        # synthetic variants: one table at a time
        now = wall_ms()
        tmpl = built[-1].log[0]
        seq = writer._next_seq + 1_000_000
        log_only = []
        for _ in range(batches):
            b = WriteBatch()
            b.log = [LogRow(seq + i, tmpl.stream, tmpl.sport_key, tmpl.event_id, tmpl.live, tmpl.created_ms,
                            tmpl.payload, dict(tmpl.data or {}, id=seq + i)) for i in range(rows)]
            seq += rows
            log_only.append(b)
        quote_only = []
        for _ in range(batches):
            b = WriteBatch()
            qs = _quotes(mover, rows, now)
            b.quotes = [(q.event_id, q.bookmaker, q.market_key, q.outcome, q.player or "", q.point, q.price,
                         q.observed_at_ms) for q in qs]
            quote_only.append(b)
        t_log = trio.run(commit_all, log_only)
        t_quote = trio.run(commit_all, quote_only)
        store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def line(name: str, times: list[float], nrows: list[int]) -> tuple[str, object]:
        ms = percentiles([t * 1000 for t in times], (50, 99, 100))
        return (name, f"{sum(nrows) / sum(times):,.0f} rows/s; ms per batch p50 {ms[50]:.1f}, p99 {ms[99]:.1f}, "
                      f"max {ms[100]:.1f}")

    n_quotes = per_batch * batches
    return [
        ("realistic batch (writer-built)", f"{per_batch} price changes -> {sum(sizes) / len(sizes):.0f} rows "
                                           f"({kinds['quotes'] // batches} quotes, {kinds['events'] // batches} "
                                           f"events, {kinds['stream_log'] // batches} stream_log of "
                                           f"{payload_b:.0f} B)"),
        line("Store.write, realistic batches", mixed, sizes),
        ("  = price changes/s committed", f"{n_quotes / sum(mixed):,.0f}"),
        ("Writer._build (Trio thread), per change", f"{1e6 * build_s / (per_batch * len(work)):.1f} us "
                                                    f"({1e3 * build_s / len(work):.1f} ms per batch)"),
        line(f"Store.write, {rows} stream_log rows only", t_log, [rows] * batches),
        line(f"Store.write, {rows} quote rows only", t_quote, [rows] * batches),
    ]


def _parse(body: bytes) -> list[Any]:
    from gateway.core.parse import parse_flat_quote
    from gateway.writer import wall_ms

    now = wall_ms()
    return [parse_flat_quote(r, now_ms=now) for r in json.loads(body)]


# -- (b) over HTTP ----------------------------------------------------------------------------

def over_http(duration: float, batch: int, clients: int, warmup: float,
              profile: bool = False) -> tuple[list[tuple[str, object]], str | None]:
    ctx = mp.get_context("fork")
    server = start_server()
    procs = []
    try:
        keys = [server.create_key(f"bench-ingest-{i}", "enterprise", ["ingest"]) for i in range(clients)]
        pipes = []
        for i, key in enumerate(keys):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=run_loadgen, name=f"ingest-{i}", args=(child, HOST, server.port, key),
                            kwargs={"rate": 0.0, "interval_s": 0.0, "sports": list(SPORTS), "books": list(BOOKS),
                                    "events_per_sport": 4, "big_fraction": 0.1, "threshold": 10, "seed": 100 + i,
                                    "tag": f"c{i}", "batch_rows": batch})
            p.start()
            procs.append(p)
            pipes.append(parent)
        for parent in pipes:
            if not parent.poll(120):
                raise TimeoutError("a load generator did not post its baselines in 120 s")
            parent.recv()
        t0 = time.time() + warmup
        t1 = t0 + duration
        for parent in pipes:
            parent.send(("go", t0 * 1000, t1 * 1000, t1 + 0.5))
        meter = CpuMeter({"server": server.pid} | {p.name: p.pid for p in procs})
        time.sleep(max(0.0, t0 - time.time()))
        system = SystemCpu()
        system.start()
        meter.start()
        prof = profile_server(server.pid, min(8.0, duration - 1), tag="ingest") if profile else None
        time.sleep(max(0.0, t1 - time.time()))
        cpu = meter.stop()
        machine = system.stop()
        results = []
        for parent in pipes:
            if not parent.poll(duration + 120):
                raise TimeoutError("a load generator did not report")
            results.append(parent.recv()[1])
        for p in procs:
            p.join(10)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(5)
        code = server.stop()
    try:
        if code not in (0, None):
            print(f"warning: server exited with {code}\n{server.log_tail()}", file=sys.stderr)
        with sqlite3.connect(server.db) as db:
            by_stream = {STREAM_OF[n]: c for n, c in db.execute(
                "SELECT topic % 4, count(*) FROM stream_log WHERE ms >= ? AND ms < ? GROUP BY 1",
                (int(t0 * 1000), int(t1 * 1000)))}
            log_rows = sum(by_stream.values())
    finally:
        server.cleanup()
    quotes = sum(r["sent"] for r in results)
    reqs = sum(r["requests"] for r in results)
    post: list[float] = []
    statuses: dict[int, int] = {}
    for r in results:
        post.extend(latencies_of({"latencies": r["post_ms"]}))
        for k, v in r["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    q = percentiles(post, (50, 99, 100))
    server_cpu = cpu.pop("server")
    rows: list[tuple[str, object]] = [
        ("setup", f"{clients} client processes x back-to-back POSTs of {batch} flat quotes, {duration:g} s"),
        ("rows/s committed (quotes + stream_log)", (quotes + log_rows) / duration),
        ("  quotes accepted/s", quotes / duration),
        ("  stream_log rows/s", f"{log_rows / duration:,.0f} {by_stream}"),
        ("requests/s", reqs / duration),
        ("request latency p50 / p99 / max ms", f"{q[50]:.1f} / {q[99]:.1f} / {q[100]:.1f}"),
        ("server CPU % (process tree)", server_cpu),
    ]
    rows += [(f"{name} CPU %", v) for name, v in cpu.items()]
    ours = sum(cpu.values()) / 100 + server_cpu / 100
    other = (machine["busy"] - machine["irq"]) * (os.cpu_count() or 1) / 100 - ours
    rows.append(("machine busy % of all cores; other processes, cores",
                 f"{machine['busy']:.0f}; {max(0.0, other):.2f}"))
    rows += [("HTTP statuses", statuses), ("rows rejected", sum(r["rejected"] for r in results))]
    return rows, prof


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=50, help="(a) batches committed per variant")
    ap.add_argument("--rows", type=int, default=1000, help="(a) rows per batch")
    ap.add_argument("--http-duration", type=float, default=10.0)
    ap.add_argument("--http-warmup", type=float, default=2.0)
    ap.add_argument("--http-batch", type=int, default=500)
    ap.add_argument("--http-clients", type=int, default=2)
    ap.add_argument("--skip-inprocess", action="store_true")
    ap.add_argument("--skip-http", action="store_true")
    ap.add_argument("--profile", action="store_true", help="py-spy the server during (b) (figures then suffer)")
    add_quiet_args(ap)
    args = ap.parse_args(argv)
    wait_quiet(args)
    print_machine()
    if not args.skip_inprocess:
        print_table("(a) store write path, in process", in_process(args.batches, args.rows))
    if not args.skip_http:
        rows, prof = over_http(args.http_duration, args.http_batch, args.http_clients, args.http_warmup,
                               args.profile)
        print_table("(b) POST /v1/ingest/odds end to end", rows)
        if prof:
            print(prof)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
