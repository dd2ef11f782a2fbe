"""`gateway replay` / `gateway record`: progress on stderr, and replays that give the same drops.

`gateway record` is a client of a running gateway's streams (it used to start a second
gateway on the same database); `gateway serve --record FILE` records what that gateway ingests.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import trio

import gateway.testing
from gateway.config import FeedConfig
from gateway.core.frames import DROP, Frame
from gateway.core.parse import play_to_row, quote_to_flat
from gateway.feeds.replay import DEMO_RECORDING, read_recording, run_replay
from gateway.progress import CountingRecorder, ProgressBar, render_bar, report_recording

from .cli_processes import recording as recording_process
from .cli_processes import run_cli, serving, wait_for

Drop = tuple[str, str, str, int, int]


def test_render_bar() -> None:
    assert render_bar("replay", 340, 1062, width=10) == "replay  340/1062 batches [###.......] 32%"
    assert render_bar("replay", 0, 0, width=4) == "replay  0/0 batches [####] 100%"


def test_progress_bar_on_a_terminal_and_in_a_log() -> None:
    now = [0.0]
    tty = io.StringIO()
    bar = ProgressBar("replay", stream=tty, tty=True, width=4, min_interval_s=1, clock=lambda: now[0])
    for done in range(1, 11):
        now[0] += 0.4
        bar.update(done, 10)
    assert tty.getvalue() == ("\rreplay  1/10 batches [....] 10%\rreplay  4/10 batches [#...] 40%"
                              "\rreplay  7/10 batches [##..] 70%\rreplay  10/10 batches [####] 100%\n")
    log = io.StringIO()
    bar = ProgressBar("replay", stream=log, tty=False, width=4)
    for done in range(1, 101):
        bar.update(done, 100)
    lines = log.getvalue().splitlines()
    assert len(lines) == 11 and lines[0].endswith(" 1%") and lines[-1].endswith("100%")  # the first, each tenth


async def test_record_progress_counts_batches_and_rows(tmp_path: Path, autojump_clock: trio.abc.Clock) -> None:
    rec = CountingRecorder(tmp_path / "rec.jsonl")
    out = io.StringIO()
    batches = list(read_recording(DEMO_RECORDING))[:5]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: report_recording(rec, stream=out, tty=False, interval_s=10))
        for b in batches:
            if b.kind == "quotes":
                rec.write_quotes(b.quotes, b.source or "x", b.at_ms)
            else:
                rec.write_plays(b.plays, b.at_ms)
            await trio.sleep(5)
        nursery.cancel_scope.cancel()
    rec.close()
    rows = sum(len(b) for b in batches)
    lines = out.getvalue().splitlines()
    assert lines[-1] == f"record  5 batches, {rows} rows -> {tmp_path / 'rec.jsonl'}"
    assert len(lines) == 3  # at 10 s, at 20 s, and the totals at the end
    assert len(list(read_recording(tmp_path / "rec.jsonl"))) == 5


def _drops(frames: list[Frame], into: list[Drop]) -> None:
    for f in frames:
        if f.stream == DROP:
            d = json.loads(f.json)
            into.append((d["event_id"], d["bookmaker"], d["side"], d["prev"], d["new"]))


async def _replay_into_fresh_gateway(*, via_feed: bool, path: Path = DEMO_RECORDING,
                                     into: list[dict[str, Any]] | None = None) -> list[Drop]:
    drops: list[Drop] = []
    async with gateway.testing.open_gateway() as gw:
        writer = gw.gateway.writer
        writer.on_commit.append(lambda frames: _drops(frames, drops))
        if into is not None:
            writer.on_commit.append(lambda frames: into.extend(json.loads(f.json) for f in frames if f.stream == DROP))
        if via_feed:
            await run_replay(FeedConfig(type="replay", path=str(path), speed=10_000), writer)
            await writer.submit_and_wait([], [], source="barrier")  # everything queued before it is committed
        else:
            await gw.replay(path)
    return drops


async def test_replaying_the_demo_recording_gives_the_same_drops_every_time() -> None:
    with trio.fail_after(15):
        runs = [await _replay_into_fresh_gateway(via_feed=False) for _ in range(2)]
        runs.append(await _replay_into_fresh_gateway(via_feed=True))
    assert len(runs[0]) > 5
    assert runs[0] == runs[1] == runs[2]


async def _drain(stream: trio.abc.ReceiveStream | None, buf: bytearray) -> None:
    assert stream is not None
    async for chunk in stream:
        buf += chunk


async def test_cli_replay_shows_progress(tmp_path: Path) -> None:
    total = len(list(read_recording(DEMO_RECORDING)))
    proc = await trio.lowlevel.open_process([sys.executable, "-m", "gateway", "replay", str(DEMO_RECORDING), "--speed",
                                             "1000", "--port", "0", "--db", str(tmp_path / "gw.db")], cwd=tmp_path,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = bytearray(), bytearray()
    try:
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_drain, proc.stdout, out)
                nursery.start_soon(_drain, proc.stderr, err)
                while b"100%" not in err:
                    assert proc.poll() is None, err.decode()
                    await trio.sleep(0.02)
                proc.send_signal(signal.SIGINT)
                code = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert code == 0, err.decode()
    assert f"replay  {total}/{total} batches [{'#' * 30}] 100%" in err.decode()


# -- gateway record: a client of a running gateway ---------------------------------------------

def _by_key(drops: list[dict[str, Any]]) -> dict[tuple[Any, ...], list[tuple[int, int]]]:
    """Each line's drops in order. Order across lines within one commit is not kept by the
    streams (an odds_update carries a row: an event, a book and a kind), and means nothing."""
    out: dict[tuple[Any, ...], list[tuple[int, int]]] = defaultdict(list)
    for d in drops:
        out[(d["event_id"], d["bookmaker"], d["market_key"], d["outcome"], d.get("player"), d["point"])].append(
            (d["prev"], d["new"]))
    return dict(out)


def _push_recording(url: str, key: str, path: Path) -> int:
    """Ingest a recording over HTTP, one request per batch, each answered once committed."""
    with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=10) as c:
        batches = 0
        for batch in read_recording(path):
            if batch.kind == "quotes":
                r = c.post("/v1/ingest/odds", params={"source": batch.source},
                           json=[quote_to_flat(q) for q in batch.quotes])
            else:
                r = c.post("/v1/ingest/pbp", json=[play_to_row(p) for p in batch.plays])
            assert r.status_code == 200 and not r.json()["rejected"], r.text
            batches += 1
        return batches


def test_record_beside_a_running_gateway_replays_to_the_same_drops(tmp_path: Path) -> None:
    db, recording = tmp_path / "gw.db", tmp_path / "rec.jsonl"
    with serving(["serve", "--db", str(db), "--port", "0", "--no-feeds"], cwd=tmp_path) as running:
        with recording_process([str(recording), "--db", str(db)], cwd=tmp_path) as record:
            assert record.first_line == (f"recording {running.url} (odds and play-by-play, every sport) "
                                         f"-> {recording}\n")
            _push_recording(running.url, running.demo_key, DEMO_RECORDING)
            sentinel = quote_to_flat(next(read_recording(DEMO_RECORDING)).quotes[0])
            with httpx.Client(base_url=running.url, headers={"X-API-Key": running.demo_key}) as c:
                r = c.post("/v1/ingest/odds", json=[{**sentinel, "event_id": "sentinel"}])
                assert r.status_code == 200, r.text
            wait_for(lambda: recording.exists() and '"sentinel"' in recording.read_text(), 10, "the recorder saw all")
            code, err = record.finish()
            assert code == 0, err
        listed = run_cli(["keys", "list", "--db", str(db)], cwd=tmp_path).stdout
        temporary = [line for line in listed.splitlines() if line.startswith("record-")]
        assert len(temporary) == 1 and temporary[0].endswith("revoked"), listed  # its key is gone with it
    written = list(read_recording(recording))
    rows = sum(len(b) for b in written)
    assert err.splitlines()[-1] == f"record  {len(written)} batches, {rows} rows -> {recording}", err
    assert any(b.kind == "plays" for b in written)
    expected: list[dict[str, Any]] = []
    got: list[dict[str, Any]] = []

    async def replays() -> None:
        with trio.fail_after(20):
            await _replay_into_fresh_gateway(via_feed=False, into=expected)
            await _replay_into_fresh_gateway(via_feed=False, path=recording, into=got)

    trio.run(replays)
    assert len(expected) > 5
    assert _by_key(got) == _by_key(expected)
    assert len(got) == len(expected)


def test_serve_record_writes_what_this_gateway_ingests(tmp_path: Path) -> None:
    recording = tmp_path / "rec.jsonl"
    with serving(["serve", "--db", str(tmp_path / "gw.db"), "--port", "0", "--no-feeds", "--record", str(recording)],
                 cwd=tmp_path) as running:
        assert f"recording what it ingests to {recording}" in running.banner
        pushed = _push_recording(running.url, running.demo_key, DEMO_RECORDING)
        assert running.stop() == 0
        err = running.stderr()
    written = list(read_recording(recording))
    assert len(written) == pushed
    assert [len(b) for b in written] == [len(b) for b in read_recording(DEMO_RECORDING)]
    rows = sum(len(b) for b in written)
    assert f"record  {len(written)} batches, {rows} rows -> {recording}" in err


def test_record_with_no_gateway_says_so(tmp_path: Path) -> None:
    done = run_cli(["record", str(tmp_path / "rec.jsonl"), "--db", str(tmp_path / "gw.db")], cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == (f"gateway: no running gateway owns {tmp_path / 'gw.db'} (nothing in "
                           f"{tmp_path / 'gw.db.lock'}): start one with `gateway serve` (add --record FILE to "
                           "record from the start), or pass --url\n")
    done = run_cli(["record", str(tmp_path / "rec.jsonl"), "--url", "http://127.0.0.1:9", "--key", "gw_x"],
                   cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("gateway: cannot reach the gateway at http://127.0.0.1:9")
    assert len(done.stderr.splitlines()) == 1, done.stderr


def test_a_gateway_that_stops_ends_the_recording(tmp_path: Path) -> None:
    db, recording = tmp_path / "gw.db", tmp_path / "rec.jsonl"
    with (serving(["serve", "--db", str(db), "--port", "0", "--no-feeds"], cwd=tmp_path) as running,
          recording_process([str(recording), "--db", str(db)], cwd=tmp_path) as record):
        assert record.first_line.startswith("recording ")
        assert running.stop() == 0
        code, err = record.finish(interrupt=False)
        assert code == 0, err
    assert err.splitlines()[-2:] == [f"record  0 batches, 0 rows -> {recording}",
                                     "gateway: the gateway is shutting down; the recording ends"], err
