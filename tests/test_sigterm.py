"""SIGTERM on the real `gateway serve` process: streams get their final frame / 1001, the
writer is flushed, the process exits within 5 s, and no committed row is lost."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from gateway.store import log_stream_counts

from .helpers import next_of, quote, sse_events


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CONFIG = Path(__file__).resolve().parent.parent / "config.toml"


def start(db: Path, port: int) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "gateway", "serve", "--config", str(CONFIG), "--db", str(db), "--port", str(port),
           "--no-feeds"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


async def test_sigterm_ends_streams_flushes_and_exits(tmp_path: Path) -> None:
    db, port = tmp_path / "g.db", free_port()
    proc = start(db, port)
    try:
        with trio.fail_after(30):
            key = ""
            while not key:  # the banner prints the demo key (enterprise, with the ingest scope)
                line = await trio.to_thread.run_sync(proc.stdout.readline)  # type: ignore[union-attr]
                assert line, proc.stderr.read()  # type: ignore[union-attr]
                if "demo key" in line:
                    key = line.split()[-1]
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(10, read=30)) as c:
                r = await c.post("/v1/ingest/odds", json=[quote(-110), quote(-125)], headers={"X-API-Key": key})
                assert r.json()["accepted"] == 2
                async with c.stream("GET", "/v1/odds-drop/all", params={"apiKey": key}) as resp, \
                        open_websocket_url(f"ws://127.0.0.1:{port}/ws/odds/basketball_nba?apiKey={key}") as ws:
                    events = sse_events(resp)
                    await next_of(events, "connected")
                    assert json.loads(await ws.get_message())["type"] == "connected"
                    started = time.monotonic()
                    proc.send_signal(signal.SIGTERM)
                    final = await next_of(events, "stream_status")
                    try:
                        while True:
                            await ws.get_message()
                    except ConnectionClosed as exc:
                        ws_code = exc.reason.code
            returncode = await trio.to_thread.run_sync(proc.wait, 10)
            took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert final.data["reason"] == "shutdown" and ws_code == 1001
    assert returncode == 0 and took < 5, (returncode, took)
    conn = sqlite3.connect(db)
    try:
        prices = {r[0] for r in conn.execute("SELECT price FROM quotes")}
        logged = log_stream_counts(conn).get("drop", 0)
    finally:
        conn.close()
    assert prices == {-125} and logged == 1
