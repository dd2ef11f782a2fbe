"""The Odds API feed: polls `{base_url}/v4/sports/{sport}/odds` per configured sport.

Each round asks every sport once (regions, markets, `oddsFormat=american`, bookmakers if
set), parses with the same code as HTTP push (`parse_toa_events`), renames the few books whose
TOA key differs from ours, and submits the quotes under the feed's source name. Rounds start
every `interval_s`.

Failures never stop the feed: a timeout, transport error, 5xx or unreadable body ends the
round and the feed waits on a capped, jittered exponential ladder (`Backoff`); a 429 waits at
least its Retry-After. A 400/404/422 for one sport (e.g. an unknown sport key) skips that sport
only. Market state (issue 15.1): a market a book listed in the last answer for a sport and
no longer lists is marked suspended (closed once its event is over), by a quote of its last
price with `status` and reason `not_listed`; when the book lists it again it is open, and its
first price is compared with the last one before (a drop with `after_suspension`).
Quota: the `x-requests-*` headers are logged every `QUOTA_LOG_EVERY` polls, as a warning
when little is left, and at zero the feed sleeps `QUOTA_EXHAUSTED_SLEEP_S` between attempts.

The API key is `api_key` from the config, else the environment variable `api_key_env`
(never a file in the repository). Without one the feed logs an error and raises, so the
supervisor retries with its own backoff. The key is redacted from every log line.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import trio

from ..config import FeedConfig
from ..core.market_state import unlisted
from ..core.model import Quote
from ..core.parse import RowError, parse_toa_events
from ..writer import LIVE_WINDOW_MS
from .base import Sink
from .http import Backoff, UpstreamError, default_client, get_json

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.the-odds-api.com"
QUOTA_LOG_EVERY = 20  # polls between info lines about the quota
QUOTA_LOW_ABSOLUTE = 50  # warn below this many requests left ...
QUOTA_LOW_FRACTION = 0.10  # ... or below this share of the plan
QUOTA_EXHAUSTED_SLEEP_S = 3600.0
SKIP_STATUSES = (400, 404, 422)  # a problem with this one sport's request: skip it, keep the rest

# TOA bookmaker keys -> ours, where they differ. Everything else keeps its TOA key.
BOOKMAKER_KEYS: dict[str, str] = {
    "williamhill_us": "caesars",  # TOA lists Caesars Sportsbook under William Hill's old key
    "betonlineag": "betonline",
    "mybookieag": "mybookie",
}
TOA_KEYS = {ours: theirs for theirs, ours in BOOKMAKER_KEYS.items()}  # `bookmakers` in config may use ours


class MissingApiKey(RuntimeError):
    """Neither `api_key` nor the environment variable named by `api_key_env` is set."""


def api_key(feed: FeedConfig, environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    key = feed.api_key or env.get(feed.api_key_env, "")
    if not key:
        raise MissingApiKey(f"feed {feed.source}: no API key: set the environment variable "
                            f"{feed.api_key_env} (or api_key in the feed's config)")
    return key


def map_bookmakers(quotes: Sequence[Quote], mapping: dict[str, str] = BOOKMAKER_KEYS) -> list[Quote]:
    return [dataclasses.replace(q, bookmaker=mapping[q.bookmaker]) if q.bookmaker in mapping else q
            for q in quotes]


@dataclass(slots=True)
class Quota:
    """The last usage headers seen: `x-requests-remaining`, `-used`, `-last`."""

    remaining: int | None = None
    used: int | None = None
    last: int | None = None
    polls: int = 0

    def update(self, headers: httpx.Headers) -> None:
        self.polls += 1
        self.remaining = _int_header(headers, "x-requests-remaining", self.remaining)
        self.used = _int_header(headers, "x-requests-used", self.used)
        self.last = _int_header(headers, "x-requests-last", self.last)

    @property
    def exhausted(self) -> bool:
        return self.remaining is not None and self.remaining <= 0

    @property
    def low(self) -> bool:
        if self.remaining is None:
            return False
        total = self.remaining + (self.used or 0)
        return self.remaining < QUOTA_LOW_ABSOLUTE or (total > 0 and self.remaining < total * QUOTA_LOW_FRACTION)

    def describe(self) -> str:
        return f"remaining={self.remaining} used={self.used} last={self.last}"


def _int_header(headers: httpx.Headers, name: str, default: int | None) -> int | None:
    value = headers.get(name)
    if value is None:
        return default
    try:
        return int(float(value))
    except ValueError:
        return default


class OddsApiPoller:
    """One feed's state between rounds: the client, the quota and the backoff ladder."""

    def __init__(self, feed: FeedConfig, sink: Sink, client: httpx.AsyncClient, key: str, *,
                 backoff: Backoff | None = None) -> None:
        self.feed, self.sink, self.client, self._key = feed, sink, client, key
        self.base_url = (feed.base_url or DEFAULT_BASE_URL).rstrip("/")
        self.quota = Quota()
        self.backoff = backoff or Backoff(start_s=min(1.0, feed.interval_s), cap_s=120.0)
        self.rounds = self.failures = self.submitted = 0
        self.last: dict[str, list[Quote]] = {}  # per sport: the quotes of its last answer (market state)

    def params(self) -> dict[str, str]:
        f = self.feed
        params = {"apiKey": self._key, "regions": ",".join(f.regions), "markets": ",".join(f.markets),
                  "oddsFormat": "american", "dateFormat": "iso"}
        if f.bookmakers:
            params["bookmakers"] = ",".join(TOA_KEYS.get(b, b) for b in f.bookmakers)
        return params

    async def poll_sport(self, sport: str) -> int:
        """One request; returns the number of quotes submitted. Raises UpstreamError."""
        url = f"{self.base_url}/v4/sports/{sport}/odds"
        resp = await get_json(self.client, url, params=self.params(), ok_statuses=SKIP_STATUSES)
        self._note_quota(resp.headers)
        if resp.data is None:
            logger.warning("feed %s: %s answered %d; skipping this sport", self.feed.source, sport, resp.status)
            return 0
        now_ms = int(time.time() * 1000)
        try:
            quotes, errors = parse_toa_events(resp.data, now_ms=now_ms, odds_format="american")
        except RowError as exc:  # not a list at all
            raise UpstreamError(f"{sport}: unexpected payload: {exc}") from None
        if errors:
            logger.warning("feed %s: %s: %d row(s) rejected, %d kept; first: %s", self.feed.source, sport,
                           len(errors), len(quotes), errors[0][1])
            for i, reason in errors[1:]:
                logger.debug("feed %s: %s: event %d rejected: %s", self.feed.source, sport, i, reason)
        quotes = map_bookmakers(quotes)
        listed = {(q.event_id, q.bookmaker, q.market_key, q.player) for q in quotes}
        gone = unlisted(self.last.get(sport, ()), listed, now_ms=now_ms, live_window_ms=LIVE_WINDOW_MS)
        self.last[sport] = quotes
        quotes = quotes + gone
        if quotes:
            await self.sink.submit_quotes(quotes, source=self.feed.source)
        self.submitted += len(quotes)
        return len(quotes)

    def _note_quota(self, headers: httpx.Headers) -> None:
        q = self.quota
        q.update(headers)
        if q.remaining is None:
            return
        if q.exhausted:
            logger.error("feed %s: The Odds API quota is used up (%s); polling pauses for %.0f s",
                         self.feed.source, q.describe(), QUOTA_EXHAUSTED_SLEEP_S)
        elif q.low:
            logger.warning("feed %s: The Odds API quota is low: %s", self.feed.source, q.describe())
        elif q.polls % QUOTA_LOG_EVERY == 1:
            logger.info("feed %s: The Odds API quota: %s", self.feed.source, q.describe())

    async def round(self) -> tuple[float, bool]:
        """Poll every sport once: (seconds to wait, whether the round went well)."""
        self.rounds += 1
        try:
            for sport in self.feed.sports:
                await self.poll_sport(sport)
                if self.quota.exhausted:
                    break
        except UpstreamError as exc:
            self.failures += 1
            if exc.status == 401 and "USAGE" in str(exc).upper():  # TOA: OUT_OF_USAGE_CREDITS
                self.quota.remaining = 0
            delay = self.backoff.next_delay(exc.retry_after_s or 0.0)
            if self.quota.exhausted:
                delay = max(delay, QUOTA_EXHAUSTED_SLEEP_S)
            logger.warning("feed %s: %s; retrying in %.2f s", self.feed.source, exc, delay)
            return delay, False
        self.backoff.reset()
        return (QUOTA_EXHAUSTED_SLEEP_S if self.quota.exhausted else self.feed.interval_s), True


async def run_the_odds_api(feed: FeedConfig, sink: Sink, *, client: httpx.AsyncClient | None = None,
                           backoff: Backoff | None = None) -> None:
    """The feed task: poll forever. `client` is injectable (tests); by default one is made here."""
    try:
        key = api_key(feed)
    except MissingApiKey as exc:
        logger.error("%s", exc)
        raise
    if not feed.sports:
        raise ValueError(f"feed {feed.source}: set sports = [...] (The Odds API sport keys)")
    own = client is None
    http = client if client is not None else default_client()
    try:
        poller = OddsApiPoller(feed, sink, http, key, backoff=backoff)
        while True:
            started = trio.current_time()
            delay, ok = await poller.round()
            # a good round keeps the cadence (interval from its start); a failure waits from now
            await trio.sleep_until((started if ok else trio.current_time()) + delay)
    finally:
        if own:
            with trio.CancelScope(shield=True):
                await http.aclose()
