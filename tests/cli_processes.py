"""The `gateway` command line as a person runs it: real processes, real files, port 0.

`run_cli` runs a command that ends; `Serving` runs `gateway serve`/`replay` and reads its
banner (the URL, the database path, the demo key) from stdout; stderr goes to a file.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

GATEWAY = [sys.executable, "-m", "gateway"]
REPO = Path(__file__).resolve().parent.parent


def run_cli(args: Sequence[str], *, cwd: Path, timeout: float = 30, prefix: Sequence[str] = ()
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, *GATEWAY, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=_env())


def _env() -> dict[str, str]:
    # the package is importable from any working directory (an editable install or the checkout)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return env


@dataclass
class Serving:
    proc: subprocess.Popen[bytes]
    banner: str
    stderr_path: Path

    @property
    def url(self) -> str:
        found = re.search(r"listening on (http://\S+)", self.banner)
        assert found, self.banner
        return found.group(1)

    @property
    def database(self) -> str:
        found = re.search(r"database: (.+)", self.banner)
        assert found, self.banner
        return found.group(1).strip()

    @property
    def demo_key(self) -> str:
        found = re.search(r"demo key \([^)]*\): (\S+)", self.banner)
        assert found, self.banner
        return found.group(1)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)


@contextmanager
def serving(args: Sequence[str], *, cwd: Path, name: str = "serve", timeout: float = 30) -> Iterator[Serving]:
    """Start `gateway ARGS` (serve or replay) and wait for its banner; SIGINT it at the end."""
    err = cwd / f"{name}.stderr"
    with open(err, "wb") as stderr:
        proc = subprocess.Popen([*GATEWAY, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=stderr,
                                stdin=subprocess.DEVNULL, env=_env())
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    seen, deadline = b"", time.monotonic() + timeout
    try:
        while b"  feeds:" not in seen:  # the banner is one write: once this line is in, all of it is
            chunk = proc.stdout.read()
            if chunk:
                seen += chunk
            elif proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"gateway {' '.join(args)} did not start (exit {proc.poll()}): "
                                     f"{seen.decode(errors='replace')}{err.read_text(errors='replace')}")
            else:
                time.sleep(0.02)
        yield Serving(proc, seen.decode(), err)
    finally:
        Serving(proc, "", err).stop()
        proc.stdout.close()


@dataclass
class Recorder:
    """A `gateway record` process whose first stderr line has been read."""

    proc: subprocess.Popen[str]
    first_line: str

    def finish(self, *, interrupt: bool = True, timeout: float = 15) -> tuple[int, str]:
        """SIGINT it (unless it ends by itself); (exit status, the rest of its stderr)."""
        if interrupt:
            self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout)
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read()


@contextmanager
def recording(args: Sequence[str], *, cwd: Path) -> Iterator[Recorder]:
    """Start `gateway record ARGS` and read its first line (once both streams are open, it
    says `recording URL ...`); killed at the end if it is still running."""
    proc = subprocess.Popen([*GATEWAY, "record", *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, env=_env())
    assert proc.stderr is not None
    try:
        yield Recorder(proc, proc.stderr.readline())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        proc.stderr.close()


def wait_for(cond: object, timeout: float, what: str, every: float = 0.05) -> float:
    """Poll `cond()` until true; returns the seconds it took."""
    start = time.monotonic()
    while not cond():  # type: ignore[operator]
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(every)
    return time.monotonic() - start


def status(url: str, key: str, path: str = "/v1/sports") -> int:
    return httpx.get(url + path, headers={"X-API-Key": key}, timeout=5).status_code


def read_only(path: Path) -> list[str]:
    """Make `path` read-only for the command about to run; returns a command prefix. Root
    ignores permissions, so for root the prefix runs the command in a private mount namespace
    where `path` is a read-only bind mount (the test is skipped where that is not possible)."""
    if os.geteuid() != 0:
        path.chmod(0o555 if path.is_dir() else 0o444)
        return []
    unshare = shutil.which("unshare")
    mount = f"mount --bind -o ro '{path}' '{path}'"
    if unshare is None or subprocess.run([unshare, "-rm", "sh", "-c", mount], capture_output=True,
                                         timeout=10).returncode != 0:
        pytest.skip("running as root without a way to make a path read-only (unshare -rm)")
    return [unshare, "-rm", "sh", "-c", f'{mount} && exec "$@"', "sh"]
