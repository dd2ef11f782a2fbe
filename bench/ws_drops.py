"""WebSocket drop-stream fan-out under load: the twin of sse_drops.py on `/ws/live`.

    python bench/ws_drops.py [--subscribers 1000] [--rate 1000] [--duration 20] [--warmup 5]
                             [--clients 2] [--sports 10] [--compare-sse] [--profile]

Setup: a gateway subprocess (fresh temp DB, --no-feeds). N WebSocket subscribers on
`/ws/live/{sport}?types=odds_drop&threshold=10&heartbeat_s=30`, spread evenly over `--sports`
real sport keys, held by K client processes (raw non-blocking sockets, a minimal RFC 6455
client in `_wsclient.py`, one selectors loop each). The load generator is sse_drops.py's:
flat quotes POSTed every 20 ms (R/50 per request), about one change in ten moves 10-30 cents.
Its events commence 30 min in the past, so they are in play (`/ws/live` carries only events
that started up to 4 h ago). Baselines first, then `--warmup` s, then a `--duration` s window.

Latency of a drop = the client's receipt wall time - the message's `timestamp` (set by the
server when it detected the drop, before the SQLite commit and the fan-out).

`--compare-sse` first runs the same measurement on the SSE drop stream
(`/v1/odds-drop/{sport}?threshold=10`, the `_sseclient.py` subscribers, the same in-play
market), on a fresh server, and prints both side by side. Both transports are written
directly from the publishing task (gateway/web/direct.py).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _sseclient, _wsclient
from bench._common import (
    BOOKS,
    HOST,
    PROFILER,
    SPORTS,
    CpuMeter,
    Server,
    SystemCpu,
    add_quiet_args,
    open_fds,
    percentiles,
    print_machine,
    print_table,
    profile_server,
    raise_nofile,
    rss_kib,
    start_server,
    wait_quiet,
)
from bench._loadgen import run_loadgen

SUBS_PER_KEY = 400  # enterprise: 1000 streams per key (shared by SSE and WS); stay well under it
IN_PLAY_OFFSET_S = -1800.0  # events commenced 30 min ago: live for /ws/live


# -- pieces shared with slow_consumer.py ------------------------------------------------------

def recv_msg(conn: Any, what: str, timeout: float) -> Any:
    if not conn.poll(timeout):
        raise TimeoutError(f"no {what!r} message within {timeout} s")
    msg = conn.recv()
    if msg[0] != what:
        raise RuntimeError(f"expected {what!r}, got {msg[0]!r}")
    return msg[1]


def merge(dicts: list[dict[Any, int]]) -> dict[Any, int]:
    out: dict[Any, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


def latencies_of(raw: bytes) -> list[float]:
    import array

    out = array.array("d")
    out.frombytes(raw)
    return list(out)


def drop_path(transport: str, sport: str, threshold: int) -> str:
    if transport == "ws":
        return f"/ws/live/{sport}?types=odds_drop&threshold={threshold}&heartbeat_s=30"
    return f"/v1/odds-drop/{sport}?threshold={threshold}&heartbeat_s=30"


_METRIC = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def metrics(server: Server) -> dict[str, float]:
    """GET /metrics, parsed: {'name{labels}': value}."""
    try:
        status, body = server.get("/metrics", timeout=5)
    except OSError:
        return {}
    if status != 200:
        return {}
    out: dict[str, float] = {}
    for line in body.decode(errors="replace").splitlines():
        m = _METRIC.match(line)
        if m and not line.startswith("#"):
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


@dataclass
class Load:
    """A running load generator and subscriber client processes."""

    lg: mp.process.BaseProcess
    lg_conn: Any
    clients: list[tuple[mp.process.BaseProcess, Any]] = field(default_factory=list)
    procs: list[mp.process.BaseProcess] = field(default_factory=list)


def start_load(args: argparse.Namespace, server: Server, sports: list[str], targets: list[tuple[str, str]],
               transport: str, nofile: int, procs: list[mp.process.BaseProcess],
               commence_offset_s: float = IN_PLAY_OFFSET_S) -> Load:
    """Start the load generator (baselines) and `args.clients` subscriber processes over `targets`."""
    ctx = mp.get_context("fork")
    ingest_key = server.create_key("bench-ingest", "enterprise", ["ingest"])
    lg_parent, lg_child = ctx.Pipe()
    lg = ctx.Process(target=run_loadgen, name="loadgen", args=(lg_child, HOST, server.port, ingest_key),
                     kwargs={"rate": args.rate, "interval_s": args.interval_ms / 1000, "sports": sports,
                             "books": list(BOOKS), "events_per_sport": args.events_per_sport,
                             "big_fraction": args.big_fraction, "threshold": args.threshold, "seed": args.seed,
                             "commence_offset_s": commence_offset_s})
    lg.start()
    procs.append(lg)
    load = Load(lg, lg_parent, procs=procs)
    client_main = _wsclient.run_client if transport == "ws" else _sseclient.run_client
    per_client = math.ceil(len(targets) / max(1, args.clients))
    for k in range(args.clients):
        share = targets[k * per_client:(k + 1) * per_client]
        if not share:
            continue
        parent, child = ctx.Pipe()
        p = ctx.Process(target=client_main, name=f"{transport}-client-{k}",
                        args=(child, HOST, server.port, share, nofile))
        p.start()
        procs.append(p)
        load.clients.append((p, parent))
    return load


def subscriber_targets(server: Server, transport: str, sports: list[str], n: int, threshold: int,
                       prefix: str = "bench-sub") -> list[tuple[str, str]]:
    keys = [server.create_key(f"{prefix}-{i}", "enterprise") for i in range(max(1, math.ceil(n / SUBS_PER_KEY)))]
    return [(drop_path(transport, sports[i % len(sports)], threshold), keys[i // SUBS_PER_KEY]) for i in range(n)]


def wait_connected(load: Load, n: int) -> tuple[dict[str, Any], list[dict[str, Any]], float]:
    t = time.monotonic()
    base = recv_msg(load.lg_conn, "ready", 120)
    stats = [recv_msg(parent, "connected", 180) for _, parent in load.clients]
    connect_s = time.monotonic() - t
    connected = sum(s["connected"] for s in stats)
    hs = percentiles([ms for s in stats for ms in s["handshake_ms"]], (50, 99))
    print(f"baselines: {base['keys']} keys in {base['baseline_s']:.2f} s ({base['errors']} errors); "
          f"subscribers connected: {connected}/{n} in {connect_s:.1f} s "
          f"(handshake p50 {hs[50]:.1f} ms, p99 {hs[99]:.1f} ms); failed: {sum(s['failed'] for s in stats)} "
          f"{merge([s['statuses'] for s in stats])} {merge([s['connect_errors'] for s in stats])}", flush=True)
    return base, stats, connect_s


def join_all(procs: list[mp.process.BaseProcess]) -> None:
    for p in procs:
        p.join(5)
        if p.is_alive():
            p.terminate()
            p.join(5)


def stop_server(server: Server, keep: bool) -> None:
    code = server.stop()
    if code not in (0, None):
        print(f"warning: server exited with {code}\n{server.log_tail()}", file=sys.stderr)
    if keep:
        print(f"kept {server.tmp}")
    server.cleanup()


# -- the measurement -----------------------------------------------------------------------------

def measure(args: argparse.Namespace, transport: str, sports: list[str]) -> dict[str, Any]:
    """One run on a fresh server; prints its table and returns its figures."""
    nofile = raise_nofile(max(4096, args.subscribers * 2 + 1024))
    overrides = {tuple(kv.split("=", 1)[0].split(".", 1)): kv.split("=", 1)[1] for kv in args.set}
    server = start_server(overrides, keep_tmp=args.keep)  # type: ignore[arg-type]
    procs: list[mp.process.BaseProcess] = []
    try:
        targets = subscriber_targets(server, transport, sports, args.subscribers, args.threshold)
        load = start_load(args, server, sports, targets, transport, nofile, procs)
        _, _, _ = wait_connected(load, args.subscribers)
        now = time.time()
        t0 = now + args.warmup
        t1 = t0 + args.duration
        stop_at = t1 + 1.0
        load.lg_conn.send(("go", t0 * 1000, t1 * 1000, stop_at))
        for _, parent in load.clients:
            parent.send(("window", t0 * 1000, t1 * 1000, stop_at + 0.5))
        meter = CpuMeter({"server": server.pid})
        client_meter = CpuMeter({p.name: p.pid for p, _ in load.clients} | {"loadgen": load.lg.pid}, tree=False)
        rss_before = rss_kib(server.pid)
        time.sleep(max(0.0, t0 - time.time()))
        system = SystemCpu()
        system.start()
        meter.start()
        client_meter.start()
        cuts_before = server.log_count("cutting off a slow")
        profile = None
        if args.profile:
            time.sleep(max(0.0, args.duration / 2 - 5))
            profile = profile_server(server.pid, min(10.0, args.duration - 1), tag=transport)
        time.sleep(max(0.0, t1 - time.time()))
        cpu = meter.stop()
        ccpu = client_meter.stop()
        machine = system.stop()
        rss_after = rss_kib(server.pid)
        fds = open_fds(server.pid)
        cuts = server.log_count("cutting off a slow") - cuts_before
        m = metrics(server)
        lg_res = recv_msg(load.lg_conn, "result", args.duration + 120)
        results = [recv_msg(parent, "result", 120) for _, parent in load.clients]
        fig = _figures(args, transport, sports, lg_res, results, cpu, ccpu, machine, rss_before, rss_after, fds,
                       cuts, m)
        _print(args, fig)
        if profile:
            print(profile)
        return fig
    finally:
        join_all(procs)
        stop_server(server, args.keep)


def _figures(args: argparse.Namespace, transport: str, sports: list[str], lg: dict[str, Any],
             results: list[dict[str, Any]], cpu: dict[str, float], ccpu: dict[str, float],
             machine: dict[str, float], rss_before: int, rss_after: int, fds: int, cuts: int,
             m: dict[str, float]) -> dict[str, Any]:
    dur = args.duration
    lat: list[float] = []
    ids: set[int] = set()
    for r in results:
        lat.extend(latencies_of(r["latencies"]))
        ids.update(r["ids"])
    post = latencies_of(lg["post_ms"])
    deliveries = sum(r["drops_window"] for r in results)
    expected = len(ids) * args.subscribers / len(sports)
    ours = (cpu["server"] + sum(ccpu.values())) / 100
    ncpu = os.cpu_count() or 1
    other = max(0.0, (machine["busy"] - machine["irq"]) * ncpu / 100 - ours)
    if transport == "ws":
        units = sum(r["recvs_window"] for r in results)
        unit_name = "recv() calls with data"
    else:
        units = sum(r["writes_window"] for r in results)
        unit_name = "server writes (HTTP chunks)"
    return {
        "transport": transport,
        "connected": sum(r["connected"] for r in results),
        "rate": lg["sent"] / dur,
        "requests": lg["requests"] / dur,
        "post": percentiles(post, (50, 99)),
        "crossing": lg["crossing"] / dur,
        "drops": len(ids) / dur,
        "deliveries": deliveries / dur,
        "ratio": deliveries / expected if expected else float("nan"),
        "units": units / dur,
        "unit_name": unit_name,
        "per_unit": deliveries / units if units else float("nan"),
        "mbs": sum(r["bytes_window"] for r in results) / dur / 1e6,
        "lat": percentiles(lat, (50, 90, 99, 100)),
        "cpu": cpu["server"],
        "rss": (rss_before / 1024, rss_after / 1024),
        "fds": fds,
        "ccpu": {k: v for k, v in ccpu.items() if k != "loadgen"},
        "lgcpu": ccpu["loadgen"],
        "busy": machine,
        "other": other,
        "cuts": cuts,
        "metric_cuts": m.get("gateway_slow_consumer_cuts_total", float("nan")),
        "slow_frames": sum(r["slow_consumer"] for r in results),
        "disconnects": sum(r["disconnects"] for r in results),
        "close_codes": merge([r.get("close_codes", {}) for r in results]),
        "statuses": lg["statuses"],
        "rejected": lg["rejected"],
        "heartbeats": sum(r["heartbeats"] for r in results),
        "pings": sum(r.get("pings", 0) for r in results),
        "errors": sum(r.get("error_messages", r["slow_consumer"]) for r in results),
    }


def _print(args: argparse.Namespace, f: dict[str, Any]) -> None:
    lq, pq = f["lat"], f["post"]
    b = f["busy"]
    rows: list[tuple[str, object]] = [
        ("subscribers (connected)", f"{args.subscribers} ({f['connected']}) over {args.sports} sports, "
                                    f"{args.clients} client processes"),
        ("price changes/s target / achieved", f"{args.rate:g} / {f['rate']:.0f}"),
        ("ingest requests/s", f["requests"]),
        ("ingest POST p50 / p99 ms", f"{pq[50]:.1f} / {pq[99]:.1f}"),
        ("threshold-crossing changes sent/s", f["crossing"]),
        ("drops/s published (distinct ids seen)", f["drops"]),
        ("deliveries/s (all clients)", f["deliveries"]),
        ("deliveries / (distinct drops x subs per sport)", f"{f['ratio']:.3f}"),
        (f"{f['unit_name']}/s", f["units"]),
        ("drop messages per unit", f["per_unit"]),
        ("MB/s received", f["mbs"]),
        ("latency p50 ms", lq[50]),
        ("latency p90 ms", lq[90]),
        ("latency p99 ms", lq[99]),
        ("latency max ms", lq[100]),
        ("server CPU % (process tree)", f["cpu"]),
        ("server RSS MiB before / after window", f"{f['rss'][0]:.0f} / {f['rss'][1]:.0f}"),
        ("server open fds", f["fds"]),
        ("loadgen CPU %", f["lgcpu"]),
    ]
    rows += [(f"{name} CPU %", v) for name, v in f["ccpu"].items()]
    rows += [
        ("machine busy % of all cores (irq+softirq %, steal %)",
         f"{b['busy']:.0f} ({b['irq']:.0f}, {b['steal']:.0f})"),
        ("other processes on the machine, cores", f"{f['other']:.2f}"),
        ("slow-consumer cuts (server log / metric / error frames)",
         f"{f['cuts']} / {f['metric_cuts']:.0f} / {f['slow_frames']}"),
        ("error messages received", f["errors"]),
        ("disconnects (server ended a stream)", f["disconnects"]),
        ("close codes received", f["close_codes"]),
        ("ingest HTTP statuses", f["statuses"]),
        ("ingest rows rejected", f["rejected"]),
        ("heartbeats / transport pings received", f"{f['heartbeats']} / {f['pings']}"),
    ]
    name = "WebSocket /ws/live" if f["transport"] == "ws" else "SSE /v1/odds-drop"
    print_table(f"{name} drops: {args.subscribers} subscribers, {args.rate:g} changes/s, {args.duration:g} s window",
                rows)


def _compare(runs: list[dict[str, Any]]) -> None:
    heads = ["", *("SSE" if r["transport"] == "sse" else "WebSocket" for r in runs)]
    keys: list[tuple[str, Any]] = [
        ("latency p50 ms", lambda r: r["lat"][50]),
        ("latency p90 ms", lambda r: r["lat"][90]),
        ("latency p99 ms", lambda r: r["lat"][99]),
        ("latency max ms", lambda r: r["lat"][100]),
        ("deliveries/s", lambda r: r["deliveries"]),
        ("delivered / expected", lambda r: f"{r['ratio']:.3f}"),
        ("drops/s published", lambda r: r["drops"]),
        ("ingest requests/s", lambda r: r["requests"]),
        ("ingest POST p50 ms", lambda r: r["post"][50]),
        ("server CPU %", lambda r: r["cpu"]),
        ("server RSS MiB after", lambda r: r["rss"][1]),
        ("client CPU % (per process)", lambda r: " / ".join(f"{v:.1f}" for v in r["ccpu"].values())),
        ("other load, cores", lambda r: f"{r['other']:.2f}"),
        ("errors, disconnects", lambda r: f"{r['errors']}, {r['disconnects']}"),
    ]
    print_table("SSE vs WebSocket, same load", [[name, *(get(r) for r in runs)] for name, get in keys], heads)
    sse = next(r for r in runs if r["transport"] == "sse")
    ws = next(r for r in runs if r["transport"] == "ws")
    print(f"\nSSE vs WS: p50 {sse['lat'][50]:.1f} vs {ws['lat'][50]:.1f} ms, p99 {sse['lat'][99]:.1f} vs "
          f"{ws['lat'][99]:.1f} ms, server CPU {sse['cpu']:.0f} vs {ws['cpu']:.0f} %, deliveries/s "
          f"{sse['deliveries']:.0f} vs {ws['deliveries']:.0f}", flush=True)


def add_load_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--rate", type=float, default=1000.0, help="price changes per second")
    ap.add_argument("--duration", type=float, default=20.0, help="measuring window, s")
    ap.add_argument("--warmup", type=float, default=5.0, help="load before the window, s")
    ap.add_argument("--clients", type=int, default=2, help="subscriber client processes")
    ap.add_argument("--sports", type=int, default=10, help=f"sports used (1..{len(SPORTS)})")
    ap.add_argument("--interval-ms", type=float, default=20.0, help="ingest request interval")
    ap.add_argument("--events-per-sport", type=int, default=4)
    ap.add_argument("--big-fraction", type=float, default=0.1, help="share of moves of 10-30 cents")
    ap.add_argument("--threshold", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (DB, server log)")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="a config override, e.g. server.gc_young_threshold=700 (CPython's default)")
    add_quiet_args(ap)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subscribers", type=int, default=1000)
    add_load_args(ap)
    ap.add_argument("--compare-sse", action="store_true",
                    help="also run the SSE drop stream at the same settings (first) and compare")
    ap.add_argument("--profile", action="store_true",
                    help=f"py-spy the server for 10 s mid-window (needs {PROFILER})")
    args = ap.parse_args(argv)
    args.sports = max(1, min(args.sports, len(SPORTS)))
    sports = list(SPORTS[:args.sports])
    wait_quiet(args)
    print_machine()
    runs = []
    if args.compare_sse:
        runs.append(measure(args, "sse", sports))
        wait_quiet(args)
    runs.append(measure(args, "ws", sports))
    if args.compare_sse:
        _compare(runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
