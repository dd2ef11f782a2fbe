"""Server memory per idle SSE (or WebSocket) stream, and the longest GC pause meanwhile.

    python bench/sse_idle_memory.py [--count 2000] [--clients 2] [--settle 5]
    python bench/sse_idle_memory.py --idle-count 10000
    python bench/sse_idle_memory.py --transport ws          # WebSocket streams (/ws/odds/{sport})
    python bench/sse_idle_memory.py --transport mixed       # half of each

Opens `--count` idle drop streams (`/v1/odds-drop/{sport}?threshold=10&heartbeat_s=30`, no
ingest, so nothing but the `connected` frame is sent) from client processes, and reports the
server's RSS (process tree, /proc/PID/status VmRSS) before and after, after a settle time:
(after - before) / count in KiB. The server is warmed first with a few streams opened and
closed, so one-off imports and allocations do not count. RLIMIT_NOFILE is raised in this
process before anything is spawned, so the server and the clients inherit it.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (
    HOST,
    SPORTS,
    Server,
    add_quiet_args,
    cpu_seconds,
    open_fds,
    print_machine,
    print_table,
    raise_nofile,
    rss_kib,
    start_server,
    wait_quiet,
)
from bench._sseclient import run_client
from bench._wsclient import run_client as run_ws_client

SUBS_PER_KEY = 400  # enterprise: 1000 streams per key, 600-request burst


def _recv(conn: Any, what: str, timeout: float) -> Any:
    if not conn.poll(timeout):
        raise TimeoutError(f"no {what!r} message within {timeout} s")
    msg = conn.recv()
    if msg[0] != what:
        raise RuntimeError(f"expected {what!r}, got {msg[0]!r}")
    return msg[1]


def open_streams(server: Server, targets: list[tuple[str, str]], clients: int, nofile: int,
                 ) -> tuple[list[tuple[mp.process.BaseProcess, Any]], list[dict[str, Any]], float]:
    ctx = mp.get_context("fork")
    per = math.ceil(len(targets) / clients)
    out = []
    t = time.monotonic()
    for k in range(clients):
        share = targets[k * per:(k + 1) * per]
        if share:
            parent, child = ctx.Pipe()
            ws = share[0][0].startswith("/ws/")  # each client process speaks one transport
            p = ctx.Process(target=run_ws_client if ws else run_client, name=f"idle-{k}",
                            args=(child, HOST, server.port, share, nofile))
            p.start()
            out.append((p, parent))
    stats = [_recv(parent, "connected", 300) for _, parent in out]
    return out, stats, time.monotonic() - t


def close_streams(procs: list[tuple[mp.process.BaseProcess, Any]]) -> list[dict[str, Any]]:
    results = []
    for _, parent in procs:
        parent.send(("stop",))
    for p, parent in procs:
        results.append(_recv(parent, "result", 60))
        p.join(10)
        if p.is_alive():
            p.terminate()
            p.join(5)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", "--idle-count", dest="count", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--settle", type=float, default=5.0, help="seconds after the last stream opened")
    ap.add_argument("--idle-window", type=float, default=5.0, help="seconds over which idle CPU is measured")
    ap.add_argument("--heartbeat", type=int, default=30, help="heartbeat_s asked by each stream (1..30)")
    ap.add_argument("--subs-per-key", type=int, default=SUBS_PER_KEY,
                    help="streams per API key (enterprise: 1000 streams, bursts of 600 requests)")
    ap.add_argument("--transport", choices=("sse", "ws", "mixed"), default="sse")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="a config override, e.g. server.gc_full_pass_every=10")
    ap.add_argument("--cycles", type=int, default=1,
                    help="open and close the streams this many times (RSS after each close: leak or allocator?)")
    add_quiet_args(ap)
    args = ap.parse_args(argv)
    wait_quiet(args)
    print_machine()
    nofile = raise_nofile(args.count * 2 + 4096)
    if nofile < args.count + 1024:
        print(f"warning: RLIMIT_NOFILE is {nofile}; {args.count} streams may not fit", file=sys.stderr)
    overrides = {tuple(kv.split("=", 1)[0].rsplit(".", 1)): kv.split("=", 1)[1] for kv in args.set}
    server = start_server(overrides)  # type: ignore[arg-type]
    try:
        return _run(args, server, nofile)
    finally:
        code = server.stop()
        if code not in (0, None):
            print(f"warning: server exited with {code}\n{server.log_tail()}", file=sys.stderr)
        server.cleanup()


def _run(args: argparse.Namespace, server: Server, nofile: int) -> int:
    per_key = args.subs_per_key
    keys = [server.create_key(f"bench-idle-{i}", "enterprise") for i in range(math.ceil(args.count / per_key))]
    def path(i: int) -> str:
        sport = SPORTS[i % len(SPORTS)]
        if args.transport == "ws" or (args.transport == "mixed" and i >= args.count // 2):
            return f"/ws/odds/{sport}?heartbeat_s={args.heartbeat}&limit=1"
        return f"/v1/odds-drop/{sport}?threshold=10&heartbeat_s={args.heartbeat}"

    targets = [(path(i), keys[i // per_key]) for i in range(args.count)]
    # warm-up: a few streams of every route and key, opened and closed
    warm, _, _ = open_streams(server, targets[:: max(1, args.count // 50)][:50], 1, nofile)
    time.sleep(0.5)
    close_streams(warm)
    time.sleep(2.0)
    rss0, fds0, cpu0 = rss_kib(server.pid), open_fds(server.pid), cpu_seconds(server.pid)
    procs, stats, open_s = open_streams(server, targets, args.clients, nofile)
    connected = sum(s["connected"] for s in stats)
    failed = sum(s["failed"] for s in stats)
    cpu_open = cpu_seconds(server.pid) - cpu0
    time.sleep(args.settle)
    cpu1 = cpu_seconds(server.pid)
    rss1, fds1 = rss_kib(server.pid), open_fds(server.pid)
    gc_before = _gc_buckets(server)
    time.sleep(args.idle_window)
    cpu_idle = (cpu_seconds(server.pid) - cpu1) * 100.0 / args.idle_window
    gc_pauses = _gc_pauses(server)
    gc_window = _gc_window(gc_before, _gc_buckets(server))
    results = close_streams(procs)
    time.sleep(2.0)
    rss2 = rss_kib(server.pid)
    n = max(1, connected)
    statuses: dict[int, int] = {}
    for s in stats:
        for k, v in s["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    rows: list[tuple[str, object]] = [
        ("streams asked / connected / failed", f"{args.count} / {connected} / {failed} {statuses or ''}"),
        ("time to open all, s", open_s),
        ("server CPU while opening, ms per stream", 1000.0 * cpu_open / n),
        ("server RSS before, MiB", rss0 / 1024),
        ("server RSS with streams open, MiB", rss1 / 1024),
        ("RSS per idle stream, KiB", (rss1 - rss0) / n),
        ("server RSS after closing them all, MiB", rss2 / 1024),
        ("server open fds before / with streams", f"{fds0} / {fds1}"),
        (f"server CPU % while idle ({args.idle_window:g} s; heartbeats due: {connected / args.heartbeat:.0f}/s)",
         cpu_idle),
        ("longest GC pause by generation since start, ms (passes)", gc_pauses),
        (f"GC pauses while idle ({args.idle_window:g} s) by generation: passes, longest at most", gc_window),
        ("disconnects seen by clients", sum(r["disconnects"] for r in results)),
        ("connected frames / heartbeats received", f"{sum(r['connected_frames'] for r in results)} / "
                                                   f"{sum(r['heartbeats'] for r in results)}"),
    ]
    for cycle in range(2, args.cycles + 1):
        procs, stats, _ = open_streams(server, targets, args.clients, nofile)
        time.sleep(args.settle)
        rss_open = rss_kib(server.pid)
        close_streams(procs)
        time.sleep(2.0)
        rows.append((f"cycle {cycle}: RSS open / after close, MiB",
                     f"{rss_open / 1024:.0f} / {rss_kib(server.pid) / 1024:.0f} "
                     f"({sum(s['connected'] for s in stats)} connected)"))
    print_table(f"idle {args.transport} streams: {args.count}", rows)
    return 0 if connected == args.count else 1


def _gc_buckets(server: Server) -> dict[str, dict[float, float]]:
    """{generation: {bucket upper bound s: cumulative passes}} from /metrics."""
    import re

    _, body = server.get("/metrics")
    out: dict[str, dict[float, float]] = {}
    for gen, le, n in re.findall(r'^gateway_gc_pause_seconds_bucket\{generation="(\d)",le="([^"]+)"\} (\S+)$',
                                 body.decode(), re.M):
        out.setdefault(gen, {})[float(le)] = float(n)
    return out


def _gc_window(before: dict[str, dict[float, float]], after: dict[str, dict[float, float]]) -> str:
    parts = []
    for gen in sorted(after):
        passes = {le: after[gen][le] - before.get(gen, {}).get(le, 0.0) for le in after[gen]}
        total = passes[float("inf")]
        longest = min((le for le, n in passes.items() if n == total), default=float("inf")) if total else 0.0
        parts.append(f"gen{gen} {total:.0f}, <= {longest * 1000:g} ms" if total else f"gen{gen} 0")
    return "; ".join(parts)


def _gc_pauses(server: Server) -> str:
    """From /metrics: the longest pause and the number of passes of each GC generation."""
    import re

    _, body = server.get("/metrics")
    text = body.decode()
    longest = dict(re.findall(r'^gateway_gc_pause_longest_seconds\{generation="(\d)"\} (\S+)$', text, re.M))
    passes = dict(re.findall(r'^gateway_gc_pause_seconds_count\{generation="(\d)"\} (\S+)$', text, re.M))
    return ", ".join(f"gen{g} {float(longest[g]) * 1000:.1f} ({float(passes.get(g, 0)):.0f})" for g in sorted(longest))


if __name__ == "__main__":
    raise SystemExit(main())
