"""Shared pieces of the benchmarks: a gateway subprocess, keys, procfs readers, figures.

Not a test helper: the benchmarks are scripts run on purpose and print their figures.
Everything listens on 127.0.0.1 only and every wait is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024

# ten real sport keys of the shipped catalog (gateway/core/catalog.py)
SPORTS = (
    "basketball_nba",
    "baseball_mlb",
    "soccer_epl",
    "americanfootball_nfl",
    "icehockey_nhl",
    "soccer_spain_la_liga",
    "soccer_germany_bundesliga",
    "soccer_italy_serie_a",
    "tennis_atp_us_open",
    "mma_mixed_martial_arts",
)
# per_market books in the shipped config: they fire moneyline, spread and total drops
BOOKS = ("pinnacle", "bet365", "betmgm", "caesars", "bovada", "betrivers")


# -- config -----------------------------------------------------------------------------

def patch_toml(text: str, section: str, key: str, value: str) -> str:
    """Replace `key = ...` inside `[section]` of a TOML text (value is a TOML literal)."""
    out: list[str] = []
    current = None
    done = False
    for line in text.splitlines():
        head = re.match(r"^\s*\[([^\[\]]+)\]\s*(#.*)?$", line)
        if head:
            if current == section and not done:  # key absent: add it at the end of the section
                out.append(f"{key} = {value}")
                done = True
            current = head.group(1).strip()
        elif current == section and not done and re.match(rf"^\s*{re.escape(key)}\s*=", line):
            line = f"{key} = {value}"
            done = True
        out.append(line)
    if not done:
        if current != section:
            out.append(f"[{section}]")
        out.append(f"{key} = {value}")
    return "\n".join(out) + "\n"


def write_config(tmp: Path, db: Path, overrides: dict[tuple[str, str], str] | None = None) -> Path:
    text = (ROOT / "config.toml").read_text()
    text = patch_toml(text, "demo", "print_key", "false")
    text = patch_toml(text, "database", "path", json.dumps(str(db)))
    for (section, key), value in (overrides or {}).items():
        text = patch_toml(text, section, key, value)
    path = tmp / "config.toml"
    path.write_text(text)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def raise_nofile(want: int) -> int:
    """Raise RLIMIT_NOFILE (soft) towards `want`, capped by the hard limit; return the new soft limit.
    Children spawned afterwards (the server, client processes) inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


# -- the server subprocess ---------------------------------------------------------------

def _gateway_cmd() -> list[str]:
    script = Path(sys.executable).parent / "gateway"
    if script.exists():
        return [str(script)]
    found = shutil.which("gateway")
    return [found] if found else [sys.executable, "-m", "gateway"]


