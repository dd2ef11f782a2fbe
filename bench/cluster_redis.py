"""What Redis itself costs the cluster: the writer's PUBLISH script and the edges' XREADs, as
fast as one client can drive them, with Redis's own CPU (README "Cluster", the projection).

    python bench/cluster_redis.py [--entries 200000] [--batch 50] [--readers 1,4]

A fresh redis-server (AOF, fsync every second). The writer side calls gateway/cluster/link.py's
PUBLISH script with `--batch` entries per call (a commit's frames) of the size the stream holds
(~27-byte values: the store's compact rows); then `--readers` clients each XREAD the whole
stream in pages of 2,000, as edges do. Entries/s and Redis CPU per million entries.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import HOST, cpu_seconds, free_port, print_machine, print_table
from gateway.cluster import link
from gateway.cluster.records import entry_id, pack_entry

VALUE = bytes(range(2, 22))  # a drop's body is ~12-20 bytes; packed with topic and time ~27


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--readers", default="1,4")
    args = ap.parse_args()
    import redis

    print_machine()
    tmp = Path(tempfile.mkdtemp(prefix="gwredis-"))
    port = free_port()
    proc = subprocess.Popen([shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port), "--bind",
                             HOST, "--dir", str(tmp), "--appendonly", "yes", "--save", "", "--daemonize", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    rows = []
    try:
        r = redis.Redis(host=HOST, port=port)
        r.hset(link.META, mapping={"epoch": "e", "head": 0})
        script = r.register_script(link.PUBLISH)
        keys = [link.LOG, link.META, link.NAMES, link.QUOTES, link.EVENTS, link.LIVE, link.SPORTS, link.BOOKS,
                link.MARKETS]
        value = pack_entry(41, 1_796_000_000_000, VALUE)
        head, seq = b"0", 0
        cpu0, t0 = cpu_seconds(proc.pid), time.perf_counter()
        while seq < args.entries:
            entries: list[bytes | str] = []
            for _ in range(args.batch):
                seq += 1
                entries += (entry_id(seq), value)
            # the quotes of the batch too: one board row per two entries (an odds_update and its drop)
            quotes: list[bytes | str] = []
            for i in range(args.batch // 2):
                quotes += (f'["ev{i % 40}","book{i % 6}","h2h","home",""]', f"[null,{-110 - seq % 30},{seq}]")
            assert script(keys=keys, args=[head, b"e", seq, args.batch, *entries, 0, len(quotes) // 2, *quotes,
                                           0, 0, 0, 0, 0]) == 1
            head = str(seq).encode()
        wall, cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - cpu0
        rows.append((f"publish, {args.batch} entries per call (one client)", f"{seq / wall:,.0f} entries/s",
                     f"Redis CPU {cpu / wall * 100:.0f} %", f"{cpu / seq * 1e6:.2f} us of Redis CPU per entry"))
        rows.append(("stream memory", f"{r.memory_usage(link.LOG, samples=0) / seq:.1f} bytes per entry",
                     f"{seq:,} entries", f"used_memory {r.info('memory')['used_memory'] / 2**20:.1f} MiB"))
        for n in (int(x) for x in args.readers.split(",")):
            def read_all() -> None:
                c = redis.Redis(host=HOST, port=port)
                after = "0-0"
                while True:
                    got = c.xread({link.LOG: after}, count=2000)
                    if not got:
                        return
                    after = got[0][1][-1][0]

            cpu0, t0 = cpu_seconds(proc.pid), time.perf_counter()
            threads = [threading.Thread(target=read_all) for _ in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall, cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - cpu0
            total = seq * n
            rows.append((f"XREAD by {n} reader(s), 2,000 per call", f"{total / wall:,.0f} entries/s",
                         f"Redis CPU {cpu / wall * 100:.0f} %", f"{cpu / total * 1e6:.2f} us of Redis CPU per entry"))
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    print_table(f"Redis for the cluster ({args.entries:,} entries)", rows)
    print(f"(hiredis: {'yes' if _hiredis() else 'no'}; {os.cpu_count()} cores, shared)")


def _hiredis() -> bool:
    from redis.utils import HIREDIS_AVAILABLE

    return bool(HIREDIS_AVAILABLE)


if __name__ == "__main__":
    main()
