"""What one small ingest request costs the server (issue 19): CPU per request and round trip.

    python bench/ingest_cost.py [--rate 200] [--rows 1] [--connections 4] [--duration 10]
                                [--runs 3] [--profile] [--no-pin]

A `gateway serve --no-feeds` subprocess with no subscribers; this process is the client:
`--connections` HTTP/1.1 keep-alive connections, each with at
most one request in flight, fed on an open-loop schedule of `--rate` requests/s (request i
is due at start + i/rate and goes out on the first idle connection; the wait for one is
the "queue" figure). Each request is `--rows` flat quotes, each a price move of one key of
a 1,440-key market (every key's first price is sent before, as the baseline, so every
quote is a stored, published drop).

Reported per run, over the `--duration` window after `--warmup`:
- server CPU (user+system of its process and threads, from /proc) per request, in us;
- round trip (send -> whole answer) mean / p50 / p99 / max, in ms;
- answers by status (a 429 counts as not accepted) and rows accepted.
The targets of issue 19 (one-quote POST: at most 300 us of server CPU, mean round trip under
2 ms at 200/s) are checked and printed. `--pin` (default): the server on the first CPU, this
client on the others. `--profile`: a py-spy profile of the server during the window (needs
/tmp/pyspy/bin/py-spy). The machine is shared: CPU figures are noisy; see `other load`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import selectors
import socket
import sys
import time
from collections import deque
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
    SystemCpu,
    add_quiet_args,
    fmt,
    percentile,
    print_machine,
    print_table,
    profile_server,
    start_server,
    wait_quiet,
)
from bench._loadgen import Mover, Poster, build_market, take_reply

TARGET_CPU_US = 300.0
TARGET_MEAN_MS = 2.0


@dataclass(slots=True)
class _Conn:
    sock: socket.socket
    buf: bytearray = field(default_factory=bytearray)
    busy: bool = False
    sent_at: float = 0.0
    counted: bool = False  # the request in flight was sent inside the window


def _http_request(port: int, key: str, body: bytes) -> bytes:
    return (f"POST /v1/ingest/odds HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
            f"X-API-Key: {key}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


def run_load(port: int, key: str, mover: Mover, *, rate: float, rows: int, connections: int,
             warmup: float, duration: float, on_window: Any = None) -> dict[str, Any]:
    """The open-loop client; returns the window's figures (`on_window(start)`/`(stop)` hooks
    bracket the window, for the CPU meters)."""
    sel = selectors.DefaultSelector()
    conns: list[_Conn] = []
    for _ in range(connections):
        sock = socket.create_connection((HOST, port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        c = _Conn(sock)
        conns.append(c)
        sel.register(sock, selectors.EVENT_READ, c)
    idle = deque(conns)  # round robin: every connection stays in use (an idle one is closed after header_timeout_s)
    rtt: list[float] = []
    queue_ms: list[float] = []
    statuses: dict[str, int] = {}
    accepted = sent_window = 0
    bad: list[str] = []
    start = time.perf_counter() + 0.05
    t0, t1 = start + warmup, start + warmup + duration
    i = 0
    window_open = False
    pending_due: list[float] = []
    try:
        while True:
            now = time.perf_counter()
            if not window_open and now >= t0:
                window_open = True
                if on_window:
                    on_window("start")
            if now >= t1:
                break
            while start + i / rate <= now:  # due requests join the queue
                pending_due.append(start + i / rate)
                i += 1
            while pending_due and idle:
                due = pending_due.pop(0)
                c = idle.popleft()
                body, _ = mover.batch(rows)
                c.busy, c.sent_at = True, time.perf_counter()
                c.counted = t0 <= c.sent_at < t1
                if c.counted:
                    sent_window += 1
                    queue_ms.append((c.sent_at - due) * 1000)
                c.sock.sendall(_http_request(port, key, body))
            wait = max(0.0, min(start + i / rate, t1) - time.perf_counter())
            for sk, _ in sel.select(wait if not pending_due or not idle else 0):
                c = sk.data
                try:
                    data = c.sock.recv(65536)
                except BlockingIOError:
                    continue
                if not data:
                    raise ConnectionError(f"the server closed an ingest connection (busy {c.busy}, "
                                          f"buffer {bytes(c.buf[:300])!r}, statuses {statuses})")
                c.buf += data
                while True:
                    got = take_reply(c.buf)
                    if got is None:
                        break
                    code, payload = got
                    answer = json.loads(payload)
                    status = str(code)
                    if c.counted:
                        rtt.append((time.perf_counter() - c.sent_at) * 1000)
                        statuses[status] = statuses.get(status, 0) + 1
                        accepted += int(answer.get("accepted", 0))
                        if status != "200" and len(bad) < 3:
                            bad.append(payload[:300].decode(errors="replace"))
                    c.busy, c.counted = False, False
                    idle.append(c)
    finally:
        if on_window and window_open:
            on_window("stop")
        for c in conns:
            with contextlib.suppress(OSError):
                c.sock.close()
        sel.close()
    return {"rtt": rtt, "queue_ms": queue_ms, "statuses": statuses, "accepted": accepted, "sent": sent_window,
            "bad": bad}


def one_run(args: argparse.Namespace, run: int) -> dict[str, Any]:
    all_cpus = os.sched_getaffinity(0)
    pin = args.pin and len(all_cpus) >= 2
    if pin:
        os.sched_setaffinity(0, {min(all_cpus)})
    try:
        overrides = dict(o.split("=", 1) for o in args.set)
        server = start_server({tuple(k.rsplit(".", 1)): v for k, v in overrides.items()})  # type: ignore[misc]
    finally:
        if pin:
            os.sched_setaffinity(0, all_cpus - {min(all_cpus)})
    try:
        key = server.create_key("ingest-cost", args.tier, ["ingest"])
        keys = build_market(list(SPORTS), list(BOOKS), 4, "", args.seed + run)
        mover = Mover(keys, 0.1, 10, args.seed + run + 1)
        poster = Poster(HOST, server.port, key)
        for body in mover.baseline_bodies(2000):
            status, reply = poster.post(body)
            if status != 200:
                raise RuntimeError(f"baseline POST answered {status}: {reply}")
        poster.close()
        meter = CpuMeter({"server": server.pid})
        system = SystemCpu()
        marks: dict[str, float] = {}
        profile: list[str] = []

        def on_window(what: str) -> None:
            marks[what] = time.perf_counter()
            if what == "start":
                meter.start()
                system.start()
                marks["self0"] = time.process_time()
            else:
                marks["cpu"] = meter.stop()["server"]
                marks["busy"] = system.stop()["busy"]
                marks["self"] = time.process_time() - marks["self0"]

        if args.profile:
            import threading

            def prof() -> None:
                time.sleep(args.warmup + 0.5)
                profile.append(profile_server(server.pid, max(1.0, args.duration - 1), tag="ingest-cost"))

            threading.Thread(target=prof, daemon=True).start()
        res = run_load(server.port, key, mover, rate=args.rate, rows=args.rows,
                       connections=args.connections, warmup=args.warmup, duration=args.duration,
                       on_window=on_window)
        if profile or args.profile:
            deadline = time.monotonic() + 30
            while args.profile and not profile and time.monotonic() < deadline:
                time.sleep(0.2)
    finally:
        os.sched_setaffinity(0, all_cpus)
        server.stop()
        server.cleanup()
    window = marks["stop"] - marks["start"]
    done = len(res["rtt"])
    cpu_s = marks["cpu"] / 100 * window
    ncpu = os.cpu_count() or 1
    rtt = res["rtt"]
    return {
        "run": run, "requests": done, "requests_s": done / window,
        "cpu_pct": marks["cpu"], "cpu_us": cpu_s / done * 1e6 if done else float("nan"),
        "mean": sum(rtt) / done if done else float("nan"), "p50": percentile(rtt, 50), "p99": percentile(rtt, 99),
        "max": max(rtt, default=float("nan")), "queue_p99": percentile(res["queue_ms"], 99),
        "statuses": res["statuses"], "accepted": res["accepted"], "bad": res["bad"],
        "client_pct": 100 * marks["self"] / window,
        "other_cores": max(0.0, marks["busy"] * ncpu / 100 - marks["cpu"] / 100 - marks["self"] / window),
        "profile": profile[0] if profile else "",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=200.0, help="requests/s")
    ap.add_argument("--rows", type=int, default=1, help="quotes per request")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tier", default="enterprise")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=TOML",
                    help="a config override, e.g. tiers.enterprise.requests_per_minute=60000")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True)
    add_quiet_args(ap)
    args = ap.parse_args(argv)
    wait_quiet(args)
    print_machine()
    print(f"{args.rate:g} requests/s of {args.rows} quote(s) over {args.connections} connections; "
          f"{args.duration:g} s window after {args.warmup:g} s; no subscribers", flush=True)
    results = []
    for run in range(args.runs):
        r = one_run(args, run)
        results.append(r)
        print(f"run {run + 1}: {r['requests_s']:.0f} requests/s, server CPU {r['cpu_pct']:.1f}% "
              f"= {r['cpu_us']:.0f} us per request; round trip mean {r['mean']:.2f} p50 {r['p50']:.2f} "
              f"p99 {r['p99']:.2f} max {r['max']:.1f} ms; statuses {r['statuses']}, accepted {r['accepted']}; "
              f"other load {r['other_cores']:.2f} cores", flush=True)
        for b in r["bad"]:
            print(f"  e.g. {b}")
        if r["profile"]:
            print(r["profile"])
    rows = [[r["run"] + 1, r["requests_s"], r["cpu_pct"], r["cpu_us"], r["mean"], r["p50"],
             r["p99"], r["max"], r["queue_p99"], json.dumps(r["statuses"]), f"{r['other_cores']:.2f}"]
            for r in results]
    print_table("ingest cost per request", rows, headers=[
        "run", "req/s", "srv CPU%", "us/request", "mean ms", "p50 ms", "p99 ms", "max ms",
        "queue p99 ms", "statuses", "other cores"])
    cpu = [r["cpu_us"] for r in results]
    mean = [r["mean"] for r in results]
    ok = all(r["statuses"].keys() == {"200"} for r in results)
    print(f"{fmt(min(cpu), 0)}-{fmt(max(cpu), 0)} us of server CPU per request "
          f"(target <= {TARGET_CPU_US:g}: {'MET' if max(cpu) <= TARGET_CPU_US else 'NOT MET'}), mean round trip "
          f"{min(mean):.2f}-{max(mean):.2f} ms (target < {TARGET_MEAN_MS:g}: "
          f"{'MET' if max(mean) < TARGET_MEAN_MS else 'NOT MET'}), every answer 200: {ok}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
