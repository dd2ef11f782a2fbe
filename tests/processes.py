"""A real `gateway serve` process for tests that attack it or count its descriptors.

The process gets the shipped config with overrides, no feeds, port 0 (the bound URL is read
from its banner), and a database in the test's tmp_path. Keys are created the way
`gateway keys create` does it, beside the running process.
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from gateway.auth import create_key
from gateway.config import config_from_dict
from gateway.store import Store

SHIPPED_CONFIG = Path(__file__).resolve().parent.parent / "config.toml"


def write_config(tmp_path: Path, **sections: dict[str, Any]) -> Path:
    data = tomllib.loads(SHIPPED_CONFIG.read_text())
    data["feeds"] = []
    data["demo"] = {"print_key": False}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    path = tmp_path / "config.toml"
    path.write_text(_toml(data))
    return path


def _toml(data: dict[str, Any]) -> str:
    """Enough TOML for the config's shapes (tables of scalars and lists, tables of tables)."""
    lines: list[str] = []
    for name, table in data.items():
        if name == "feeds":
            continue  # always empty here
        if all(isinstance(v, dict) for v in table.values()) and table:
            for sub, values in table.items():
                lines.append(f"[{name}.{sub}]")
                lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
        else:
            lines.append(f"[{name}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def create_key_in(config: Path, db: Path, name: str, tier: str = "enterprise", scopes: tuple[str, ...] = ()) -> str:
    """A new key in the database `db` of a gateway running with `config` (its tiers), as the CLI makes one."""
    cfg = config_from_dict(tomllib.loads(config.read_text()), base_dir=config.parent)
    store = Store(str(db), readers=1)
    try:
        return store.write_fn_sync(lambda c: create_key(c, name=name, tier=tier, tiers=cfg.tiers, scopes=scopes))
    finally:
        store.close()


class ServerProcess:
    def __init__(self, proc: subprocess.Popen[bytes], url: str, config: Path, db: Path, log: Path) -> None:
        self.proc, self.url, self.config, self.db, self.log = proc, url, config, db, log
        self.port = int(url.rsplit(":", 1)[1])

    @property
    def pid(self) -> int:
        return self.proc.pid

    def key(self, name: str, tier: str = "enterprise", scopes: tuple[str, ...] = ()) -> str:
        return create_key_in(self.config, self.db, name, tier, scopes)

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return -1

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def metric(self, name: str) -> float:
        text = httpx.get(self.url + "/metrics", timeout=5).text
        found = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M)
        assert found, f"{name} not in /metrics"
        return float(found.group(1))

    def alive(self) -> bool:
        return self.proc.poll() is None and httpx.get(self.url + "/healthz", timeout=5).status_code == 200

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def server_process(tmp_path: Path, *, preexec: Any = None, **sections: dict[str, Any]) -> Iterator[ServerProcess]:
    config = write_config(tmp_path, **sections)
    db, log = tmp_path / "gateway.db", tmp_path / "server.log"
    cmd = [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--db", str(db), "--port", "0",
           "--no-feeds"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=out, stdin=subprocess.DEVNULL, cwd=tmp_path,
                                preexec_fn=preexec)
    try:
        url = _banner_url(proc, log)
        yield ServerProcess(proc, url, config, db, log)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        assert proc.stdout is not None
        proc.stdout.close()


def _banner_url(proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    os.set_blocking(proc.stdout.fileno(), False)
    seen = b""
    while time.monotonic() < deadline:
        chunk = proc.stdout.read()
        if chunk:
            seen += chunk
            found = re.search(rb"listening on (http://\S+)", seen)
            if found:
                return found.group(1).decode()
        elif proc.poll() is not None:
            break
        time.sleep(0.02)
    raise RuntimeError(f"gateway did not start: {seen.decode(errors='replace')}\n{log.read_text(errors='replace')}")


# -- raw clients ----------------------------------------------------------------------------

def raw(port: int, data: bytes = b"", *, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if data:
        sock.sendall(data)
    return sock


def reset(sock: socket.socket) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a client that vanishes does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def ws_handshake(path: str, extra: str = "") -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n").encode()


def ws_frame(payload: bytes, opcode: int = 1, *, fin: bool = True, mask: bool = True) -> bytes:
    """One client frame (masked, as RFC 6455 requires of clients, unless mask=False)."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([bit | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def read_until_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (or `timeout` passes)."""
    sock.settimeout(timeout)
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return out


def wait_for(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)
