"""Operations: /metrics, graceful shutdown, access-log redaction, the CLI."""

from __future__ import annotations

import gc
import logging
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import trio

from gateway.cli import main, tune_gc
from gateway.config import load_config

from .conftest import Running, make_config, start_gateway
from .helpers import next_of, push, quote, sse_events


async def test_metrics_exposes_streams_and_ingest(gateway: Running) -> None:
    key, ingest = gateway.key(), gateway.key(scopes=("ingest",))
    with trio.fail_after(10):
        async with gateway.client() as c:
            await push(c, ingest, [quote(-110)])
            await push(c, ingest, [quote(-130)])
            async with c.stream("GET", "/v1/odds-drop/all", params={"apiKey": key}) as resp:
                await next_of(sse_events(resp), "connected")
                text = (await c.get("/metrics")).text
    assert 'gateway_stream_connections{transport="sse"} 1.0' in text
    assert 'gateway_stream_connections_by_tier{tier="enterprise"} 1.0' in text
    assert "gateway_drops_total 1.0" in text and "gateway_ingest_rows_total" in text
    assert "gateway_writer_batch_seconds_bucket" in text and 'source="push"' in text


def _tasks(task: trio.lowlevel.Task | None = None) -> int:
    task = task or trio.lowlevel.current_root_task()
    assert task is not None
    return 1 + sum(_tasks(child) for nursery in task.child_nurseries for child in nursery.child_tasks)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
async def test_a_client_that_closes_is_let_go_at_once(gateway: Running) -> None:
    """Hypercorn kept a connection with no request in progress until keep_alive_timeout
    (75 s) even after its client had closed it (its tasks, and for a client that sent
    nothing or left a stream after its status line, its socket): a client connecting in a
    loop could exhaust descriptors."""
    url = urlsplit(gateway.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80

    def descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    stream_request = f"GET /v1/sse/odds/basketball_nba?apiKey={gateway.key()} HTTP/1.1\r\nHost: x\r\n\r\n"
    fds, tasks = descriptors(), _tasks()
    with trio.fail_after(10):
        for i in range(40):
            stream = await trio.open_tcp_stream(host, port)
            if i % 4 == 1:  # cut in the middle of the request line
                await stream.send_all(b"GET /v1/spo")
            elif i % 4 == 2:  # a whole request, answered, then the client closes the idle connection
                await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert (await stream.receive_some(4096)).startswith(b"HTTP/1.1 200")
            elif i % 4 == 3:  # a stream left right after its status line
                await stream.send_all(stream_request.encode())
                assert (await stream.receive_some(12)).startswith(b"HTTP/1.1 2")
            await stream.aclose()  # i % 4 == 0: connected, sent nothing
        while descriptors() > fds or _tasks() > tasks:  # noqa: ASYNC110 - polling the process state
            await trio.sleep(0.05)


async def test_graceful_shutdown_ends_streams_with_a_final_frame(nursery: trio.Nursery, tmp_path: Path) -> None:
    gw = await start_gateway(nursery, make_config(tmp_path))
    key, ingest = gw.key(), gw.key(scopes=("ingest",))
    with trio.fail_after(10):
        async with gw.client() as c:
            await push(c, ingest, [quote(-110)])
            async with c.stream("GET", "/v1/odds-drop/all", params={"apiKey": key}) as resp:
                events = sse_events(resp)
                await next_of(events, "connected")
                started = trio.current_time()
                gw.stop.set()
                final = await next_of(events, "stream_status")
                rest = [ev async for ev in events]  # the body ends cleanly after the final frame
            await gw.done.wait()
            assert trio.current_time() - started < 5
    assert final.data["status"] == "closing" and final.data["reason"] == "shutdown" and rest == []


async def test_access_log_redacts_keys(gateway: Running, caplog: pytest.LogCaptureFixture) -> None:
    key = gateway.key("free")
    with caplog.at_level(logging.INFO, logger="gateway.access"), trio.fail_after(10):
        async with gateway.client() as c:
            await c.get("/v1/sports", params={"apiKey": key})
            await c.get("/v1/sports", params={"api_key": key})
    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.access"]
    assert len(lines) == 2 and all(key not in line and "***" in line for line in lines)


def test_cli_keys_lifecycle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "k.db")
    assert main(["keys", "create", "--tier", "business", "--name", "bot1", "--db", db]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert key.startswith("gw_")
    assert main(["keys", "list", "--db", db]) == 0
    listing = capsys.readouterr().out
    assert "bot1" in listing and key not in listing and "active" in listing
    assert main(["keys", "create", "--tier", "gold", "--name", "x", "--db", db]) == 2
    assert "unknown tier 'gold'" in capsys.readouterr().err
    assert main(["keys", "set-tier", "bot1", "pro", "--db", db]) == 0
    assert "now tier pro" in capsys.readouterr().out
    assert main(["keys", "set-tier", "bot1", "gold", "--db", db]) == 2
    assert "unknown tier 'gold'" in capsys.readouterr().err
    assert main(["keys", "list", "--db", db]) == 0
    assert "\tpro\t" in capsys.readouterr().out
    assert main(["keys", "revoke", "bot1", "--db", db]) == 0
    assert main(["keys", "list", "--db", db]) == 0
    assert "revoked" in capsys.readouterr().out


def test_cli_config_errors_name_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nhost = "127.0.0.1"\nprot = 1\n')
    assert main(["check-config", "--config", str(bad)]) == 2
    assert "[server] unknown key(s): prot" in capsys.readouterr().err
    bad.write_text('[[feeds]]\ntype = "carrier_pigeon"\n')
    assert main(["check-config", "--config", str(bad)]) == 2
    assert "carrier_pigeon" in capsys.readouterr().err
    bad.write_text("[server]\ngc_full_pass_every = 0\n")
    assert main(["check-config", "--config", str(bad)]) == 2
    assert "[server] gc_full_pass_every must be >= 1" in capsys.readouterr().err
    shipped = Path(__file__).resolve().parent.parent / "config.toml"
    assert main(["check-config", "--config", str(shipped)]) == 0


def test_serve_spaces_out_full_gc_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gc, "freeze", lambda: None)  # not in the test process
    monkeypatch.setattr("gateway.gcstats.install", lambda: None)
    before = gc.get_threshold()
    try:
        tune_gc(load_config(Path(__file__).resolve().parent.parent / "config.toml"))
        assert gc.get_threshold() == (50, before[1], 20000)
    finally:
        gc.set_threshold(*before)


async def test_rest_rate_limit_per_key(gateway: Running) -> None:
    key = gateway.key("free")  # 60/min: bursts of 10, then 429 with Retry-After
    with trio.fail_after(10):
        async with gateway.client() as c:
            statuses = [(await c.get("/v1/sports", params={"apiKey": key})).status_code for _ in range(12)]
            r = await c.get("/v1/sports", params={"apiKey": key})
    assert statuses[:10] == [200] * 10 and statuses[10:] == [429, 429]
    assert r.json()["error"] == "rate_limit" and int(r.headers["retry-after"]) >= 1
    assert r.json()["retry_after_seconds"] >= 1
