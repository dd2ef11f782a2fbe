"""SSE drop-stream fan-out under load: N subscribers, R price changes/s ingested over HTTP.

    python bench/sse_drops.py [--subscribers 1000] [--rate 1000] [--duration 20] [--warmup 5]
                              [--clients 2] [--sports 10] [--profile]

Setup: a gateway subprocess (fresh temp DB, --no-feeds). N subscribers on
`/v1/odds-drop/{sport}?threshold=10`, spread evenly over `--sports` real sport keys, held
by K client processes (raw non-blocking sockets, one selectors loop each). A load-generator
process POSTs flat quotes to /v1/ingest/odds every 20 ms (R/50 per request): about one
change in ten moves 10-30 cents (a drop that passes the threshold), the rest 1-9 cents.
Every key's first price is sent once before the run (baselines); then `--warmup` seconds,
then a `--duration` s measuring window.

Latency of a drop = the client's receipt wall time - the frame's `timestamp` (unix ms set
by the server when it detected the drop, i.e. before the SQLite commit and the fan-out).
CPU is summed over the server's process tree (procfs), over the measuring window.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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
from bench._sseclient import latencies_of, run_client

SUBS_PER_KEY = 400  # enterprise: 1000 streams per key, 600-request burst; stay under both


def _recv(conn: Any, what: str, timeout: float) -> Any:
    if not conn.poll(timeout):
        raise TimeoutError(f"no {what!r} message within {timeout} s")
    msg = conn.recv()
    if msg[0] != what:
        raise RuntimeError(f"expected {what!r}, got {msg[0]!r}")
    return msg[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subscribers", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=1000.0, help="price changes per second")
    ap.add_argument("--duration", type=float, default=20.0, help="measuring window, s")
    ap.add_argument("--warmup", type=float, default=5.0, help="load before the window, s")
    ap.add_argument("--clients", type=int, default=2, help="subscriber client processes")
    ap.add_argument("--sports", type=int, default=10, help=f"sports used (1..{len(SPORTS)})")
    ap.add_argument("--interval-ms", type=float, default=20.0, help="ingest request interval")
    ap.add_argument("--events-per-sport", type=int, default=4)
    ap.add_argument("--big-fraction", type=float, default=0.1, help="share of moves of 10-30 cents")
    ap.add_argument("--threshold", type=int, default=10)
    ap.add_argument("--stream", choices=("drops", "odds"), default="drops",
                    help="odds: subscribers read the odds stream (/v1/sse/odds) instead (conflation, issue 15)")
    ap.add_argument("--conflate-ms", type=int, default=0, help="odds stream: conflate_ms of every subscriber")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--profile", action="store_true",
                    help=f"py-spy the server for 10 s mid-window (needs {PROFILER}: "
                         "pip install --target /tmp/pyspy py-spy)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (DB, server log)")
    ap.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                    help="server on the first CPU, load processes on the others, as side_by_side.py "
                         "(default: on; the clients stand in for other machines)")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override a config.toml setting for the server (TOML value), e.g. "
                         "--set database.checkpoint_interval_s=0.25")
    add_quiet_args(ap)
    args = ap.parse_args(argv)
    wait_quiet(args)
    sports = list(SPORTS[: max(1, min(args.sports, len(SPORTS)))])

    print_machine()
    per_client = math.ceil(args.subscribers / max(1, args.clients))
    nofile = raise_nofile(max(4096, args.subscribers * 2 + 1024))
    all_cpus = os.sched_getaffinity(0)
    pin = args.pin and len(all_cpus) >= 2
    if pin:  # inherited by the server and everything it spawns
        os.sched_setaffinity(0, {min(all_cpus)})
    try:
        server = start_server(_overrides(args.set), keep_tmp=args.keep)
    finally:
        if pin:  # the load generator and client processes are forked from here
            os.sched_setaffinity(0, all_cpus - {min(all_cpus)})
    args.pinned = pin
    procs: list[mp.process.BaseProcess] = []
    try:
        return _run(args, sports, server, per_client, nofile, procs)
    finally:
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.terminate()
                p.join(5)
        code = server.stop()
        if code not in (0, None):
            print(f"warning: server exited with {code}\n{server.log_tail()}", file=sys.stderr)
        if args.keep:
            print(f"kept {server.tmp}")
        server.cleanup()


def _run(args: argparse.Namespace, sports: list[str], server: Server, per_client: int, nofile: int,
         procs: list[mp.process.BaseProcess]) -> int:
    ctx = mp.get_context("fork")
    ingest_key = server.create_key("bench-ingest", "enterprise", ["ingest"])
    sub_keys = [server.create_key(f"bench-sub-{i}", "enterprise")
                for i in range(max(1, math.ceil(args.subscribers / SUBS_PER_KEY)))]
    def path(sport: str) -> str:
        if args.stream == "odds":
            return f"/v1/sse/odds/{sport}?heartbeat_s=30&limit=1&conflate_ms={args.conflate_ms}"
        return f"/v1/odds-drop/{sport}?threshold={args.threshold}&heartbeat_s=30"

    targets = [(path(sports[i % len(sports)]), sub_keys[i // SUBS_PER_KEY]) for i in range(args.subscribers)]

    # load generator: baselines first
    lg_parent, lg_child = ctx.Pipe()
    lg = ctx.Process(target=run_loadgen, name="loadgen", args=(lg_child, HOST, server.port, ingest_key),
                     kwargs={"rate": args.rate, "interval_s": args.interval_ms / 1000, "sports": sports,
                             "books": list(BOOKS), "events_per_sport": args.events_per_sport,
                             "big_fraction": args.big_fraction, "threshold": args.threshold, "seed": args.seed})
    lg.start()
    procs.append(lg)
    # subscriber client processes
    clients: list[tuple[mp.process.BaseProcess, Any]] = []
    for k in range(args.clients):
        share = targets[k * per_client:(k + 1) * per_client]
        if not share:
            continue
        parent, child = ctx.Pipe()
        p = ctx.Process(target=run_client, name=f"sse-client-{k}", args=(child, HOST, server.port, share, nofile))
        p.start()
        procs.append(p)
        clients.append((p, parent))
    t = time.monotonic()
    base = _recv(lg_parent, "ready", 120)
    conn_stats = [_recv(parent, "connected", 180) for _, parent in clients]
    connect_s = time.monotonic() - t
    connected = sum(s["connected"] for s in conn_stats)
    handshakes = [ms for s in conn_stats for ms in s["handshake_ms"]]
    hs = percentiles(handshakes, (50, 99))
    print(f"baselines: {base['keys']} keys in {base['baseline_s']:.2f} s ({base['errors']} errors); "
          f"subscribers connected: {connected}/{args.subscribers} in {connect_s:.1f} s "
          f"(handshake p50 {hs[50]:.1f} ms, p99 {hs[99]:.1f} ms); failed: {sum(s['failed'] for s in conn_stats)} "
          f"{_merge([s['statuses'] for s in conn_stats])} {_merge([s['connect_errors'] for s in conn_stats])}",
          flush=True)

    now = time.time()
    t0 = now + args.warmup
    t1 = t0 + args.duration
    stop_at = t1 + 1.0
    lg_parent.send(("go", t0 * 1000, t1 * 1000, stop_at))
    for _, parent in clients:
        parent.send(("window", t0 * 1000, t1 * 1000, stop_at + 0.5))
    meter = CpuMeter({"server": server.pid})
    client_meter = CpuMeter({p.name: p.pid for p, _ in clients} | {"loadgen": lg.pid}, tree=False)
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
        profile = profile_server(server.pid, min(10.0, args.duration - 1))
    time.sleep(max(0.0, t1 - time.time()))
    cpu = meter.stop()
    ccpu = client_meter.stop()
    machine = system.stop()
    rss_after = rss_kib(server.pid)
    fds = open_fds(server.pid)
    cuts = server.log_count("cutting off a slow") - cuts_before

    lg_res = _recv(lg_parent, "result", args.duration + 120)
    results = [_recv(parent, "result", 120) for _, parent in clients]
    _report(args, sports, lg_res, results, cpu, ccpu, machine, rss_before, rss_after, fds, cuts, connected)
    if profile:
        print(profile)
    return 0


def _overrides(items: list[str]) -> dict[tuple[str, str], str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        section, dot, key = name.partition(".")
        if not (sep and dot and section and key):
            raise SystemExit(f"--set {item!r}: expected SECTION.KEY=VALUE")
        out[(section, key)] = value
    return out


def _merge(dicts: list[dict[Any, int]]) -> dict[Any, int]:
    out: dict[Any, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


def _report(args: argparse.Namespace, sports: list[str], lg: dict[str, Any], results: list[dict[str, Any]],
            cpu: dict[str, float], ccpu: dict[str, float], machine: dict[str, float], rss_before: int,
            rss_after: int, fds: int, cuts: int, connected: int) -> None:
    dur = args.duration
    lat: list[float] = []
    lat_recv: list[float] = []
    ids: set[int] = set()
    for r in results:
        lat.extend(latencies_of(r))
        lat_recv.extend(latencies_of(r, "latencies_recv"))
        ids.update(r["ids"])
    post = latencies_of({"latencies": lg["post_ms"]})
    pq = percentiles(post, (50, 99))
    lq = percentiles(lat, (50, 90, 99, 100))
    lr = percentiles(lat_recv, (50, 99))
    deliveries = sum(r["drops_window"] for r in results)
    writes = sum(r["writes_window"] for r in results)
    subs_per_sport = args.subscribers / len(sports)
    expected = len(ids) * subs_per_sport
    rows: list[tuple[str, object]] = [
        ("subscribers (connected)", f"{args.subscribers} ({connected}) over {len(sports)} sports, "
                                    f"{args.clients} client processes"),
        ("pinned (server CPU / load CPUs)", "yes" if args.pinned else "no"),
        ("price changes/s target", args.rate),
        ("price changes/s achieved", lg["sent"] / dur),
        ("ingest requests/s", lg["requests"] / dur),
        ("ingest POST p50 / p99 ms", f"{pq[50]:.1f} / {pq[99]:.1f}"),
        ("threshold-crossing changes sent/s", lg["crossing"] / dur),
        ("drops/s published (distinct ids seen)", len(ids) / dur),
        ("deliveries/s (all clients)", deliveries / dur),
        ("deliveries / (distinct drops x subs per sport)", deliveries / expected if expected else float("nan")),
        ("server writes/s (HTTP chunks received)", writes / dur),
        ("drop frames per write", deliveries / writes if writes else float("nan")),
        ("MB/s received", sum(r["bytes_window"] for r in results) / dur / 1e6),
        ("bytes/s per subscriber", sum(r["bytes_window"] for r in results) / dur / max(1, connected)),
        ("latency p50 ms", lq[50]),
        ("latency p90 ms", lq[90]),
        ("latency p99 ms", lq[99]),
        ("latency max ms", lq[100]),
        ("latency at each recv(), client's own queue included, p50 / p99 ms", f"{lr[50]:.1f} / {lr[99]:.1f}"),
        ("server CPU % (process tree)", cpu["server"]),
        ("server RSS MiB before / after window", f"{rss_before / 1024:.0f} / {rss_after / 1024:.0f}"),
        ("server open fds", fds),
        ("loadgen CPU %", ccpu["loadgen"]),
    ]
    rows += [(f"{name} CPU %", v) for name, v in ccpu.items() if name != "loadgen"]
    ours = (cpu["server"] + sum(ccpu.values())) / 100
    ncpu = os.cpu_count() or 1
    rows.append(("machine busy % of all cores (irq+softirq %, steal %)",
                 f"{machine['busy']:.0f} ({machine['irq']:.0f}, {machine['steal']:.0f})"))
    other = (machine["busy"] - machine["irq"]) * ncpu / 100 - ours
    rows.append(("other processes on the machine, cores", f"{max(0.0, other):.2f}"))
    rows += [
        ("slow-consumer cuts (server log / error frames)",
         f"{cuts} / {sum(r['slow_consumer'] for r in results)}"),
        ("disconnects (server ended a stream)", sum(r["disconnects"] for r in results)),
        ("ingest HTTP statuses", lg["statuses"]),
        ("ingest rows rejected", lg["rejected"]),
        ("heartbeats received", sum(r["heartbeats"] for r in results)),
    ]
    print_table(f"SSE drops: {args.subscribers} subscribers, {args.rate:g} changes/s, {dur:g} s window", rows)


if __name__ == "__main__":
    raise SystemExit(main())
