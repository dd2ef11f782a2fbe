"""The cluster against one process, back to back: latency added by writer -> Redis -> edge, and
deliveries/s with one edge and with two (README "Cluster", bench/RESULTS.md section 13).

    python bench/cluster_fanout.py [--modes single,1,2] [--subscribers 1000] [--rate 1000]
                                   [--threshold 10] [--duration 20] [--warmup 5] [--clients 2]

Each mode starts its processes fresh: `single` one gateway; `N` a redis-server (AOF, fsync
every second, as README "Cluster" runs it), one `--role writer` and N `--role edge`. The
subscribers (raw-socket SSE clients of bench/_sseclient.py, in --clients processes of their
own, spread evenly over the edges) read `/v1/odds-drop/{sport}` over --sports sports; the
load generator (bench/_loadgen.py, its own process) posts flat quotes to the single gateway
or the writer. Latency of a drop = the client's receipt - the frame's `timestamp`, the
writer's clock when it detected the drop (before its commit). Nothing is pinned: the
processes share the machine's cores as they would share a host. CPU per process over the
measuring window.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (
    BOOKS,
    HOST,
    SPORTS,
    CpuMeter,
    Server,
    SystemCpu,
    _gateway_cmd,
    add_quiet_args,
    free_port,
    percentiles,
    print_machine,
    print_table,
    profile_server,
    raise_nofile,
    rss_kib,
    wait_quiet,
    write_config,
)
from bench._loadgen import run_loadgen
from bench._sseclient import latencies_of, run_client

SUBS_PER_KEY = 400
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


@dataclass
class Deployment:
    """The processes of one mode: `ingest` takes the load, `serving` the subscribers."""

    tmp: Path
    ingest: Server
    serving: list[Server]
    redis: subprocess.Popen[bytes] | None = None
    pids: dict[str, int] = field(default_factory=dict)
    redis_port: int = 0

    def stop(self) -> None:
        for s in [*self.serving, self.ingest]:
            if s is not self.ingest or s not in self.serving:
                s.stop()
        if self.redis is not None:
            self.redis.terminate()
            self.redis.wait(10)
        shutil.rmtree(self.tmp, ignore_errors=True)


def _start(tmp: Path, config: Path, name: str, *, role: str | None = None, db: Path | None = None) -> Server:
    port = free_port()
    log = tmp / f"{name}.log"
    cmd = [*_gateway_cmd(), "serve", "--config", str(config), "--port", str(port), "--no-feeds"]
    cmd += ["--role", role] if role else []
    cmd += ["--db", str(db)] if db else []
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp)
    server = Server(tmp=tmp, config=config, db=db or tmp / "none.db", port=port, proc=proc, log=log)
    server.wait_ready(60)
    return server


def deploy(mode: str) -> Deployment:
    tmp = Path(tempfile.mkdtemp(prefix=f"gwcluster-{mode}-"))
    db = tmp / "bench.db"
    if mode == "single":
        server = _start(tmp, write_config(tmp, db), "single", db=db)
        return Deployment(tmp, server, [server], pids={"gateway": server.pid})
    port = free_port()
    (tmp / "redis").mkdir()
    redis = subprocess.Popen([REDIS, "--port", str(port), "--bind", HOST, "--dir", str(tmp / "redis"),
                              "--appendonly", "yes", "--save", "", "--daemonize", "no"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    time.sleep(0.3)
    config = write_config(tmp, db, {("cluster", "redis_url"): f'"redis://{HOST}:{port}/0"'})
    writer = _start(tmp, config, "writer", role="writer", db=db)
    edges = [_start(tmp, config, f"edge{i}", role="edge") for i in range(int(mode))]
    pids = {"writer": writer.pid, **{f"edge{i}": e.pid for i, e in enumerate(edges)}, "redis": redis.pid}
    return Deployment(tmp, writer, edges, redis, pids, port)


def _sample_lag(d: Deployment, until: float, out: list[float]) -> None:
    """The edges' lag behind Redis (ids Redis holds that an edge has not published), every 0.5 s."""
    if d.redis is None:
        return
    while time.time() < until:
        for s in d.serving:
            try:
                _status, body = s.get("/metrics", timeout=2)
            except OSError:
                continue
            for line in body.decode().splitlines():
                if line.startswith("gateway_cluster_lag_ids "):
                    out.append(float(line.split()[1]))
        time.sleep(0.5)


