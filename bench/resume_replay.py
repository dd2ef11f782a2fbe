"""Resume: how fast one reconnecting client gets 100,000 missed frames replayed from the store.

Stores N drops (threshold 1, pushed over HTTP), then connects once with Last-Event-ID set
just before the first of them and times the stream until the N-th frame has arrived.

Run: python bench/resume_replay.py [--frames 100000]
"""

from __future__ import annotations

import argparse
import json
import socket
import sqlite3
import sys
import time
from http.client import HTTPConnection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CpuMeter, start_server


def push_drops(port: int, key: str, n: int) -> None:
    conn = HTTPConnection("127.0.0.1", port, timeout=60)
    keys = [(f"ev{e}", b, o) for e in range(50) for b in ("pinnacle", "bet365", "betmgm", "caesars")
            for o in ("home", "away")]
    cents = dict.fromkeys(keys, 0)
    sent = -len(keys)  # the first round only sets baselines
    while sent < n:
        rows = []
        for k in keys[: min(len(keys), n - sent)] if sent >= 0 else keys:
            cents[k] = cents[k] + 7 if cents[k] < 150 else -150
            c = cents[k]
            rows.append({"sport_key": "basketball_nba", "event_id": k[0], "home_team": "H", "away_team": "A",
                         "commence_time": "2026-12-01T20:00:00Z", "bookmaker": k[1], "market_key": "h2h",
                         "outcome": k[2], "price": c - 100 if c < 0 else c + 100})
        conn.request("POST", "/v1/ingest/odds", body=json.dumps(rows),
                     headers={"X-API-Key": key, "Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200, resp.status
        sent += len(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=100_000)
    args = parser.parse_args()
    server = start_server()
    try:
        key = server.create_key("replayer")
        ingest = server.create_key("pusher", scopes=("ingest",))
        t0 = time.monotonic()
        push_drops(server.port, ingest, args.frames)
        print(f"stored {args.frames:,} drops in {time.monotonic() - t0:.1f} s")
        db = sqlite3.connect(server.db)  # beside the running server (WAL): pages in use, indexes included
        pages, free, size = (db.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "freelist_count",
                                                                               "page_size"))
        db.close()
        print(f"database: {(pages - free) * size / 2**20:,.1f} MiB in use ({(pages - free) * size / args.frames:,.0f} "
              "bytes per stored frame, everything included)")
        _, body = server.get("/v1/odds-drop/basketball_nba/recent?threshold=1&limit=1", key)
        last = json.loads(body)[0]["id"]
        first = last - args.frames + 1
        cpu = CpuMeter({"server": server.pid})
        sock = socket.create_connection(("127.0.0.1", server.port))
        started = time.monotonic()
        cpu.start()
        sock.sendall(f"GET /v1/odds-drop/basketball_nba?threshold=1&apiKey={key} HTTP/1.1\r\nHost: x\r\n"
                     f"Last-Event-ID: {first - 1}\r\n\r\n".encode())
        seen = 0
        tail = b""
        needle = f"id: {last}\n".encode()
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            seen += chunk.count(b"\nid: ") + chunk.startswith(b"id: ")
            if needle in tail + chunk:
                break
            tail = chunk[-64:]
        elapsed = time.monotonic() - started
        server_cpu = cpu.stop()["server"]
        sock.close()
    finally:
        server.stop()
        server.cleanup()
    print(f"replayed {args.frames:,} frames to one client in {elapsed:.2f} s "
          f"({args.frames / elapsed:,.0f} frames/s); server CPU during replay {server_cpu:.0f} %")


if __name__ == "__main__":
    main()
