"""One tenant's dead webhooks against another tenant's healthy one (issue 14.6).

    python bench/webhook_fairness.py [--duration 60] [--noisy-hooks 25] [--tests 0] [--rate 1]

A gateway subprocess (no feeds) and two receivers in this process, on 127.0.0.1:
- a hanging receiver: accepts the request and never answers (each POST waits out the
  gateway's 10 s delivery timeout);
- a healthy receiver: answers 200 at once and records when each delivery arrived.
`--noisy-keys` keys (business) have `--noisy-hooks` webhooks each to the hanging URL; key "quiet"
(business) has one webhook to the healthy URL. Both match every drop. A pusher makes
`--rate` drops per second for `--duration` s; with `--tests N`, N concurrent
`POST /v1/webhooks/{id}/test` calls of the noisy key to its hanging URL run the whole time
(each one, when answered, is sent again at once; after a 429, once its Retry-After passed).

Reported: how many of the drops the quiet webhook received within the run (and 5 s after),
and their latency (receipt - the drop frame's `timestamp`) p50/p99/max; with `--tests`,
the quiet key's REST latency (`GET /v1/webhooks`, 5 a second), and the server's CPU.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import HOST, CpuMeter, percentiles, print_machine, print_table, start_server


class Receivers:
    def __init__(self) -> None:
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        self.hanging = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path.startswith("/hang"):
                    with outer.lock:
                        outer.hanging += 1
                    outer.stop.wait(120)  # never answers within the gateway's timeout
                    return
                now = time.time()
                with outer.lock:
                    outer.arrivals.append((now, json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # the gateway gives up on hanging POSTs: resets are expected

        self.server = Server((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{HOST}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()


def request(port: int, method: str, path: str, key: str, body: Any = None, timeout: float = 30.0) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"X-API-Key": key, "Content-Type": "application/json"})
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw else None
    finally:
        conn.close()


def quote(price: int) -> dict[str, Any]:
    return {"sport_key": "basketball_nba", "event_id": "2026-05-12_Lakers_Warriors",
            "home_team": "Los Angeles Lakers", "away_team": "Golden State Warriors",
            "commence_time": "2026-05-12T22:30:00Z", "bookmaker": "pinnacle", "market_key": "h2h",
            "outcome": "home", "price": price}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=1.0, help="drops per second")
    ap.add_argument("--noisy-hooks", type=int, default=25, help="hanging webhooks per noisy key")
    ap.add_argument("--noisy-keys", type=int, default=1, help="keys with hanging webhooks")
    ap.add_argument("--tests", type=int, default=0, help="concurrent /test calls of the noisy key (hanging URL)")
    args = ap.parse_args()
    print_machine()
    receivers = Receivers()
    server = start_server()
    stop = threading.Event()
    try:
        noisy_keys = [server.create_key(f"noisy{n}", "business") for n in range(args.noisy_keys)]
        noisy = noisy_keys[0]
        quiet = server.create_key("quiet", "business")
        ingest = server.create_key("ingest", "enterprise", ["ingest"])
        hooks = []
        for key in noisy_keys:
            for i in range(args.noisy_hooks):
                status, hook = request(server.port, "POST", "/v1/webhooks", key, {"url": f"{receivers.url}/hang/{i}"})
                assert status == 201, hook
                hooks.append(hook["id"])
        status, hook = request(server.port, "POST", "/v1/webhooks", quiet, {"url": f"{receivers.url}/ok"})
        assert status == 201, hook
        rest_ms: list[float] = []
        tests_refused: list[int] = []

        def tester() -> None:
            while not stop.is_set():
                try:
                    status, body = request(server.port, "POST", f"/v1/webhooks/{hooks[0]}/test", noisy, timeout=60)
                except OSError:
                    status, body = 0, None
                if status != 200:  # a 429 (rate limit, or the key's share is busy): back off as told
                    tests_refused.append(status)
                    stop.wait((body or {}).get("retry_after_seconds", 1) if isinstance(body, dict) else 1)

        def rest_probe() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                request(server.port, "GET", "/v1/webhooks", quiet)
                rest_ms.append((time.perf_counter() - started) * 1000)
                time.sleep(0.2)

        threads = [threading.Thread(target=tester, daemon=True) for _ in range(args.tests)]
        threads.append(threading.Thread(target=rest_probe, daemon=True))
        for t in threads:
            t.start()
        request(server.port, "POST", "/v1/ingest/odds", ingest, [quote(-110)])
        cpu = CpuMeter({"server": server.pid})
        cpu.start()
        started = time.time()
        pushed = 0
        price = -110
        while time.time() - started < args.duration:
            price = -120 if price == -110 else -110
            request(server.port, "POST", "/v1/ingest/odds", ingest, [quote(price)])
            pushed += 1
            time.sleep(max(0.0, started + pushed / args.rate - time.time()))
        ended = time.time()
        server_cpu = cpu.stop()["server"]
        time.sleep(5)
        stop.set()
        with receivers.lock:
            got = list(receivers.arrivals)
            hanging = receivers.hanging
        in_window = [a for a in got if a[0] <= ended]
        lat = [(at * 1000 - body["data"]["timestamp"]) for at, body in got]
        p = percentiles(lat, (50, 99))
        rp = percentiles(rest_ms, (50, 99))
        print_table(f"quiet key's webhook, {args.noisy_keys} noisy key(s) with {args.noisy_hooks} hanging webhooks"
                    + (f" and {args.tests} concurrent /test calls" if args.tests else ""), [
            ("drops pushed", pushed),
            ("quiet deliveries within the run", len(in_window)),
            ("quiet deliveries within run + 5 s", len(got)),
            ("latency p50 ms", p[50]), ("latency p99 ms", p[99]), ("latency max ms", max(lat, default=float("nan"))),
            ("noisy POSTs that reached the hanging receiver", hanging),
            ("quiet key GET /v1/webhooks p50 ms", rp[50]), ("quiet key GET /v1/webhooks p99 ms", rp[99]),
            ("quiet key GET /v1/webhooks max ms", max(rest_ms, default=float("nan"))),
            ("noisy /test calls refused (429), each retried after its Retry-After", len(tests_refused)),
            ("server CPU % during the run", server_cpu),
        ])
    finally:
        stop.set()
        receivers.close()
        server.stop()
        server.cleanup()


if __name__ == "__main__":
    main()
