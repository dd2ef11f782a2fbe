"""Crash safety: kill -9 the gateway during heavy ingest, again and again.

Each round: SSE clients follow the drop stream (threshold 1) while a load generator pushes
price changes; the server is killed with SIGKILL at a random moment and restarted on the
same database and port. Checks after every restart:
  - every frame any client had received is still in the store (persist, then publish);
  - ids keep increasing across restarts;
  - clients resume with Last-Event-ID and get every stored frame after their last id, with no
    gap (or an explicit reset frame, never a silent gap).

Run: python bench/crash_safety.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SPORTS, Server, _gateway_cmd, start_server
from _loadgen import StreamIds, drop_stream_head
from resume_churn import _loadgen_proc

from gateway.store import log_ids

HOST = "127.0.0.1"


def _restart(server: Server) -> None:
    cmd = [*_gateway_cmd(), "serve", "--config", str(server.config), "--db", str(server.db),
           "--port", str(server.port), "--no-feeds"]
    with open(server.log, "ab") as fh:
        server.proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       cwd=server.tmp)
    server.wait_ready(30)


def _follow(port: int, key: str, sport: str, last: int | None, seconds: float) -> tuple[list[int], int]:
    """Read the drop stream for `seconds` (or until the server dies); returns (ids, resets)."""
    import socket

    read = StreamIds([])
    sock = socket.create_connection((HOST, port), timeout=seconds)
    sock.sendall(drop_stream_head(sport, key, last))
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            read.feed(chunk)
    except OSError:
        pass
    finally:
        sock.close()
    return read.ids, read.resets


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--rate", type=int, default=3000, help="price changes per second during each round")
    args = parser.parse_args()
    rng = random.Random(3)
    sport = SPORTS[0]
    server = start_server()
    received: list[int] = []  # every id the client got, over all rounds
    resets = 0
    max_ids: list[int] = []
    problems: list[str] = []
    try:
        key = server.create_key("crash-reader")
        ingest = server.create_key("crash-ingest", scopes=("ingest",))
        for rnd in range(1, args.rounds + 1):
            gen = mp.Process(target=_loadgen_proc, args=(server.port, ingest, [sport], 10**9, args.rate))
            gen.start()
            kill_at = rng.uniform(1.0, 3.0)
            last = received[-1] if received else None
            with mp.get_context("fork").Pool(1) as pool:
                pending = pool.apply_async(_follow, (server.port, key, sport, last, kill_at + 1.0))
                time.sleep(kill_at)
                server.proc.send_signal(signal.SIGKILL)
                server.proc.wait(10)
                ids, r = pending.get(30)
            gen.terminate()
            gen.join(5)
            received += ids
            resets += r
            db = sqlite3.connect(server.db)
            stored = set(log_ids(db, "drop"))
            top = db.execute("SELECT MAX(seq) FROM stream_log").fetchone()[0] or 0
            db.close()
            lost = [i for i in ids if i not in stored]
            if lost:
                problems.append(f"round {rnd}: {len(lost)} received frames missing from the store after kill -9")
            if max_ids and top <= max_ids[-1]:
                problems.append(f"round {rnd}: ids did not increase ({top} <= {max_ids[-1]})")
            max_ids.append(top)
            print(f"round {rnd}: killed after {kill_at:.2f} s; client got {len(ids)} drops this round; "
                  f"store max id {top}")
            _restart(server)
        # final catch-up after the last restart: everything stored after the client's last id
        ids, r = _follow(server.port, key, sport, received[-1] if received else None, 3.0)
        received += ids
        resets += r
    finally:
        server.stop()
    db = sqlite3.connect(server.db)
    want = log_ids(db, "drop")
    db.close()
    first = received[0] if received else 0
    want = [i for i in want if i >= first]  # drops before the client's first connection are not its to miss
    server.cleanup()
    gaps = sorted(set(want) - set(received))
    dups = len(received) - len(set(received))
    print(f"rounds: {args.rounds}  drops stored: {len(want)}  received by the resuming client: {len(received)}")
    print(f"gaps: {len(gaps)}  duplicates: {dups}  reset frames: {resets}  "
          f"ids increasing across restarts: {all(b > a for a, b in itertools.pairwise(max_ids))}")
    for p in problems:
        print("PROBLEM:", p)
    if gaps:
        print(f"missing ids (first 10): {gaps[:10]}; rounds' max ids: {max_ids}")
    if problems or gaps or dups or received != want:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
