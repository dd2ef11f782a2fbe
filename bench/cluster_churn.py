"""Resume across edges under churn: every cut moves the client to the other edge.

A redis-server, one `--role writer` and two `--role edge` processes. N SSE clients on the drop
stream (threshold 1: every change is a drop), spread over S sports, are cut at random moments
(exponential, mean --cut-mean-s) and reconnect to the OTHER edge with Last-Event-ID, while a
load generator posts price changes to the writer. When the load stops the clients catch up,
and each client's ids are compared with its sport's drops in the writer's store: every frame
exactly once, in order. Stops after at least --cuts cuts (and --drops drops).

Run: python bench/cluster_churn.py [--clients 40] [--cuts 1000] [--drops 20000] [--cut-mean-s 0.5]
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import HOST, SPORTS, free_port, write_config
from bench._loadgen import StreamIds, drop_stream_head
from bench.cluster_fanout import REDIS, _start
from bench.resume_churn import _loadgen_proc
from gateway.store import log_ids


def _client_proc(conn: Connection, ports: list[int], key: str, sports: list[str], start: int, cut_mean_s: float,
                 seed: int) -> None:
    import trio

    rng = random.Random(seed)
    ids: list[list[int]] = [[] for _ in sports]
    cuts, resets = [0], [0]
    targets: dict[str, int] = {}

    async def client(i: int, sport: str) -> None:
        got = ids[i]
        edge = i % len(ports)
        while True:
            last = got[-1] if got else start
            port = ports[edge]
            edge = (edge + 1) % len(ports)  # the next connection goes to the other edge
            try:
                stream = await trio.open_tcp_stream(HOST, port)
            except OSError:
                await trio.sleep(0.1)
                continue
            await stream.send_all(drop_stream_head(sport, key, last))
            read, done = StreamIds(got), False
            with trio.move_on_after(rng.expovariate(1 / cut_mean_s) if not targets else 3600):
                async for chunk in stream:
                    read.feed(chunk)
                    if done := bool(targets and (got[-1] if got else start) >= targets.get(sport, 0)):
                        break
            resets[0] += read.resets
            await stream.aclose()
            if done:
                return
            cuts[0] += 1

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for i, sport in enumerate(sports):
                nursery.start_soon(client, i, sport)
            targets.update(await trio.to_thread.run_sync(conn.recv))

    trio.run(main)
    conn.send({"ids": ids, "cuts": cuts[0], "resets": resets[0]})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=40)
    ap.add_argument("--cuts", type=int, default=1000, help="go on loading until at least this many cuts")
    ap.add_argument("--drops", type=int, default=20_000, help="at least this many drops")
    ap.add_argument("--rate", type=int, default=500, help="price changes per second")
    ap.add_argument("--sports", type=int, default=4)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--cut-mean-s", type=float, default=0.5)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="gwchurn-"))
    db = tmp / "writer.db"
    rport = free_port()
    (tmp / "redis").mkdir()
    redis = subprocess.Popen([REDIS, "--port", str(rport), "--bind", HOST, "--dir", str(tmp / "redis"),
                              "--appendonly", "yes", "--save", "", "--daemonize", "no"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    config = write_config(tmp, db, {("cluster", "redis_url"): f'"redis://{HOST}:{rport}/0"'})
    writer = _start(tmp, config, "writer", role="writer", db=db)
    edges = [_start(tmp, config, f"edge{i}", role="edge") for i in range(2)]
    try:
        key = writer.create_key("churn-reader")
        ingest = writer.create_key("churn-ingest", scopes=("ingest",))
        sports = list(SPORTS[: args.sports])
        time.sleep(1.0)  # the keys reach the edges
        with sqlite3.connect(db) as conn:
            start = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM stream_log").fetchone()[0]
        assign = [sports[i % len(sports)] for i in range(args.clients)]
        pipes, procs = [], []
        for p in range(args.procs):
            parent, child = mp.Pipe()
            mine = assign[p :: args.procs]
            proc = mp.Process(target=_client_proc, args=(child, [e.port for e in edges], key, mine, start,
                                                         args.cut_mean_s, 100 + p))
            proc.start()
            pipes.append((parent, mine))
            procs.append(proc)
        time.sleep(1.0)
        started = time.monotonic()
        batch = max(args.drops, int(args.rate * args.cuts * args.cut_mean_s / args.clients))
        gen = mp.Process(target=_loadgen_proc, args=(writer.port, ingest, sports, batch, args.rate))
        gen.start()
        gen.join()
        load_s = time.monotonic() - started
        with sqlite3.connect(db) as conn:
            expected = {s: [i for i in log_ids(conn, "drop", [s]) if i > start] for s in sports}
        targets = {s: (v[-1] if v else 0) for s, v in expected.items()}
        for parent, _ in pipes:
            parent.send(targets)
        results = []
        for (parent, mine), proc in zip(pipes, procs, strict=True):
            if not parent.poll(180):
                raise SystemExit("a client process did not catch up within 180 s")
            results.append((mine, parent.recv()))
            proc.join(10)
    finally:
        for node in [*edges, writer]:
            node.stop()
        redis.terminate()
        redis.wait(10)
    gaps = dups = disorder = complete = cuts = resets = 0
    for mine, res in results:
        cuts += res["cuts"]
        resets += res["resets"]
        for sport, got in zip(mine, res["ids"], strict=True):
            want = expected[sport]
            dups += len(got) - len(set(got))
            disorder += sum(1 for a, b in itertools.pairwise(got) if b <= a)
            gaps += len(set(want) - set(got))
            complete += got == want
    total = sum(len(v) for v in expected.values())
    print(f"cluster churn: 1 writer, 2 edges, {args.clients} clients over {len(sports)} sports; every cut moves "
          f"the client to the other edge")
    print(f"drops stored: {total} in {load_s:.1f} s of load ({total / load_s:.0f}/s)")
    print(f"cuts (reconnects with Last-Event-ID on the other edge): {cuts}; reset frames: {resets}")
    print(f"clients with exactly the full ordered sequence: {complete}/{args.clients}")
    print(f"gaps: {gaps}  duplicates: {dups}  out of order: {disorder}")
    if complete != args.clients or gaps or dups or disorder or resets or cuts < args.cuts:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
