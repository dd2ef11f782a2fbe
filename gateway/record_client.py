"""`gateway record FILE`: record what a running gateway publishes, as a client of its streams.

It never opens a second gateway on the database (the database has one owner, see
ownership.py): it finds the owner's address in the database's lock file (or takes `--url`),
gets a key (`--key`, or a temporary one it creates in the database and revokes at the end),
and reads two streams for every sport: odds (`/v1/sse/odds/all`, whose `initial_state` is
recorded first as the baseline) and play-by-play (`/v1/sports/all/live/sse`). Frames turn back
into ingest rows (core/unframe.py) and go to the same JSONL format `gateway replay` reads,
with the same progress line as before. A lost connection or a `slow_consumer` cut resumes by
`Last-Event-ID`, so nothing is missed; the gateway's own shutdown ends the recording.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import httpx
import trio

from .auth import create_key, revoke_key
from .config import Config
from .core.model import Play, Quote
from .core.parse import RowError, parse_flat_quote, parse_pbp_row
from .core.unframe import odds_frame_quotes, pbp_frame_row
from .ownership import lock_path, pid_running, read_owner
from .progress import CountingRecorder, report_recording
from .startup import StartupError, check_database_exists
from .store import Store

logger = logging.getLogger(__name__)

ODDS_PATH = "/v1/sse/odds/all"
PBP_PATH = "/v1/sports/all/live/sse"
SNAPSHOT = {"limit": 1000, "max_age_s": 3600}  # the odds snapshot's largest (the baseline)
SOURCE = "record"  # the source name of recorded quote batches (the streams do not carry the feed's)
HEARTBEAT_S = 5
GIVE_UP_S = 10.0  # a gateway unreachable this long after a loss ends the recording (exit 1)


class RecordError(Exception):
    """The recording cannot go on; one line."""


def find_gateway(config: Config, url: str | None) -> str:
    """The base URL to record from: `--url`, else the database owner's address."""
    if url:
        return url.rstrip("/")
    db = config.db_path()
    owner = read_owner(db)
    if owner is None:
        raise StartupError(f"no running gateway owns {db} (nothing in {lock_path(db)}): start one with "
                           "`gateway serve` (add --record FILE to record from the start), or pass --url")
    if not pid_running(owner.pid):
        raise StartupError(f"the gateway that owned {db} ({owner.describe()}) is not running: start it, "
                           "or pass --url")
    if not owner.address:
        raise StartupError(f"the gateway that owns {db} ({owner.describe()}) does not listen yet: try again "
                           "in a moment")
    # a gateway bound to every interface is reached on this machine's loopback
    return owner.address.replace("//0.0.0.0:", "//127.0.0.1:").replace("//[::]:", "//[::1]:")


def stream_tier(config: Config) -> str:
    """A tier allowed both streams: enterprise if it is, else the first such tier."""
    tiers = [name for name, t in config.tiers.items() if t.odds_streams and t.pbp_sse]
    if not tiers:
        raise StartupError("no tier in [tiers] allows both odds and play-by-play streams: pass --key")
    return "enterprise" if "enterprise" in tiers else tiers[0]


@dataclass
class TemporaryKey:
    """A key made for this recording in the gateway's database, revoked when it ends."""

    config: Config
    name: str = field(default_factory=lambda: f"record-{os.getpid()}-{int(time.time())}")
    key: str = ""

    def create(self) -> str:
        db = self.config.db_path()
        check_database_exists(db)
        tier = stream_tier(self.config)
        self.key = _with_store(db, lambda c: create_key(c, name=self.name, tier=tier, tiers=self.config.tiers))
        return self.key

    def revoke(self) -> None:
        if self.key:
            _with_store(self.config.db_path(), lambda c: revoke_key(c, self.name))
            self.key = ""


def _with_store(db: str, fn: Callable[[Any], str]) -> str:
    store = Store(db, readers=1)  # beside a running gateway: one short transaction, no schema change
    try:
        return store.write_fn_sync(fn)
    finally:
        store.close()


# -- reading the streams -----------------------------------------------------------------------

async def sse_frames(resp: httpx.Response) -> AsyncIterator[tuple[str | None, dict[str, Any]]]:
    """(id, JSON payload) per SSE event; comments, `retry:` and data-less events are skipped."""
    event_id: str | None = None
    data: list[str] = []
    async for line in resp.aiter_lines():
        if line == "":
            if data:
                payload = json.loads("\n".join(data))
                if isinstance(payload, dict):
                    yield event_id, payload
            event_id, data = None, []
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name == "id":
                event_id = value


