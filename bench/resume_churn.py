"""Resume under churn: clients cut at random moments must end with every frame, in order.

N SSE clients on the drop stream (or WebSocket clients on the odds stream), spread over S sports, are disconnected at
random moments (exponential, mean --cut-mean-s) while a load generator pushes price changes
over HTTP (threshold 1: every change is a drop). Each client reconnects with Last-Event-ID
(SSE) or ?last_event_id= (WS). When the load stops, the clients catch up, and each client's
sequence of ids is compared with its sport's drops in the store: gaps, duplicates, order.

Run: python bench/resume_churn.py [--clients 100] [--drops 50000] [--transport sse|ws]
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import random
import sqlite3
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SPORTS, start_server
from _loadgen import StreamIds, drop_stream_head

from gateway.store import log_ids

HOST = "127.0.0.1"


def _client_proc(conn: Connection, port: int, key: str, sports: list[str], transport: str,
                 cut_mean_s: float, seed: int) -> None:
    import trio

    rng = random.Random(seed)
    ids: list[list[int]] = [[] for _ in sports]
    cuts = [0]
    resets = [0]
    targets: dict[str, int] = {}

    async def sse_client(i: int, sport: str) -> None:
        got = ids[i]
        while True:
            last = got[-1] if got else None
            stream = await trio.open_tcp_stream(HOST, port)
            await stream.send_all(drop_stream_head(sport, key, last))
            cut = not targets
            read, done = StreamIds(got), False
            with trio.move_on_after(rng.expovariate(1 / cut_mean_s) if cut else 3600):
                async for chunk in stream:
                    read.feed(chunk)
                    if done := bool(targets and got and got[-1] >= targets.get(sport, 0)):
                        break
            resets[0] += read.resets
            await stream.aclose()
            if done:
                return
            cuts[0] += 1

    async def ws_client(i: int, sport: str) -> None:
        import json

        from trio_websocket import ConnectionClosed, open_websocket_url

        got = ids[i]
        while True:
            last = got[-1] if got else None
            url = f"ws://{HOST}:{port}/ws/odds/{sport}?apiKey={key}&heartbeat_s=1"
            if last:
                url += f"&last_event_id={last}"
            cut = not targets
            with trio.move_on_after(rng.expovariate(1 / cut_mean_s) if cut else 3600):
                try:
                    async with open_websocket_url(url) as ws:
                        while True:
                            msg = json.loads(await ws.get_message())
                            if "id" in msg and msg.get("type") == "odds_update":
                                got.append(msg["id"])
                            elif msg.get("status") == "reset":
                                resets[0] += 1
                            if targets and got and got[-1] >= targets.get(sport, 0):
                                return
                except ConnectionClosed:
                    pass
            cuts[0] += 1

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for i, sport in enumerate(sports):
                nursery.start_soon(sse_client if transport == "sse" else ws_client, i, sport)
            # wait for the parent's final targets (sent when the load is over)
            targets.update(await trio.to_thread.run_sync(conn.recv))

    trio.run(main)
    conn.send({"ids": ids, "cuts": cuts[0], "resets": resets[0]})


def _loadgen_proc(port: int, key: str, sports: list[str], drops: int, rate: int) -> None:
    import json
    from http.client import HTTPConnection, HTTPException

    rng = random.Random(7)
    keys = [(s, f"churn-{s}-{e}", b, o) for s in sports for e in range(3)
            for b in ("pinnacle", "bet365", "betmgm", "caesars") for o in ("home", "away")]
    cents = {k: rng.randint(-60, 60) for k in keys}
    conn = HTTPConnection(HOST, port, timeout=30)

    def price(c: int) -> int:
        return c - 100 if c < 0 else c + 100

    def post(rows: list[dict[str, object]]) -> None:
        conn.request("POST", "/v1/ingest/odds", body=json.dumps(rows),
                     headers={"X-API-Key": key, "Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200, resp.status

    def row(k: tuple[str, str, str, str]) -> dict[str, object]:
        s, e, b, o = k
        return {"sport_key": s, "event_id": e, "home_team": f"{e} H", "away_team": f"{e} A",
                "commence_time": "2026-12-01T20:00:00Z", "bookmaker": b, "market_key": "h2h",
                "outcome": o, "price": price(cents[k])}

    try:
        _post_loop(post, row, keys, cents, rng, drops, rate)
    except (OSError, HTTPException):  # the server went away (crash_safety kills it on purpose)
        return


def _post_loop(post: Callable[[list[dict[str, object]]], None], row: Callable[..., dict[str, object]],
               keys: list[tuple[str, str, str, str]], cents: dict[tuple[str, str, str, str], int],
               rng: random.Random, drops: int, rate: int) -> None:
    post([row(k) for k in keys])  # baselines: not drops
    sent = 0
    batch = max(1, rate // 50)
    next_at = time.monotonic()
    while sent < drops:
        rows = []
        for k in rng.sample(keys, min(batch, drops - sent, len(keys))):
            step = rng.choice((-1, 1)) * rng.randint(1, 15)
            cents[k] = max(-400, min(400, cents[k] + step)) or step
            rows.append(row(k))
        post(rows)
        sent += len(rows)
        next_at += 0.02
        time.sleep(max(0.0, next_at - time.monotonic()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--drops", type=int, default=50_000)
    parser.add_argument("--rate", type=int, default=2000, help="price changes per second")
    parser.add_argument("--sports", type=int, default=10)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--cut-mean-s", type=float, default=1.5)
    parser.add_argument("--transport", choices=("sse", "ws"), default="sse")
    args = parser.parse_args()

    server = start_server()
    try:
        key = server.create_key("churn-reader")
        ingest = server.create_key("churn-ingest", scopes=("ingest",))
        sports = list(SPORTS[: args.sports])
        assign = [sports[i % len(sports)] for i in range(args.clients)]
        pipes, procs = [], []
        for p in range(args.procs):
            parent, child = mp.Pipe()
            mine = assign[p :: args.procs]
            proc = mp.Process(target=_client_proc, args=(child, server.port, key, mine, args.transport,
                                                         args.cut_mean_s, 100 + p))
            proc.start()
            pipes.append((parent, mine))
            procs.append(proc)
        time.sleep(1.0)
        started = time.monotonic()
        gen = mp.Process(target=_loadgen_proc, args=(server.port, ingest, sports, args.drops, args.rate))
        gen.start()
        gen.join()
        load_s = time.monotonic() - started
        db = sqlite3.connect(server.db)
        stream = "drop" if args.transport == "sse" else "odds"  # WS odds carries odds_update frames
        expected = {s: log_ids(db, stream, [s]) for s in sports}
        db.close()
        targets = {s: (v[-1] if v else 0) for s, v in expected.items()}
        results = []
        for parent, _ in pipes:
            parent.send(targets)
        for (parent, mine), proc in zip(pipes, procs, strict=True):
            if not parent.poll(120):
                raise SystemExit("a client process did not finish catching up within 120 s")
            results.append((mine, parent.recv()))
            proc.join(10)
        total_s = time.monotonic() - started
    finally:
        server.stop()
        server.cleanup()

    gaps = dups = disorder = complete = cuts = resets = late = 0
    for mine, res in results:
        cuts += res["cuts"]
        resets += res["resets"]
        for sport, got in zip(mine, res["ids"], strict=True):
            want = expected[sport]
            if got and want and got[0] > want[0]:  # connected after the load began: not a resume gap
                late += sum(1 for i in want if i < got[0])
                want = [i for i in want if i >= got[0]]
            dups += len(got) - len(set(got))
            disorder += sum(1 for a, b in itertools.pairwise(got) if b <= a)
            gaps += len(set(want) - set(got))
            complete += got == want
    total_drops = sum(len(v) for v in expected.values())
    print(f"transport: {args.transport}  clients: {args.clients} over {len(sports)} sports  "
          f"client processes: {args.procs}")
    print(f"drops stored: {total_drops} in {load_s:.1f} s of load ({total_drops / load_s:.0f}/s); "
          f"run incl. catch-up {total_s:.1f} s")
    print(f"cuts (reconnects with resume): {cuts}; reset frames: {resets}")
    print(f"clients with exactly the full ordered sequence: {complete}/{args.clients}")
    print(f"gaps: {gaps}  duplicates: {dups}  out of order: {disorder}  "
          f"(frames before a client's first connection, not counted: {late})")
    if complete != args.clients or gaps or dups or disorder or resets:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
