"""One client that stops reading, among normal drop-stream clients under load (issue 6).

    python bench/slow_consumer.py [--subscribers 500] [--transport sse|ws] [--repeats 1]
                                  [--backlog-bytes N] [--subscriber-buffer N] [--rate 1000]

Two kinds of run, each on a fresh server, at the same settings as sse_drops.py (1000 price
changes/s over 10 sports, ~10 % crossing threshold 10, `--warmup` 5 s then a `--duration` 20 s
window):
- **baseline**: `--subscribers` normal clients (SSE `/v1/odds-drop/{sport}?threshold=10`, or
  with `--transport ws` `/ws/live/{sport}?types=odds_drop&threshold=10`);
- **slow**: the same, plus ONE client that connects at the start of the window with a small
  SO_RCVBUF (`--slow-rcvbuf`, 4 KiB) and never reads after sending its request. It asks for
  every drop of every sport (`threshold=1`, sport `all`: ~1000 frames/s, ~0.6 MB/s), so its
  backlog passes the server's limit within seconds: `[streams] direct_backlog_bytes` (4 MiB by
  default; `--backlog-bytes` lowers it) for SSE, the `subscriber_buffer` channel (4096 frames;
  `--subscriber-buffer`) for WebSocket.
`--repeats` R alternates baseline and slow runs R times (`--slow-first`: slow run first in each pair).

Reported, per run: the normal clients' latency p50/p99 (receipt - frame `timestamp`), the
delivered/expected ratio, server CPU; for the slow runs also when the slow client was cut
(server log "cutting off a slow", `gateway_slow_consumer_cuts_total`), the server RSS just
before the slow client connected, at its peak, and after the cut, and
`gateway_stream_connections` before/after; the state of the server's socket to the slow
client (from /proc/PID/net/tcp: still open? bytes queued?), `--observe` s after the load
stopped, while the slow client still does not read; then the slow client drains its socket
and the script reports what it finally got (the SSE `error` slow_consumer frame and the end
of the body, or the WebSocket error message and close code 4008), and RSS/connections after.
Criterion of the issue: the slow client raises the others' p99 by at most 20 %.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _wsclient
from bench._common import (
    HOST,
    SPORTS,
    CpuMeter,
    Server,
    SystemCpu,
    open_fds,
    percentiles,
    print_machine,
    print_table,
    raise_nofile,
    rss_kib,
    start_server,
    wait_quiet,
)
from bench.ws_drops import (
    add_load_args,
    join_all,
    latencies_of,
    metrics,
    recv_msg,
    start_load,
    stop_server,
    subscriber_targets,
    wait_connected,
)

CUT_LINE = "cutting off a slow"
TCP_STATES = {"01": "ESTABLISHED", "04": "FIN_WAIT1", "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE",
              "08": "CLOSE_WAIT", "09": "LAST_ACK", "0B": "CLOSING"}


class Sampler(threading.Thread):
    """Server RSS every 0.2 s and /metrics every 0.5 s, with wall times."""

    def __init__(self, server: Server, transport: str) -> None:
        super().__init__(daemon=True)
        self.server, self.transport = server, transport
        self.rss: list[tuple[float, int]] = []
        self.met: list[tuple[float, float, float]] = []  # (t, cuts, connections of the transport)
        self.halt = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.halt.is_set():
            self.rss.append((time.time(), rss_kib(self.server.pid)))
            if n % 3 == 0:
                self.met.append((time.time(), *read_counts(self.server, self.transport)))
            n += 1
            self.halt.wait(0.2)

    def rss_at(self, t: float) -> int:
        """The last sample at or before `t`."""
        before = [v for ts, v in self.rss if ts <= t]
        return before[-1] if before else (self.rss[0][1] if self.rss else 0)

    def peak(self, t0: float, t1: float) -> int:
        return max((v for ts, v in self.rss if t0 <= ts <= t1), default=0)


def read_counts(server: Server, transport: str) -> tuple[float, float]:
    m = metrics(server)
    return (m.get("gateway_slow_consumer_cuts_total", float("nan")),
            m.get(f'gateway_stream_connections{{transport="{transport}"}}', 0.0))


def slow_path(transport: str) -> str:
    if transport == "ws":
        return "/ws/live/all?types=odds_drop&threshold=1&heartbeat_s=30"
    return "/v1/odds-drop/all?threshold=1&heartbeat_s=30"


def open_slow(port: int, path: str, key: str, transport: str, rcvbuf: int) -> socket.socket:
    """Connect with a small receive buffer, send the request, and read nothing."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: sets the window
    sock.connect((HOST, port))
    if transport == "ws":
        ws_key = b"c2xvdy1jb25zdW1lci1rZXk="
        req = (f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {ws_key.decode()}\r\nSec-WebSocket-Version: 13\r\nX-API-Key: {key}\r\n\r\n")
    else:
        req = (f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept: text/event-stream\r\n"
               f"X-API-Key: {key}\r\n\r\n")
    sock.sendall(req.encode())
    return sock


def server_socket_state(server: Server, client_port: int) -> str:
    """The server-side TCP socket to the slow client, from /proc/PID/net/tcp: state, tx/rx queue."""
    try:
        with open(f"/proc/{server.pid}/net/tcp") as fh:
            lines = fh.read().splitlines()[1:]
    except OSError as exc:
        return f"? ({exc})"
    for line in lines:
        f = line.split()
        local, remote, st, queues = f[1], f[2], f[3], f[4]
        if int(local.split(":")[1], 16) == server.port and int(remote.split(":")[1], 16) == client_port:
            tx, _rx = (int(x, 16) for x in queues.split(":"))
            return f"{TCP_STATES.get(st, st)}, {tx:,} bytes unsent in the kernel"
    return "gone (the server closed it)"


def drain(sock: socket.socket, transport: str, timeout: float) -> dict[str, Any]:
    """Read everything the server still sends, until it closes or `timeout`."""
    sock.settimeout(0.5)
    data = bytearray()
    eof = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(1 << 20)
        except TimeoutError:
            if transport == "ws" and b"\x88" in data[-200:]:
                break  # the close frame arrived; the server may linger for our reply
            continue
        except OSError as exc:
            return {"bytes": len(data), "eof": f"error {exc!r}", "final": _final(data, transport)}
        if not chunk:
            eof = True
            break
        data += chunk
        if transport == "sse" and data.endswith(b"\r\n0\r\n\r\n"):
            break  # the last chunk: the response is over (the connection may stay open: keep-alive)
    return {"bytes": len(data), "eof": eof, "final": _final(data, transport)}


def _final(data: bytearray, transport: str) -> str:
    if transport == "sse":
        body_end = data.endswith(b"0\r\n\r\n")
        err = b'"error":"slow_consumer"' in data[-4096:]
        return f"slow_consumer error frame: {'yes' if err else 'no'}; chunked body ended: {'yes' if body_end else 'no'}"
    end = data.find(b"\r\n\r\n")
    frames, _ = _wsclient.parse_frames(bytearray(data[end + 4:])) if end >= 0 else ([], 0)
    codes = [int.from_bytes(p[:2], "big") for op, _, p, _ in frames if op == _wsclient.OP_CLOSE and len(p) >= 2]
    err = any(op == _wsclient.OP_TEXT and b"slow_consumer" in p for op, _, p, _ in frames)
    msgs = sum(1 for op, *_ in frames if op == _wsclient.OP_TEXT)
    return f"{msgs} messages; slow_consumer error message: {'yes' if err else 'no'}; close codes: {codes or 'none'}"


def one_run(args: argparse.Namespace, sports: list[str], slow: bool, label: str) -> dict[str, Any]:
    overrides: dict[tuple[str, str], str] = {}
    if args.backlog_bytes:
        overrides[("streams", "direct_backlog_bytes")] = str(args.backlog_bytes)
    if args.subscriber_buffer:
        overrides[("streams", "subscriber_buffer")] = str(args.subscriber_buffer)
    nofile = raise_nofile(max(4096, args.subscribers * 2 + 1024))
    server = start_server(overrides, keep_tmp=args.keep)
    procs: list[mp.process.BaseProcess] = []
    sampler = Sampler(server, args.transport)
    sock: socket.socket | None = None
    out: dict[str, Any] = {"label": label, "slow": slow}
    try:
        targets = subscriber_targets(server, args.transport, sports, args.subscribers, args.threshold)
        slow_key = server.create_key("bench-slow", "enterprise")
        load = start_load(args, server, sports, targets, args.transport, nofile, procs)
        wait_connected(load, args.subscribers)
        sampler.start()
        t0 = time.time() + args.warmup
        t1 = t0 + args.duration
        stop_at = t1 + 1.0
        load.lg_conn.send(("go", t0 * 1000, t1 * 1000, stop_at))
        for _, parent in load.clients:
            parent.send(("window", t0 * 1000, t1 * 1000, stop_at + 0.5))
        meter = CpuMeter({"server": server.pid})
        cmeter = CpuMeter({p.name: p.pid for p, _ in load.clients}, tree=False)
        time.sleep(max(0.0, t0 - time.time()))
        system = SystemCpu()
        system.start()
        meter.start()
        cmeter.start()
        cuts0, conns0 = read_counts(server, args.transport)
        t_slow = time.time()
        rss0 = rss_kib(server.pid)
        if slow:
            sock = open_slow(server.port, slow_path(args.transport), slow_key, args.transport, args.slow_rcvbuf)
            out["rcvbuf"] = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            out["client_port"] = sock.getsockname()[1]
        time.sleep(max(0.0, t1 - time.time()))
        cpu = meter.stop()["server"]
        ccpu = cmeter.stop()
        machine = system.stop()
        lg_res = recv_msg(load.lg_conn, "result", args.duration + 120)
        results = [recv_msg(parent, "result", 120) for _, parent in load.clients]
        lat = [x for r in results for x in latencies_of(r["latencies"])]
        ids: set[int] = set()
        for r in results:
            ids.update(r["ids"])
        deliveries = sum(r["drops_window"] for r in results)
        expected = len(ids) * args.subscribers / len(sports)
        ours = (cpu + sum(ccpu.values())) / 100
        out.update({
            "lat": percentiles(lat, (50, 90, 99, 100)), "ratio": deliveries / expected if expected else float("nan"),
            "deliveries": deliveries / args.duration, "cpu": cpu, "ccpu": ccpu,
            "rate": lg_res["sent"] / args.duration,
            "other": max(0.0, (machine["busy"] - machine["irq"]) * (os.cpu_count() or 1) / 100 - ours),
            "normal_disconnects": sum(r["disconnects"] for r in results),
            "normal_slow_frames": sum(r["slow_consumer"] for r in results),
        })
        if slow:
            assert sock is not None
            # the load is over: watch whether the server lets go while the client still does not read
            time.sleep(args.observe)
            t_obs = time.time()
            cuts1, _ = read_counts(server, args.transport)
            cut_times = [ts for ts, c, _ in sampler.met if c > cuts0]
            t_cut = cut_times[0] if cut_times else float("nan")
            after_cut = [v for ts, v in sampler.rss if ts >= t_cut + 1.0] if cut_times else []
            out.update({
                "cuts_log": server.log_count(CUT_LINE), "cuts_metric": cuts1 - cuts0,
                "cut_after_s": t_cut - t_slow,
                # before the slow client / the most seen / at the first sample after the cut (load still on)
                "conns": (conns0, max((c for ts, _, c in sampler.met if ts >= t_slow), default=float("nan")),
                          next((c for ts, _, c in sampler.met if ts >= t_cut), float("nan"))),
                "rss_before": rss0, "rss_peak": sampler.peak(t_slow, t_obs),
                "rss_after_cut": min(after_cut) if after_cut else float("nan"), "rss_observe": rss_kib(server.pid),
                "fds_observe": open_fds(server.pid),
                "sock_observe": server_socket_state(server, out["client_port"]),
            })
            out["ping_timeouts"] = server.log_count("closing a WebSocket client silent")
            out["drain"] = drain(sock, args.transport, args.drain_timeout)
            sock.close()
            sock = None
            time.sleep(2.0)
            out["sock_after_drain"] = server_socket_state(server, out["client_port"])
            out["rss_after_drain"] = rss_kib(server.pid)
            out["fds_after_drain"] = open_fds(server.pid)
            out["conns_after_drain"] = read_counts(server, args.transport)[1]
        else:
            out["fds_observe"] = open_fds(server.pid)
        return out
    finally:
        sampler.halt.set()
        if sock is not None:
            sock.close()
        join_all(procs)
        stop_server(server, args.keep)


def _print_run(args: argparse.Namespace, r: dict[str, Any]) -> None:
    lq = r["lat"]
    rows: list[tuple[str, object]] = [
        ("normal clients latency p50 / p90 / p99 / max ms",
         f"{lq[50]:.1f} / {lq[90]:.1f} / {lq[99]:.1f} / {lq[100]:.1f}"),
        ("normal clients delivered / expected", f"{r['ratio']:.3f}"),
        ("deliveries/s (normal clients)", r["deliveries"]),
        ("price changes/s achieved", r["rate"]),
        ("server CPU %", r["cpu"]),
        ("client CPU % per process", " / ".join(f"{v:.1f}" for v in r["ccpu"].values())),
        ("other processes on the machine, cores", f"{r['other']:.2f}"),
        ("normal clients disconnected / slow_consumer frames", f"{r['normal_disconnects']} / "
                                                             f"{r['normal_slow_frames']}"),
    ]
    if r["slow"]:
        c = r["conns"]
        rows += [
            ("slow client SO_RCVBUF (kernel value)", r["rcvbuf"]),
            ("slow client cut: log lines / metric delta", f"{r['cuts_log']} / {r['cuts_metric']:.0f}"),
            ("cut seen (metric) after connecting, s", r["cut_after_s"]),
            (f"gateway_stream_connections{{{args.transport}}} before / max / after the cut",
             f"{c[0]:.0f} / {c[1]:.0f} / {c[2]:.0f}"),
            ("server RSS MiB before / peak / after cut (min)",
             f"{r['rss_before'] / 1024:.1f} / {r['rss_peak'] / 1024:.1f} / {r['rss_after_cut'] / 1024:.1f}"),
            (f"server RSS MiB, open fds {args.observe:g} s after the load (client still not reading)",
             f"{r['rss_observe'] / 1024:.1f}, {r['fds_observe']}"),
            ("server socket to the slow client then", r["sock_observe"]),
            ("slow client then reads: bytes received, server closed the TCP connection",
             f"{r['drain']['bytes']:,}, {r['drain']['eof']}"),
            ("slow client finally got", r["drain"]["final"]),
            ("server socket 2 s after the slow client closed its end", r["sock_after_drain"]),
            ("server log: WebSocket ping-timeout closes", r["ping_timeouts"]),
            ("server RSS MiB, fds, connections after the drain",
             f"{r['rss_after_drain'] / 1024:.1f}, {r['fds_after_drain']}, {r['conns_after_drain']:.0f}"),
        ]
    print_table(f"{r['label']}: {args.subscribers} normal {args.transport} clients"
                f"{' + 1 slow client' if r['slow'] else ''}", rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subscribers", type=int, default=500, help="normal clients")
    ap.add_argument("--transport", choices=("sse", "ws"), default="sse")
    add_load_args(ap)
    ap.add_argument("--repeats", type=int, default=1, help="baseline/slow pairs, alternated")
    ap.add_argument("--slow-rcvbuf", type=int, default=4096, help="SO_RCVBUF of the slow client, bytes")
    ap.add_argument("--backlog-bytes", type=int, default=0, help="override [streams] direct_backlog_bytes")
    ap.add_argument("--subscriber-buffer", type=int, default=0, help="override [streams] subscriber_buffer")
    ap.add_argument("--observe", type=float, default=35.0,
                    help="after the load, wait this long (slow client still not reading) before checking, s; "
                         "the default outlasts the WebSocket ping timeout (30 s)")
    ap.add_argument("--drain-timeout", type=float, default=15.0)
    ap.add_argument("--slow-first", action="store_true", help="in each pair, run the slow run first")
    ap.add_argument("--max-increase", type=float, default=20.0, help="allowed p99 increase, %%")
    args = ap.parse_args(argv)
    args.sports = max(1, min(args.sports, len(SPORTS)))
    sports = list(SPORTS[:args.sports])
    print_machine()
    runs = []
    for i in range(max(1, args.repeats)):
        for slow in ((True, False) if args.slow_first else (False, True)):
            wait_quiet(args)
            label = f"{'slow' if slow else 'baseline'} run {i + 1}"
            r = one_run(args, sports, slow, label)
            _print_run(args, r)
            runs.append(r)
    base = [r["lat"][99] for r in runs if not r["slow"]]
    slow_p99 = [r["lat"][99] for r in runs if r["slow"]]
    b, s = statistics.median(base), statistics.median(slow_p99)
    rise = 100 * (s / b - 1)
    cut_ok = all(r["cuts_metric"] >= 1 for r in runs if r["slow"])
    print_table("summary", [
        ["normal clients p99 ms, baseline runs", " / ".join(f"{x:.1f}" for x in base)],
        ["normal clients p99 ms, slow runs", " / ".join(f"{x:.1f}" for x in slow_p99)],
        ["p99 change (medians)", f"{rise:+.1f} % (limit +{args.max_increase:g} %)"],
        ["slow client cut in every slow run", "yes" if cut_ok else "NO"],
    ])
    ok = rise <= args.max_increase and cut_ok
    print(f"\nresult: {'PASS' if ok else 'FAIL'}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