def _redis_memory(d: Deployment) -> dict[str, float]:
    """The stream's entries and bytes in Redis (MEMORY USAGE, every node sampled) and its RSS."""
    if d.redis is None:
        return {}
    import redis  # the cluster extra

    r = redis.Redis(host=HOST, port=d.redis_port)
    entries = r.xlen("gw:log")
    used = r.memory_usage("gw:log", samples=0) or 0
    board = sum(r.memory_usage(k, samples=0) or 0 for k in ("gw:quotes", "gw:events", "gw:live", "gw:names"))
    return {"entries": entries, "bytes_per_entry": used / entries if entries else 0.0, "board_kib": board / 1024,
            "used_mib": r.info("memory")["used_memory"] / 2**20}


def _recv(conn: Any, what: str, timeout: float) -> Any:
    if not conn.poll(timeout):
        raise TimeoutError(f"no {what!r} message within {timeout} s")
    msg = conn.recv()
    if msg[0] != what:
        raise RuntimeError(f"expected {what!r}, got {msg[0]!r}")
    return msg[1]


def run_mode(args: argparse.Namespace, mode: str, sports: list[str], nofile: int) -> dict[str, Any]:
    d = deploy(mode)
    procs: list[mp.process.BaseProcess] = []
    ctx = mp.get_context("fork")
    try:
        ingest_key = d.ingest.create_key("bench-ingest", "enterprise", ["ingest"])
        keys = [d.ingest.create_key(f"bench-sub-{i}", "enterprise")
                for i in range(max(1, math.ceil(args.subscribers / SUBS_PER_KEY)))]
        time.sleep(1.0)  # keys reach the edges (the writer mirrors them twice a second)
        targets = [(f"/v1/odds-drop/{sports[i % len(sports)]}?threshold={args.threshold}&heartbeat_s=30",
                    keys[i // SUBS_PER_KEY]) for i in range(args.subscribers)]
        lg_parent, lg_child = ctx.Pipe()
        lg = ctx.Process(target=run_loadgen, name="loadgen", args=(lg_child, HOST, d.ingest.port, ingest_key),
                         kwargs={"rate": args.rate, "interval_s": 0.02, "sports": sports, "books": list(BOOKS),
                                 "events_per_sport": 4, "big_fraction": args.big_fraction,
                                 "threshold": args.threshold, "seed": 1})
        lg.start()
        procs.append(lg)
        clients = []
        n = len(d.serving)  # every server gets the same subscribers, over the same number of client processes
        per_server = max(1, args.clients // n)
        for s, server in enumerate(d.serving):
            mine = targets[s::n]
            per = math.ceil(len(mine) / per_server)
            for k in range(per_server):
                parent, child = ctx.Pipe()
                p = ctx.Process(target=run_client, name=f"client{s}.{k}",
                                args=(child, HOST, server.port, mine[k * per:(k + 1) * per], nofile))
                p.start()
                procs.append(p)
                clients.append((p, parent))
        _recv(lg_parent, "ready", 120)
        connected = sum(_recv(parent, "connected", 180)["connected"] for _, parent in clients)
        t0 = time.time() + args.warmup
        t1 = t0 + args.duration
        lg_parent.send(("go", t0 * 1000, t1 * 1000, t1 + 1.0))
        for _, parent in clients:
            parent.send(("window", t0 * 1000, t1 * 1000, t1 + 1.5))
        meter = CpuMeter(d.pids, tree=False)
        load_meter = CpuMeter({p.name: p.pid for p in procs}, tree=False)
        time.sleep(max(0.0, t0 - time.time()))
        system = SystemCpu()
        system.start()
        meter.start()
        load_meter.start()
        lags: list[float] = []
        sampler = threading.Thread(target=_sample_lag, args=(d, t1, lags), daemon=True)
        sampler.start()
        profile = None
        if args.profile and args.profile in d.pids:
            time.sleep(max(0.0, args.duration / 2 - 5))
            profile = profile_server(d.pids[args.profile], min(10.0, args.duration - 1), tag=args.profile)
        time.sleep(max(0.0, t1 - time.time()))
        cpu, load_cpu, machine = meter.stop(), load_meter.stop(), system.stop()
        sampler.join(5)
        if profile:
            print(profile)
        rss = {name: rss_kib(pid, tree=False) / 1024 for name, pid in d.pids.items()}
        memory = _redis_memory(d)
        lg_res = _recv(lg_parent, "result", args.duration + 120)
        results = [_recv(parent, "result", 120) for _, parent in clients]
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.terminate()
        d.stop()
    lat = [x for r in results for x in latencies_of(r)]
    q = percentiles(lat, (50, 90, 99, 100))
    ids = {i for r in results for i in r["ids"]}
    return {"mode": mode, "connected": connected, "changes/s": lg_res["sent"] / args.duration,
            "drops/s": len(ids) / args.duration,
            "deliveries/s": sum(r["drops_window"] for r in results) / args.duration,
            "p50": q[50], "p90": q[90], "p99": q[99], "max": q[100], "cpu": cpu, "load_cpu": load_cpu, "rss": rss,
            "machine": machine, "cuts": sum(r["slow_consumer"] for r in results),
            "disconnects": sum(r["disconnects"] for r in results), "lag": max(lags, default=0.0),
            "redis": memory}


def _others(r: dict[str, Any]) -> float:
    """Cores other processes on the (shared) machine used during the window."""
    ours = (sum(r["cpu"].values()) + sum(r["load_cpu"].values())) / 100
    return max(0.0, (r["machine"]["busy"] - r["machine"]["irq"]) * (os.cpu_count() or 1) / 100 - ours)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", default="single,1,2", help="single and/or numbers of edges, run in this order")
    ap.add_argument("--subscribers", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=1000.0, help="price changes per second")
    ap.add_argument("--threshold", type=int, default=10, help="drop threshold of every subscriber (1: all)")
    ap.add_argument("--big-fraction", type=float, default=0.1, help="share of moves of 10-30 cents")
    ap.add_argument("--sports", type=int, default=10)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=2, help="subscriber client processes")
    ap.add_argument("--profile", metavar="PROCESS", help="py-spy one process mid-window: gateway, writer, edge0...")
    add_quiet_args(ap)
    args = ap.parse_args(argv)
    wait_quiet(args)
    print_machine()
    sports = list(SPORTS[: args.sports])
    nofile = raise_nofile(max(4096, args.subscribers * 2 + 1024))
    rows = []
    for mode in args.modes.split(","):
        r = run_mode(args, mode.strip(), sports, nofile)
        cpu = ", ".join(f"{k} {v:.0f}" for k, v in r["cpu"].items())
        rows.append([r["mode"], f"{r['connected']}", f"{r['changes/s']:.0f}", f"{r['drops/s']:.1f}",
                     f"{r['deliveries/s']:,.0f}", f"{r['p50']:.1f}", f"{r['p99']:.1f}", f"{r['max']:.1f}", cpu,
                     f"{sum(r['load_cpu'].values()):.0f}", f"{r['machine']['busy']:.0f}", f"{_others(r):.2f}",
                     f"{r['lag']:.0f}", f"{r['cuts']}"])
        print(f"{r['mode']}: done ({r['deliveries/s']:,.0f} deliveries/s, p99 {r['p99']:.1f} ms)", flush=True)
        if r["redis"]:
            m = r["redis"]
            print(f"  redis: {m['entries']:,} entries, {m['bytes_per_entry']:.1f} bytes each (MEMORY USAGE of the "
                  f"stream), board hashes {m['board_kib']:.0f} KiB, used_memory {m['used_mib']:.1f} MiB", flush=True)
    print_table(f"cluster fan-out: {args.subscribers} SSE subscribers, {args.rate:g} changes/s, threshold "
                f"{args.threshold}, {args.duration:g} s window (machine shared; nothing pinned)",
                [["mode", "subs", "changes/s", "drops/s", "deliveries/s", "p50 ms", "p99 ms", "max ms",
                  "CPU % per process", "load CPU %", "machine busy %", "others, cores", "edge lag max", "cuts"],
                 *rows])
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
