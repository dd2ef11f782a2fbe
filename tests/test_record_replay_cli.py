"""`gateway replay` / `gateway record`: progress on stderr, and replays that give the same drops."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
from pathlib import Path

import trio

import gateway.testing
from gateway.config import FeedConfig
from gateway.core.frames import DROP, Frame
from gateway.feeds.replay import DEMO_RECORDING, read_recording, run_replay
from gateway.progress import CountingRecorder, ProgressBar, render_bar, report_recording

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


async def _replay_into_fresh_gateway(*, via_feed: bool) -> list[Drop]:
    drops: list[Drop] = []
    async with gateway.testing.open_gateway() as gw:
        writer = gw.gateway.writer
        writer.on_commit.append(lambda frames: _drops(frames, drops))
        if via_feed:
            await run_replay(FeedConfig(type="replay", path=str(DEMO_RECORDING), speed=10_000), writer)
            await writer.submit_and_wait([], [], source="barrier")  # everything queued before it is committed
        else:
            await gw.replay()
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


async def _run_cli(args: list[str], cwd: Path, needle: bytes, *, then_s: float = 0.0) -> tuple[int, str]:
    """Start `gateway ARGS`; once `needle` shows on stdout or stderr (and `then_s` later), SIGINT it.
    Returns (exit code, stderr)."""
    proc = await trio.lowlevel.open_process([sys.executable, "-m", "gateway", *args, "--port", "0", "--db",
                                             str(cwd / "gw.db")], cwd=cwd, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE)
    out, err = bytearray(), bytearray()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_drain, proc.stdout, out)
            nursery.start_soon(_drain, proc.stderr, err)
            while needle not in out and needle not in err:
                assert proc.poll() is None, err.decode()
                await trio.sleep(0.02)
            await trio.sleep(then_s)
            proc.send_signal(signal.SIGINT)
            code = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return code, err.decode()


async def test_cli_replay_and_record_show_progress(tmp_path: Path) -> None:
    total = len(list(read_recording(DEMO_RECORDING)))
    (tmp_path / "replay").mkdir()
    (tmp_path / "record").mkdir()
    results: dict[str, tuple[int, str]] = {}
    recording = tmp_path / "record" / "out.jsonl"

    async def replay() -> None:
        results["replay"] = await _run_cli(["replay", str(DEMO_RECORDING), "--speed", "1000"], tmp_path / "replay",
                                           b"100%")

    async def record() -> None:
        results["record"] = await _run_cli(["record", str(recording)], tmp_path / "record",
                                           b"gateway listening", then_s=0.6)

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(replay)
            nursery.start_soon(record)
    code, err = results["replay"]
    assert code == 0, err
    assert f"replay  {total}/{total} batches [{'#' * 30}] 100%" in err
    code, err = results["record"]
    assert code == 0, err
    written = list(read_recording(recording))
    assert written, err
    rows = sum(len(b) for b in written)
    assert f"record  {len(written)} batches, {rows} rows -> {recording}" in err
