"""Hostile clients against a real gateway process: what each attack leaves behind.

Each attack of issue 14 is run against a fresh `gateway serve` (no feeds); after it, the
script prints the server's open descriptors, tasks and RSS against the baseline, whether
/healthz still answers (and its latency during the attack where that matters), and for
resumes the server CPU an abandoned replay costs. The README's reliability table comes
from this script.

Run: python bench/hostile_clients.py [--only NAME ...] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import http.client
import re
import resource
import socket
import statistics
import struct
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import HOST, Server, cpu_seconds, open_fds, rss_kib, start_server

from tests.processes import ws_frame, ws_handshake


def tasks(srv: Server) -> int:
    _, body = srv.get("/metrics")
    found = re.search(rb"^gateway_tasks (\S+)$", body, re.M)
    return int(float(found.group(1))) if found else -1


def healthz_ms(srv: Server) -> float:
    t = time.perf_counter()
    try:
        status, _ = srv.get("/healthz", timeout=10)
    except OSError:
        return float("inf")
    return (time.perf_counter() - t) * 1000 if status == 200 else float("inf")


def settle(srv: Server, fds0: int, timeout: float = 15.0) -> float:
    started = time.monotonic()
    while open_fds(srv.pid) > fds0 and time.monotonic() - started < timeout:
        time.sleep(0.1)
    return time.monotonic() - started


def report(name: str, srv: Server, before: tuple[int, int, int], extra: str = "") -> None:
    fds0, tasks0, rss0 = before
    waited = settle(srv, fds0)
    alive = srv.proc.poll() is None and healthz_ms(srv) < 1000
    print(f"{name:<34} alive={alive!s:<5} fds {fds0} -> {open_fds(srv.pid)} (after {waited:.1f} s)  "
          f"tasks {tasks0} -> {tasks(srv)}  RSS {rss0 / 1024:.1f} -> {rss_kib(srv.pid) / 1024:.1f} MiB {extra}",
          flush=True)


def baseline(srv: Server) -> tuple[int, int, int]:
    return open_fds(srv.pid), tasks(srv), rss_kib(srv.pid)


def connect(srv: Server, data: bytes = b"") -> socket.socket:
    s = socket.create_connection((HOST, srv.port), timeout=10)
    if data:
        s.sendall(data)
    return s


def rst(s: socket.socket) -> None:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


# -- the attacks --------------------------------------------------------------------------

def truncated_post_fin(srv: Server, scale: float) -> str:
    for _ in range(int(20 * scale)):
        socks = [connect(srv, b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789")
                 for _ in range(20)]
        for s in socks:
            s.shutdown(socket.SHUT_WR)
        time.sleep(0.05)
        for s in socks:
            s.close()
    return f"({int(400 * scale)} truncated POSTs + FIN)"


def ws_flood(srv: Server, scale: float, key: str | None) -> str:
    query = f"?apiKey={key}" if key else ""
    flood = ws_frame(b'{"type":"ping"}') * 20_000
    n = int((250 if key else 200) * scale)
    for _ in range(n):
        s = connect(srv, ws_handshake(f"/ws/odds/basketball_nba{query}"))
        s.recv(4096)
        try:
            s.sendall(flood)
        except OSError:
            pass
        rst(s)
    return f"({n} WebSockets x 20,000 frames, then RST)"


def stalled_bodies(srv: Server, scale: float, key: str | None) -> str:
    head = f"X-API-Key: {key}\r\n" if key else ""
    n = int(200 * scale)
    socks = [connect(srv, f"POST /v1/ingest/odds HTTP/1.1\r\nHost: x\r\n{head}Content-Length: 1000\r\n\r\n"
                          "0123456789".encode()) for _ in range(n)]
    started = time.monotonic()
    held = open_fds(srv.pid)
    while open_fds(srv.pid) > held - n // 2 and time.monotonic() - started < 40:
        time.sleep(0.1)
    for s in socks:
        s.close()
    return f"({n} bodies of 10/1000 bytes; half closed by the server after {time.monotonic() - started:.1f} s)"


def pending_flood(srv: Server, scale: float) -> str:
    """Partial request heads from many connections with a 1,024-descriptor limit: /healthz
    latency meanwhile, and how the server logs running out of descriptors."""
    resource.prlimit(srv.pid, resource.RLIMIT_NOFILE, (1024, 1024))
    stop = threading.Event()
    lat: list[float] = []

    def probe() -> None:
        while not stop.is_set():
            lat.append(healthz_ms(srv))
            time.sleep(0.05)

    t = threading.Thread(target=probe)
    t.start()
    socks = []
    for _ in range(int(2000 * scale)):
        try:
            socks.append(connect(srv, b"GET /v1/sports HTTP/1.1\r\nHost: x\r\nX-Slow"))
        except OSError:
            break
    time.sleep(3)
    stop.set()
    t.join()
    for s in socks:
        s.close()
    ok = [x for x in lat if x != float("inf")]
    p99 = sorted(ok)[int(len(ok) * 0.99) - 1] if ok else float("inf")
    emfile = srv.log_count("accept returned")
    return (f"({len(socks)} partial heads, 1,024-fd limit: /healthz {len(ok)}/{len(lat)} answered, "
            f"p50 {statistics.median(ok) if ok else float('inf'):.1f} ms p99 {p99:.1f} ms; "
            f"{emfile} EMFILE log lines, {srv.log_count('Traceback')} tracebacks)")


def abandoned_replays(srv: Server, scale: float, key: str, ingest: str) -> str:
    conn = http.client.HTTPConnection(HOST, srv.port, timeout=60)
    for start in range(0, int(100_000 * scale), 5000):
        rows = ",".join(
            f'{{"sport_key":"basketball_nba","event_id":"e{(start + i) % 100}","home_team":"A","away_team":"B",'
            f'"commence_time":"2031-01-01T00:00:00Z","bookmaker":"pinnacle","market_key":"h2h","outcome":"home",'
            f'"price":{-110 - 20 * ((start + i) // 100 % 2)}}}' for i in range(5000))
        conn.request("POST", "/v1/ingest/odds", body=f"[{rows}]", headers={"X-API-Key": ingest,
                                                                          "Content-Type": "application/json"})
        assert conn.getresponse().read() and True
    conn.close()
    frames = int(200_000 * scale)
    cpu0, rss0 = cpu_seconds(srv.pid), rss_kib(srv.pid)
    socks = []
    for _ in range(20):
        s = connect(srv, f"GET /v1/odds-drop/all?apiKey={key}&last_event_id=1 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        s.recv(100)
        socks.append(s)
    for s in socks:
        s.close()
    lat = [healthz_ms(srv) for _ in range(20)]
    time.sleep(2)
    return (f"(20 resumes of a {frames:,}-frame log, each left after its first bytes: server CPU "
            f"{cpu_seconds(srv.pid) - cpu0:.2f} s in all, RSS +{(rss_kib(srv.pid) - rss0) / 1024:.1f} MiB, "
            f"/healthz meanwhile max {max(lat):.1f} ms)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", help="run only these attacks")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every count")
    args = ap.parse_args()
    attacks: dict[str, Callable[[Server, str, str], str]] = {
        "truncated POST + FIN": lambda srv, k, i: truncated_post_fin(srv, args.scale),
        "WS flood + RST, no key": lambda srv, k, i: ws_flood(srv, args.scale, None),
        "WS flood + RST, key": lambda srv, k, i: ws_flood(srv, args.scale, k),
        "stalled bodies, no key": lambda srv, k, i: stalled_bodies(srv, args.scale, None),
        "stalled bodies, key (408)": lambda srv, k, i: stalled_bodies(srv, args.scale, i),
        "partial heads, 1,024 fds": lambda srv, k, i: pending_flood(srv, args.scale),
        "abandoned replays": lambda srv, k, i: abandoned_replays(srv, args.scale, k, i),
    }
    for name, attack in attacks.items():
        if args.only and not any(o in name for o in args.only):
            continue
        srv = start_server({("tiers.enterprise", "max_connections"): "100000"})
        try:
            key, ingest = srv.create_key("attacker"), srv.create_key("feeder", scopes=("ingest",))
            before = baseline(srv)
            extra = attack(srv, key, ingest)
            report(name, srv, before, extra)
        finally:
            srv.stop()
            srv.cleanup()


if __name__ == "__main__":
    main()