@dataclass
class Follower:
    """One stream, followed until the gateway closes it; a loss resumes by the last id."""

    client: httpx.AsyncClient
    url: str
    path: str
    key: str
    on_frame: Callable[[dict[str, Any]], None]
    params: dict[str, int] = field(default_factory=dict)
    connected: trio.Event = field(default_factory=trio.Event)
    last_id: str | None = None

    async def run(self) -> None:
        lost_at: float | None = None
        while True:
            try:
                if await self._once():
                    return  # the gateway closed the stream: it is going away
                reason = "the stream ended without its final frame"
            except httpx.TransportError as exc:
                if not self.connected.is_set():
                    raise StartupError(f"cannot reach the gateway at {self.url}: {exc or type(exc).__name__}: "
                                       "is it running? (or pass --url)") from None
                reason = str(exc) or type(exc).__name__
            now = trio.current_time()
            lost_at = now if lost_at is None else lost_at
            if now - lost_at > GIVE_UP_S:
                raise RecordError(f"lost the gateway at {self.url} ({reason}) for {GIVE_UP_S:g} s")
            logger.info("record: %s %s; resuming after id %s", self.path, reason, self.last_id)
            await trio.sleep(0.5)

    async def _once(self) -> bool:
        """One connection; True if the gateway ended it with its closing frame."""
        headers = {"X-API-Key": self.key}
        if self.last_id is not None:
            headers["Last-Event-ID"] = self.last_id
        async with self.client.stream("GET", self.url + self.path, params={"heartbeat_s": HEARTBEAT_S, **self.params},
                                      headers=headers) as resp:
            if resp.status_code != 200:
                await resp.aread()
                raise _refused(self.url, self.path, resp)
            async for event_id, frame in sse_frames(resp):
                if event_id is not None:
                    self.last_id = event_id
                kind = frame.get("type")
                if kind == "connected":
                    self.connected.set()
                elif kind == "stream_status" and frame.get("status") == "closing":
                    return True
                elif kind == "error":
                    if frame.get("error") == "slow_consumer":
                        return False  # cut off as slow: resume where it was
                    raise RecordError(f"the gateway ended {self.path}: {frame.get('error')}: {frame.get('message')}")
                else:
                    self.on_frame(frame)
        return False


def _refused(url: str, path: str, resp: httpx.Response) -> StartupError:
    try:
        message = resp.json().get("message") or resp.text
    except ValueError:
        message = resp.text[:200]
    if resp.status_code == 401:
        return StartupError(f"the gateway at {url} does not accept the key ({message}): pass a key of its "
                            "database with --key")
    return StartupError(f"the gateway at {url} refused {path} with {resp.status_code}: {message}")


class FrameRecorder:
    """Turns frames into recording batches (one batch per frame, in arrival order)."""

    def __init__(self, recorder: CountingRecorder, clock: Callable[[], int] = lambda: time.time_ns() // 1_000_000
                 ) -> None:
        self.recorder = recorder
        self._clock = clock
        self.bad_rows = 0

    def odds(self, frame: dict[str, Any]) -> None:
        if frame.get("type") not in ("odds_update", "initial_state"):
            return
        now = self._clock()
        quotes = [q for q in map(lambda r: self._parse(parse_flat_quote, r, now), odds_frame_quotes(frame))
                  if isinstance(q, Quote)]
        if quotes:
            self.recorder.write_quotes(quotes, SOURCE, now)

    def plays(self, frame: dict[str, Any]) -> None:
        if frame.get("type") != "pbp_event":
            return
        now = self._clock()
        play = self._parse(parse_pbp_row, pbp_frame_row(frame), now)
        if isinstance(play, Play):
            self.recorder.write_plays([play], now)

    def _parse(self, parse: Callable[..., Quote | Play], row: dict[str, Any], now: int) -> Quote | Play | None:
        try:
            return parse(row, now_ms=now)
        except RowError as exc:
            if not self.bad_rows:
                logger.warning("record: a row that does not parse is left out (%s)", exc)
            self.bad_rows += 1
            return None


async def record(url: str, key: str, recorder: CountingRecorder, *, out: TextIO | None = None,
                 stop: trio.Event | None = None) -> str:
    """Record until `stop` is set or the gateway closes the streams; returns why it ended."""
    out = out if out is not None else sys.stderr
    frames = FrameRecorder(recorder)
    ended = "stopped"
    timeout = httpx.Timeout(10, read=HEARTBEAT_S * 4)
    async with httpx.AsyncClient(timeout=timeout) as client, trio.open_nursery() as nursery:
        followers = [Follower(client, url, ODDS_PATH, key, frames.odds, SNAPSHOT),
                     Follower(client, url, PBP_PATH, key, frames.plays)]
        closed = 0

        async def follow(f: Follower) -> None:
            nonlocal closed, ended
            await f.run()
            closed += 1
            if closed == len(followers):
                ended = "the gateway is shutting down"
                nursery.cancel_scope.cancel()

        for f in followers:
            nursery.start_soon(follow, f)
        for f in followers:
            await f.connected.wait()
        out.write(f"recording {url} (odds and play-by-play, every sport) -> {recorder.path}\n")
        out.flush()
        nursery.start_soon(report_recording, recorder)
        if stop is not None:
            await stop.wait()
            nursery.cancel_scope.cancel()
    return ended


def run(args: Any, config: Config) -> int:
    """`gateway record FILE [--url URL] [--key KEY]`."""
    if not args.verbose:  # a line per request is noise here; -v shows it
        logging.getLogger("httpx").setLevel(logging.WARNING)
    url = find_gateway(config, args.url)
    temporary = None if args.key else TemporaryKey(config)
    key = args.key or temporary.create()  # type: ignore[union-attr]
    try:
        try:
            recorder = CountingRecorder(args.file)
        except OSError as exc:
            raise StartupError(f"cannot write the recording {args.file}: {exc.strerror}: check the path") from None
        try:
            ended = trio.run(_until_signalled, url, key, recorder)
        finally:
            recorder.close()
    finally:
        if temporary is not None:
            temporary.revoke()
    if ended != "stopped":
        print(f"gateway: {ended}; the recording ends", file=sys.stderr)
    return 0


async def _until_signalled(url: str, key: str, recorder: CountingRecorder) -> str:
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        async def on_signals() -> None:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    stop.set()

        nursery.start_soon(on_signals)
        ended = await record(url, key, recorder, stop=stop)
        nursery.cancel_scope.cancel()
    return ended
