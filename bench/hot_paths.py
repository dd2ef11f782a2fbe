"""The two per-event paths of issue 19 in one process, without a load client: what they cost
hot (called back to back) and after an idle gap, to tell the code's own cost from the
machine's.

    python bench/hot_paths.py [--posts 2000] [--gaps 0,0.0002,0.001,0.005] [--subscribers 1000]

- ingest: `answer_post` (the ingest route without its socket: key, limits, JSON, validation,
  drop detection, the SQLite commit, the publish, the report) on a gateway from
  `gateway.testing`, one flat quote per call, each a price move (a stored row, a history row,
  an odds frame and a drop frame), as `ingest_cost.py` sends; the ingest limit is lifted.
  With a gap, the process sleeps that long between calls (as a server between requests):
  CPU per call is printed for each gap.
- fan-out: one frame to `--subscribers` subscribers through `Hub.publish` and the direct
  socket writer (`web/direct.py`) on loopback TCP connections, against a bare `os.write` loop
  on the same sockets: the difference is the Python cost per delivery.

CPU is this process's user+system time (the readers of the fan-out part drain their sockets
in this process too, every 50 publishes, and are counted: compare the two fan-out lines).
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trio

from bench._common import BOOKS, SPORTS, print_machine
from bench._loadgen import Mover, build_market


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def ingest(posts: int, gaps: list[float]) -> None:
    from gateway import testing
    from gateway.web.asgi_scope import Headers
    from gateway.web.ingest_http import answer_post

    async with testing.open_gateway() as handle:
        gw = handle.gateway
        gw.ingest_limiter.request = lambda *a, **k: None  # type: ignore[method-assign]
        gw.ingest_limiter.rows = lambda *a, **k: None  # type: ignore[method-assign]
        headers = Headers([(b"host", b"bench"), (b"content-type", b"application/json"),
                           (b"x-api-key", handle.key.encode())])
        mover = Mover(build_market(list(SPORTS), list(BOOKS), 4, "", 1), 0.1, 10, 2)

        async def post(body: bytes) -> None:
            async def read(limit: int) -> bytes:
                return body

            status, _, answer, _ = await answer_post(gw, "odds", headers, "", "bench", read)
            if status != 200:
                raise RuntimeError(f"answer_post answered {status}: {answer[:200]!r}")

        for body in mover.baseline_bodies(2000):
            await post(body)
        print(f"ingest: answer_post, one flat quote a call, {posts} calls per gap")
        for gap in gaps:
            bodies = [mover.batch(1)[0] for _ in range(posts)]
            started = _cpu()
            for body in bodies:
                await post(body)
                if gap:
                    time.sleep(gap)  # noqa: ASYNC251 - the whole process idles, as a server between requests
            per = (_cpu() - started) / posts * 1e6
            print(f"  gap {gap * 1000:5.1f} ms: {per:6.0f} us of CPU per call")


def fanout(subscribers: int, publishes: int) -> None:
    from gateway.core.filters import Filter
    from gateway.core.frames import Frame, dumps
    from gateway.hub import Hub
    from gateway.web.direct import DirectWriter, sse_encoder

    class Conn:  # what DirectWriter needs of Hypercorn's connection
        def __init__(self, sock: Any) -> None:
            self.send_lock = trio.Lock()
            self.stream = self
            self.socket = sock

    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    pairs = []
    for _ in range(subscribers):
        reader = socket.create_connection(listener.getsockname())
        server_side, _ = listener.accept()
        server_side.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        server_side.setblocking(False)
        reader.setblocking(False)
        pairs.append((server_side, reader))
    listener.close()
    hub = Hub()
    for server_side, _ in pairs:
        sub = hub.subscribe(("drop",), None, Filter())
        conn = Conn(trio.socket.from_stdlib_socket(server_side))
        writer = DirectWriter(conn, encode=sse_encoder(False, chunked=True), max_backlog=1 << 30)
        writer.active = True
        sub.deliver = writer.deliver
    frames = []
    for i in range(1, publishes + 1):
        payload = {"type": "odds_drop", "sport_key": "basketball_nba", "event_id": "e1", "bookmaker": "pinnacle",
                   "kind": "game", "market_key": "h2h", "delta_cents": 20, "direction": "down", "id": i,
                   "pad": "x" * 150}
        frames.append(Frame(seq=i, stream="drop", payload=payload, text=dumps(payload), live=True))

    def drain() -> None:
        for _, reader in pairs:
            try:
                while reader.recv(1 << 20):
                    pass
            except BlockingIOError:
                pass

    def timed(publish: Any) -> tuple[float, float]:
        wall = 0.0
        started = _cpu()
        for i, frame in enumerate(frames):
            t = time.perf_counter()
            publish(frame)
            wall += time.perf_counter() - t
            if i % 50 == 49:
                drain()
        deliveries = publishes * subscribers
        return wall / deliveries * 1e6, (_cpu() - started) / deliveries * 1e6

    hub_wall, hub_cpu = timed(lambda f: hub.publish([f]))
    data = frames[0].sse_chunk(False)
    fds = [s.fileno() for s, _ in pairs]

    def bare(_: Frame) -> None:
        for fd in fds:
            os.write(fd, data)

    bare_wall, bare_cpu = timed(bare)
    print(f"fan-out: one frame to {subscribers} subscribers (loopback TCP), {publishes} publishes")
    print(f"  Hub.publish + DirectWriter: {hub_wall:5.2f} us per delivery in the publish ({hub_cpu:5.2f} us CPU "
          "with the readers)")
    print(f"  bare os.write loop:         {bare_wall:5.2f} us per delivery in the loop    ({bare_cpu:5.2f} us CPU "
          "with the readers)")
    print(f"  => Python per delivery: {hub_wall - bare_wall:+.2f} us")
    for s, r in pairs:
        s.close()
        r.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--posts", type=int, default=2000)
    ap.add_argument("--gaps", default="0,0.0002,0.001,0.005", help="seconds of idle between calls")
    ap.add_argument("--subscribers", type=int, default=1000)
    ap.add_argument("--publishes", type=int, default=400)
    args = ap.parse_args()
    print_machine()
    trio.run(ingest, args.posts, [float(g) for g in args.gaps.split(",")])
    async def in_trio() -> None:  # the direct writer's lock and socket are trio objects
        fanout(args.subscribers, args.publishes)

    trio.run(in_trio)


if __name__ == "__main__":
    main()
