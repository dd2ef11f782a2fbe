"""Hostile clients against a real `gateway serve` process (issue 14): whatever one connection
does ends that connection only, and leaves no descriptor, task or slot behind.

Each test reproduces an attack that worked before its fix (the fix is in
gateway/web/hypercorn_patches.py unless said otherwise).
"""

from __future__ import annotations

import json
import os
import resource
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trio

from .conftest import Running
from .helpers import quote
from .processes import (
    ServerProcess,
    raw,
    read_until_closed,
    reset,
    server_process,
    wait_for,
    ws_frame,
    ws_handshake,
)

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")

SHORT = {"header_timeout_s": 1.0, "body_timeout_s": 1.0}


def test_truncated_bodies_with_a_fin_do_not_stop_the_server(tmp_path: Path) -> None:
    """`Content-Length: 1000`, 10 bytes, FIN: Hypercorn's error response raced its own
    send_eof (BusyResourceError) and the exception stopped the listener: the process exited
    within a second, no key needed."""
    with server_process(tmp_path) as srv:
        for _ in range(15):
            socks = [raw(srv.port, b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789")
                     for _ in range(20)]
            for s in socks:
                s.shutdown(socket.SHUT_WR)
            time.sleep(0.05)
            for s in socks:
                s.close()
        time.sleep(0.5)
        assert srv.alive(), srv.log_text()[-3000:]
        assert "Traceback" not in srv.log_text()


async def test_a_connection_that_fails_inside_hypercorn_is_contained(gateway: Running,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Any exception from a connection's tasks ends that connection, logged, never the
    server (in process: a bug is planted in Hypercorn's HTTP/1.1 protocol for one header)."""
    from hypercorn.protocol.h11 import H11Protocol

    original = H11Protocol.handle

    async def buggy(self: Any, event: Any) -> None:
        if b"X-Boom" in getattr(event, "data", b""):
            raise RuntimeError("a planted bug")
        await original(self, event)

    monkeypatch.setattr(H11Protocol, "handle", buggy)
    url = urlsplit(gateway.url)
    with trio.fail_after(10):
        for _ in range(5):
            stream = await trio.open_tcp_stream(url.hostname or "", url.port or 0)
            await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Boom: 1\r\n\r\n")
            assert await stream.receive_some(100) == b""  # closed, unanswered
            await stream.aclose()
        async with gateway.client() as c:
            assert (await c.get("/healthz")).status_code == 200


@pytest.mark.parametrize("with_key", [False, True])
def test_flooded_websockets_that_reset_leave_nothing(tmp_path: Path, with_key: bool) -> None:
    """Handshake, thousands of small frames, then a TCP reset: Hypercorn's reader blocked for
    ever handing frames to an app that had returned, keeping the socket and tasks (193 of
    200 descriptors left 60 s later; with a key 249 of 250 at ~230 KiB each)."""
    with server_process(tmp_path) as srv:
        query = f"?apiKey={srv.key('flood')}" if with_key else ""
        fds, tasks = srv.fds(), srv.metric("gateway_tasks")
        flood = ws_frame(b'{"type":"ping"}') * 20000
        for _ in range(30):
            s = raw(srv.port, ws_handshake(f"/ws/odds/basketball_nba{query}"))
            s.recv(4096)
            try:
                s.sendall(flood)
            except OSError:
                pass
            reset(s)
        wait_for(lambda: srv.fds() <= fds, 10, f"descriptors back to {fds} (now {srv.fds()})")
        wait_for(lambda: srv.metric("gateway_tasks") <= tasks, 10, "tasks back to the baseline")


def test_a_stalled_body_gets_408_and_the_connection_closes(tmp_path: Path) -> None:
    with server_process(tmp_path, server=SHORT) as srv:
        key = srv.key("feeder", scopes=("ingest",))
        started = time.monotonic()
        s = raw(srv.port, f"POST /v1/ingest/odds HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n"
                          "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n[{}".encode())
        answer = read_until_closed(s, timeout=10)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"] == "request_timeout"
        assert 0.9 < time.monotonic() - started < 5
        assert srv.metric("gateway_request_timeouts_total") >= 1


def test_stalled_requests_without_a_key_are_let_go(tmp_path: Path) -> None:
    """200 POSTs with no key, 10 of 1000 body bytes, then silence: all were still open after
    180 s. Now each gets its 401 at once and the connection closes once the body stalls."""
    with server_process(tmp_path, server=SHORT) as srv:
        fds = srv.fds()
        socks = [raw(srv.port, b"POST /v1/ingest/odds HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789")
                 for _ in range(200)]
        wait_for(lambda: srv.fds() <= fds, 10, f"descriptors back to {fds}")
        for s in socks:
            assert b" 401 " in read_until_closed(s, timeout=5).split(b"\r\n", 1)[0]
            s.close()


def test_partial_and_empty_heads_are_cut_at_the_header_timeout(tmp_path: Path) -> None:
    with server_process(tmp_path, server=SHORT) as srv:
        fds = srv.fds()
        silent = [raw(srv.port) for _ in range(20)]
        partial = [raw(srv.port, b"GET /v1/sports HTTP/1.1\r\nHost: x\r\nX-Slow") for _ in range(20)]
        dribble = raw(srv.port, b"GET /healthz HTTP/1.1\r\n")
        for _ in range(4):  # a byte every 0.4 s: each read is quick, the whole head is not
            time.sleep(0.4)
            try:
                dribble.sendall(b"X")
            except OSError:
                break
        wait_for(lambda: srv.fds() <= fds, 10, "descriptors back")
        for s in partial:
            assert read_until_closed(s, timeout=2).startswith(b"HTTP/1.1 408")
        for s in [*silent, dribble]:
            s.close()


def test_pending_connections_cannot_starve_the_rest(tmp_path: Path) -> None:
    """More half-sent requests than the pending cap: the oldest are closed, /healthz answers."""
    with server_process(tmp_path, server={"max_pending_connections": 50, "body_timeout_s": 60.0}) as srv:
        key = srv.key("feeder", scopes=("ingest",))
        head = f"POST /v1/ingest/odds HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\nContent-Length: 100\r\n\r\n[".encode()
        socks = [raw(srv.port, head) for _ in range(50)]
        time.sleep(1.2)  # older than the 1 s grace: evictable
        socks += [raw(srv.port, head) for _ in range(150)]
        with httpx.Client(base_url=srv.url, timeout=5) as c:
            for _ in range(20):
                assert c.get("/healthz").status_code == 200
        assert srv.metric("gateway_pending_connections") <= 50 + 150
        wait_for(lambda: srv.metric("gateway_pending_connections_evicted_total") >= 50, 5, "oldest evicted")
        for s in socks:
            s.close()


def test_running_out_of_descriptors_logs_a_line_a_second(tmp_path: Path) -> None:
    """EMFILE on accept was logged with a traceback ten times a second."""
    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (96, 96))

    with server_process(tmp_path, preexec=low_limit, server={"max_pending_connections": 10_000,
                                                             "header_timeout_s": 30.0}) as srv:
        socks = []
        for _ in range(150):
            try:
                socks.append(raw(srv.port, timeout=2))
            except OSError:
                break
        time.sleep(2.5)
        for s in socks:
            s.close()
        wait_for(lambda: srv.fds() < 90, 10, "descriptors released")
        assert srv.alive()
        log = srv.log_text()
        lines = [line for line in log.splitlines() if "accept returned" in line]
        assert 1 <= len(lines) <= 5, lines
        assert "Traceback" not in log


def _fill_log(srv: ServerProcess, frames: int) -> None:
    """`frames` odds frames in the stream log, through ingest (prices alternate on 100 rows)."""
    key = srv.key("filler", scopes=("ingest",))
    with httpx.Client(base_url=srv.url, timeout=60, headers={"X-API-Key": key}) as c:
        for start in range(0, frames, 5000):
            rows = [quote(-110 - 20 * ((start + i) // 100 % 2), event=f"e{(start + i) % 100}")
                    for i in range(5000)]
            assert c.post("/v1/ingest/odds", json=rows).status_code == 200


def test_abandoned_replays_stop_at_once(tmp_path: Path) -> None:
    """Resume from id 1 on a long log, read the first bytes, leave: the replay ran on over the
    whole log (here 1.3 s of CPU and +71 MiB kept per client for 200k frames; 51 s of CPU for
    209k frames on a slower host) and held the stream slot meanwhile. Now each stops within
    a page, and the slot comes back at once."""
    solo = {"max_connections": 1, "pbp_sse": True, "odds_streams": True, "requests_per_minute": 6000}
    with server_process(tmp_path, tiers={"solo": solo}) as srv:
        _fill_log(srv, 100_000)  # 100k odds frames and 100k drops
        key = srv.key("resumer", tier="solo")
        request = f"GET /v1/odds-drop/all?apiKey={key}&last_event_id=1 HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        cpu, rss = srv.cpu_s(), srv.rss_kib()
        for _ in range(5):  # each resume gets the slot of the one before back within 2 s
            deadline = time.monotonic() + 2
            while True:
                s = raw(srv.port, request)
                if s.recv(100).startswith(b"HTTP/1.1 200"):
                    break
                s.close()
                assert time.monotonic() < deadline, "the slot of a replay whose client left was not released"
                time.sleep(0.05)
            s.close()
        time.sleep(1.0)
        assert srv.cpu_s() - cpu < 1.0, "the server worked on for clients that had left"
        assert srv.rss_kib() - rss < 20 * 1024


def test_a_refused_body_closes_its_connection(tmp_path: Path) -> None:
    """After a 413 (or a 401 before the body was read) the connection was neither answered
    nor closed while the client went on sending: now the answer comes, then the close."""
    with server_process(tmp_path) as srv:
        key = srv.key("feeder", scopes=("ingest",))
        for head in (f"X-API-Key: {key}\r\nContent-Length: 99999999", "Content-Length: 1000"):
            s = raw(srv.port, f"POST /v1/ingest/odds HTTP/1.1\r\nHost: x\r\n{head}\r\n\r\n0123456789".encode())
            started = time.monotonic()
            answer = read_until_closed(s, timeout=10)
            assert answer.split(b" ", 2)[1] in (b"413", b"401"), answer[:100]
            assert time.monotonic() - started < 3


def test_a_websocket_to_an_unknown_path_gets_404(tmp_path: Path) -> None:
    with server_process(tmp_path) as srv:
        s = raw(srv.port, ws_handshake("/ws/nowhere"))
        answer = read_until_closed(s, timeout=5)
        assert answer.startswith(b"HTTP/1.1 404"), answer[:200]
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"] == "not_found"
        assert "Not within a request context" not in srv.log_text()


def test_a_hypercorn_without_the_patched_internals_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """The patches check every internal they rely on before patching anything."""
    from hypercorn.trio.tcp_server import TCPServer

    from gateway.web import hypercorn_patches

    monkeypatch.setattr(hypercorn_patches, "_installed", False)
    monkeypatch.delattr(TCPServer, "_read_data")
    with pytest.raises(hypercorn_patches.HypercornMismatch, match=r"Hypercorn \S+ lacks TCPServer._read_data"):
        hypercorn_patches.install()