@dataclass
class Server:
    tmp: Path
    config: Path
    db: Path
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    keep_tmp: bool = False
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def create_key(self, name: str, tier: str = "enterprise", scopes: Sequence[str] = ()) -> str:
        """Create a key with the CLI (concurrently with the running server; SQLite WAL)."""
        cmd = [*_gateway_cmd(), "keys", "create", "--tier", tier, "--name", name, "--config", str(self.config),
               "--db", str(self.db)]
        for s in scopes:
            cmd += ["--scope", s]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"gateway keys create failed: {out.stderr.strip()}")
        key = out.stdout.strip().splitlines()[-1].strip()
        self.keys[name] = key
        return key

    def get(self, path: str, key: str | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            conn.request("GET", path, headers={"X-API-Key": key} if key else {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; log:\n{self.log_tail()}")
            try:
                status, body = self.get("/readyz", timeout=2)
                if status == 200:
                    return
                last = f"{status} {body[:200]!r}"
            except OSError as exc:
                last = repr(exc)
            time.sleep(0.05)
        raise RuntimeError(f"server not ready after {timeout} s ({last}); log:\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def log_count(self, needle: str) -> int:
        try:
            return self.log.read_text(errors="replace").count(needle)
        except OSError:
            return 0

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, wait for a clean exit (streams closed, writer flushed); SIGKILL after `timeout`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"warning: server did not stop within {timeout} s; killing it", file=sys.stderr)
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def cleanup(self) -> None:
        if not self.keep_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


def start_server(overrides: dict[tuple[str, str], str] | None = None, *, keep_tmp: bool = False,
                 ready_timeout: float = 30.0) -> Server:
    """A gateway on a free port with a fresh temp DB and no feeds; returns once /readyz is 200."""
    tmp = Path(tempfile.mkdtemp(prefix="gwbench-"))
    db = tmp / "bench.db"
    config = write_config(tmp, db, overrides)
    port = free_port()
    log = tmp / "server.log"
    cmd = [*_gateway_cmd(), "serve", "--config", str(config), "--db", str(db), "--port", str(port), "--no-feeds"]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp)
    server = Server(tmp=tmp, config=config, db=db, port=port, proc=proc, log=log, keep_tmp=keep_tmp)
    try:
        server.wait_ready(ready_timeout)
    except BaseException:
        server.stop(5)
        server.cleanup()
        raise
    return server


# -- procfs ---------------------------------------------------------------------------------

def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    # the command name may contain spaces and parentheses: split after the last ')'
    return raw[raw.rindex(b")") + 2:].decode().split()


def _ppids() -> dict[int, int]:
    out: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            f = _stat_fields(int(name))
            if f is not None:
                out[int(name)] = int(f[1])
    return out


def process_tree(pid: int) -> list[int]:
    """`pid` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for child, parent in _ppids().items():
        children.setdefault(parent, []).append(child)
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, ()))
    return tree


def cpu_seconds(pid: int, *, tree: bool = True) -> float:
    """User+system CPU of a process (all its threads) and, with `tree`, its descendants,
    including children it has already reaped (cutime/cstime)."""
    total = 0
    for p in process_tree(pid) if tree else [pid]:
        f = _stat_fields(p)
        if f is not None:
            # fields 14-17 of stat: utime stime cutime cstime (index 11.. after the name)
            total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return total / CLK_TCK


def rss_kib(pid: int, *, tree: bool = True) -> int:
    """Resident set size in KiB (VmRSS from /proc/PID/status), summed over the tree."""
    total = 0
    for p in process_tree(pid) if tree else [pid]:
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


class CpuMeter:
    """CPU % of a set of processes over a window: `start()`, then `stop()` -> {pid: percent}."""

    def __init__(self, pids: dict[str, int], *, tree: bool = True) -> None:
        self.pids = pids
        self.tree = tree
        self._t0 = 0.0
        self._c0: dict[str, float] = {}

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._c0 = {name: cpu_seconds(pid, tree=self.tree) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        elapsed = time.monotonic() - self._t0
        return {name: 100.0 * (cpu_seconds(pid, tree=self.tree) - self._c0[name]) / elapsed
                for name, pid in self.pids.items()}


def _proc_stat_cpu() -> list[int]:
    with open("/proc/stat") as fh:
        parts = fh.readline().split()
    return [int(x) for x in parts[1:9]]  # user nice system idle iowait irq softirq steal


def machine_busy(seconds: float = 2.0) -> float:
    """% of all cores busy over `seconds` (to see what else is running before a benchmark)."""
    m = SystemCpu()
    m.start()
    time.sleep(seconds)
    return m.stop()["busy"]


def add_quiet_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--quiet-below", type=float, default=30.0,
                    help="before starting, wait until the machine is less busy than this (%% of all cores)")
    ap.add_argument("--quiet-wait", type=float, default=60.0, help="wait at most this long for that, s (0: never)")


def wait_quiet(args: argparse.Namespace) -> float:
    """On a shared machine, wait (bounded) until other load drops below `--quiet-below`; return
    the last busy % seen."""
    deadline = time.monotonic() + args.quiet_wait
    busy = machine_busy(1.0)
    while busy >= args.quiet_below and time.monotonic() < deadline:
        busy = machine_busy(2.0)
    if busy >= args.quiet_below:
        print(f"warning: the machine is {busy:.0f}% busy with other work; figures will suffer", file=sys.stderr)
    return busy


class SystemCpu:
    """Whole-machine CPU over a window (from /proc/stat): busy and steal, in % of all cores."""

    def start(self) -> None:
        self._s0 = _proc_stat_cpu()

    def stop(self) -> dict[str, float]:
        s1 = _proc_stat_cpu()
        d = [b - a for a, b in zip(self._s0, s1, strict=True)]
        total = sum(d) or 1
        idle = d[3] + d[4]
        return {"busy": 100.0 * (total - idle - d[7]) / total, "steal": 100.0 * d[7] / total,
                "idle": 100.0 * idle / total, "irq": 100.0 * (d[5] + d[6]) / total}


# -- figures ---------------------------------------------------------------------------------

def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of unsorted values; nan if empty."""
    if not values:
        return float("nan")
    s = sorted(values)
    if len(s) == 1:
        return float(s[0])
    pos = (len(s) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return float(s[lo] + (s[hi] - s[lo]) * (pos - lo))


def percentiles(values: Sequence[float], qs: Iterable[float] = (50, 90, 99)) -> dict[float, float]:
    s = sorted(values)
    return {q: percentile(s, q) for q in qs}


def fmt(value: object, digits: int = 1) -> str:
    if isinstance(value, float):
        if value != value:  # nan
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_table(title: str, rows: Sequence[tuple[str, object]] | Sequence[Sequence[object]],
                headers: Sequence[str] | None = None) -> None:
    """Print an aligned table: (name, value) pairs, or rows under `headers`."""
    cells = [[fmt(c) for c in row] for row in rows]
    if headers:
        cells.insert(0, list(headers))
    ncol = max(len(r) for r in cells) if cells else 0
    widths = [max(len(r[i]) for r in cells if i < len(r)) for i in range(ncol)]
    print(f"\n== {title} ==")
    for n, row in enumerate(cells):
        print("  " + "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)))
        if headers and n == 0:
            print("  " + "  ".join("-" * w for w in widths))
    sys.stdout.flush()


def machine_info() -> dict[str, str]:
    model = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def print_machine(busy_sample_s: float = 2.0) -> None:
    """One line about the machine, and how busy it is before we start (other sessions' load)."""
    info = machine_info()
    if busy_sample_s > 0:
        info["busy before start"] = f"{machine_busy(busy_sample_s):.0f}% of all cores"
    print(" | ".join(f"{k}: {v}" for k, v in info.items()), flush=True)


# -- profiling (optional: py-spy installed outside the venv) --------------------------------

PROFILER = "/tmp/pyspy/bin/py-spy"  # pip install --target /tmp/pyspy py-spy
_LINE = re.compile(r":\d+\)$")


def profile_server(pid: int, seconds: float, rate: int = 200, tag: str = "server") -> str:
    """py-spy `record` the process for `seconds` (non-blocking sampling); return a summary."""
    if not Path(PROFILER).exists():
        return f"(no profile: {PROFILER} missing; pip install --target /tmp/pyspy py-spy)"
    out = Path(tempfile.gettempdir()) / f"gateway-{tag}-profile-{int(time.time())}.txt"
    cmd = [PROFILER, "record", "--duration", str(max(1, int(seconds))), "--format", "raw", "--rate", str(rate),
           "--nonblocking", "-o", str(out), "-p", str(pid)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if res.returncode != 0 or not out.exists():
        return f"(py-spy failed: {res.stderr.strip()[-500:]})"
    return summarise_profile(out, expected=int(seconds * rate))


def summarise_profile(path: Path, top: int = 15, expected: int = 0) -> str:
    """Top functions by own time (leaf frames) and by inclusive time, from py-spy's raw format."""
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [_LINE.sub(")", f) for f in stack.split(";")]  # per function, not per line
        leaf = frames[-1]
        own[leaf] = own.get(leaf, 0) + n
        for f in set(frames):
            incl[f] = incl.get(f, 0) + n
    total = total or 1
    busy = f", ~{100 * total / expected:.0f}% of wall time on-CPU in Python threads" if expected else ""
    lines = [f"\n== py-spy profile of the server ({total} non-idle samples{busy}) ==", "  own %  function"]
    for name, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * n / total:5.1f}  {name}")
    lines.append("  incl % function")
    for name, n in sorted(incl.items(), key=lambda kv: -kv[1])[: top + 10]:
        lines.append(f"  {100 * n / total:5.1f}  {name}")
    lines.append(f"  (raw profile: {path})")
    return "\n".join(lines)
