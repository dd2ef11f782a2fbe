"""What TLS at the gateway costs the stream fan-out: plain HTTP (direct socket writes), plain
HTTP with direct writes off, and https (`[server] tls_cert`/`tls_key`: direct writes step
aside, since they write to the raw socket, and frames go through Hypercorn and the SSL object).

    python bench/tls_cost.py [--subscribers 200] [--rate 100] [--duration 15] [--warmup 3]

Per mode: a gateway subprocess (fresh temp DB, --no-feeds); `--subscribers` SSE streams on
`/v1/odds-drop/basketball_nba?threshold=1`, held by one client process (trio, one task per
stream, TLS where the mode has it, counting drop frames without parsing them); a loader in
this process POSTs `--rate` price changes/s in batches every 50 ms over one keep-alive
connection, every change a 5-cent move (so every change is a drop for every subscriber).
Figures over the window: deliveries/s (drop frames received), server CPU (process tree,
procfs) and CPU per delivery. Certificates come from trustme (the test extra).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import HOST, CpuMeter, Server, _gateway_cmd, free_port, print_machine, print_table, write_config

SPORT = "basketball_nba"
MARKER = b'"type":"odds_drop"'


def make_certs(tmp: Path) -> tuple[Path, Path, Path]:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert(HOST)
    paths = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    ca.cert_pem.write_to_path(str(paths[0]))
    cert.private_key_pem.write_to_path(str(paths[2]))
    paths[1].write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))
    return paths


def start(mode: str, tmp: Path, certs: tuple[Path, Path, Path]) -> Server:
    overrides = {("streams", "direct_writes"): "false"} if mode == "nodirect" else {}
    if mode == "tls":
        overrides = {("server", "tls_cert"): json.dumps(str(certs[1])),
                     ("server", "tls_key"): json.dumps(str(certs[2]))}
    db = tmp / "bench.db"
    config = write_config(tmp, db, overrides)
    port, log = free_port(), tmp / "server.log"
    cmd = [*_gateway_cmd(), "serve", "--config", str(config), "--db", str(db), "--port", str(port), "--no-feeds"]
    with open(log, "wb") as fh:
        p = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp)
    server = Server(tmp=tmp, config=config, db=db, port=port, proc=p, log=log)
    deadline = time.monotonic() + 30
    while True:
        try:
            conn = connection(port, mode == "tls", certs[0])
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return server
        except OSError:
            pass
        if time.monotonic() > deadline or p.poll() is not None:
            raise RuntimeError(f"gateway did not start: {server.log_tail()}")
        time.sleep(0.1)


def connection(port: int, tls: bool, ca: Path) -> http.client.HTTPConnection:
    if tls:
        return http.client.HTTPSConnection(HOST, port, timeout=10, context=ssl.create_default_context(cafile=str(ca)))
    return http.client.HTTPConnection(HOST, port, timeout=10)


def subscribers(port: int, tls: bool, ca: str, key: str, n: int, counter: Any, ready: Any) -> None:
    """Client process: n SSE streams, counting drop frames into `counter`."""
    import trio

    request = (f"GET /v1/odds-drop/{SPORT}?threshold=1&heartbeat_s=30 HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
               f"X-API-Key: {key}\r\nAccept: text/event-stream\r\n\r\n").encode()
    context = ssl.create_default_context(cafile=ca) if tls else None

    async def one() -> None:
        stream: Any = await trio.open_tcp_stream(HOST, port)
        if context is not None:
            stream = trio.SSLStream(stream, context, server_hostname=HOST)
        await stream.send_all(request)
        tail, overlap = b"", len(MARKER) - 1
        with ready.get_lock():
            ready.value += 1
        while True:
            data = await stream.receive_some(262144)
            if not data:
                return
            found = (tail + data).count(MARKER)
            if found:
                with counter.get_lock():
                    counter.value += found
            tail = data[-overlap:]

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(n):
                nursery.start_soon(one)

    trio.run(main)


def loader(port: int, tls: bool, ca: Path, key: str, rate: int, stop: threading.Event, sent: list[int]) -> None:
    conn = connection(port, tls, ca)
    per_batch = max(1, rate // 20)
    price, due = -110, time.monotonic()
    while not stop.is_set():
        price = -115 if price == -110 else -110
        rows = [{"sport_key": SPORT, "event_id": f"tls_{i}", "home_team": f"Home {i}", "away_team": f"Away {i}",
                 "commence_time": "2030-01-01T00:00:00Z", "bookmaker": "pinnacle", "market_key": "h2h",
                 "outcome": "home", "price": price} for i in range(per_batch)]
        conn.request("POST", "/v1/ingest/odds", json.dumps(rows),
                     {"X-API-Key": key, "Content-Type": "application/json"})
        conn.getresponse().read()
        sent[0] += per_batch
        due += 0.05
        time.sleep(max(0.0, due - time.monotonic()))


def run(mode: str, args: argparse.Namespace, certs: tuple[Path, Path, Path]) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="gwtls-"))
    server = start(mode, tmp, certs)
    tls = mode == "tls"
    try:
        key = server.create_key("bench", "enterprise", ["ingest"])
        counter, ready = mp.Value("q", 0), mp.Value("i", 0)
        client = mp.Process(target=subscribers, args=(server.port, tls, str(certs[0]), key, args.subscribers,
                                                      counter, ready), daemon=True)
        client.start()
        deadline = time.monotonic() + 60
        while ready.value < args.subscribers and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)
        stop, sent = threading.Event(), [0]
        load = threading.Thread(target=loader, args=(server.port, tls, certs[0], key, args.rate, stop, sent))
        load.start()
        time.sleep(args.warmup)
        meter = CpuMeter({"server": server.pid})
        c0, s0, t0 = counter.value, sent[0], time.monotonic()
        meter.start()
        time.sleep(args.duration)
        cpu = meter.stop()
        c1, s1, t1 = counter.value, sent[0], time.monotonic()
        stop.set()
        load.join()
        client.terminate()
        elapsed = t1 - t0
        deliveries = (c1 - c0) / elapsed
        return {"mode": mode, "connected": ready.value, "changes/s": (s1 - s0) / elapsed,
                "deliveries/s": deliveries, "server CPU %": cpu["server"],
                "us CPU/delivery": cpu["server"] / 100 * 1e6 / deliveries if deliveries else float("nan")}
    finally:
        server.stop()
        server.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subscribers", type=int, default=200)
    ap.add_argument("--rate", type=int, default=100, help="price changes/s (each one a drop)")
    ap.add_argument("--duration", type=float, default=15.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--modes", default="plain,nodirect,tls",
                    help="plain: direct writes (the default); nodirect: direct_writes = false; tls: https")
    args = ap.parse_args()
    print_machine()
    certs = make_certs(Path(tempfile.mkdtemp(prefix="gwtls-certs-")))
    rows = [run(m, args, certs) for m in args.modes.split(",")]
    cols = list(rows[0])
    print_table(f"TLS cost: {args.subscribers} SSE subscribers, {args.rate} drops/s, {args.duration:g} s window",
                [[r[c] for c in cols] for r in rows], headers=cols)


if __name__ == "__main__":
    main()
