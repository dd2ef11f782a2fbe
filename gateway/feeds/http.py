"""What the polling feeds share: an httpx client factory, JSON GETs with typed failures, backoff.

Every upstream problem (timeout, transport error, 429, 5xx, a body that is not JSON, e.g.
truncated) becomes an `UpstreamError`; the feeds catch it, back off and keep polling, so
nothing already stored is lost and the next good response is ingested. API keys travel in
query strings (The Odds API has no header form): `redact` removes them from every message,
and a filter on httpx's own request log does the same there.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

USER_AGENT = "gateway/0.1 (+self-hosted odds gateway)"
DEFAULT_TIMEOUT_S = 10.0
_SECRET = re.compile(r"(api_?key=)[^&\s\"']+", re.IGNORECASE)


def redact(text: str) -> str:
    """`...?apiKey=abc&x=1` -> `...?apiKey=***&x=1`."""
    return _SECRET.sub(r"\1***", text)


class _RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def _install_redaction() -> None:
    for name in ("httpx", "httpcore"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _RedactFilter) for f in log.filters):
            log.addFilter(_RedactFilter())


_install_redaction()


def default_client(timeout_s: float = DEFAULT_TIMEOUT_S) -> httpx.AsyncClient:
    """The client a feed uses unless a test injects its own."""
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout_s), headers={"User-Agent": USER_AGENT},
                             follow_redirects=True)


class UpstreamError(Exception):
    """A failed poll; `retry_after_s` when the upstream said how long to wait (429)."""

    def __init__(self, message: str, *, status: int | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(redact(message))
        self.status = status
        self.retry_after_s = retry_after_s


def parse_retry_after(value: str | None, *, now_s: float | None = None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date; None if absent or bad."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    now = time.time() if now_s is None else now_s
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True, slots=True)
class JsonResponse:
    status: int
    data: Any
    headers: httpx.Headers


async def get_json(client: httpx.AsyncClient, url: str, *, params: dict[str, str] | None = None,
                   ok_statuses: tuple[int, ...] = ()) -> JsonResponse:
    """GET and decode JSON. Raises UpstreamError for anything but 2xx (or `ok_statuses`,
    returned with data None, for callers that treat e.g. 404 as "not there yet")."""
    try:
        resp = await client.get(url, params=params)
        body = resp.content  # read fully here, so a broken body is a transport error
    except httpx.TimeoutException as exc:
        raise UpstreamError(f"GET {url}: timed out ({type(exc).__name__})") from None
    except httpx.HTTPError as exc:
        raise UpstreamError(f"GET {url}: {type(exc).__name__}: {exc}") from None
    status = resp.status_code
    if status in ok_statuses:
        return JsonResponse(status, None, resp.headers)
    if status == 429:
        raise UpstreamError(f"GET {url}: 429 rate limited", status=429,
                            retry_after_s=parse_retry_after(resp.headers.get("retry-after")))
    if status >= 400:
        snippet = body[:200].decode("utf-8", "replace").replace("\n", " ")
        raise UpstreamError(f"GET {url}: HTTP {status}: {snippet}", status=status,
                            retry_after_s=parse_retry_after(resp.headers.get("retry-after")))
    try:
        data = json.loads(body)
    except ValueError as exc:  # JSONDecodeError and bad UTF-8 alike: a truncated or garbled body
        raise UpstreamError(f"GET {url}: invalid JSON ({len(body)} bytes): {exc}", status=status) from None
    return JsonResponse(status, data, resp.headers)


@dataclass(slots=True)
class Backoff:
    """Capped exponential backoff with jitter (0.5x..1.5x), reset after a good poll."""

    start_s: float = 1.0
    cap_s: float = 120.0
    rng: random.Random = field(default_factory=random.Random)
    _next_s: float = 0.0

    def __post_init__(self) -> None:
        self._next_s = self.start_s

    def next_delay(self, at_least_s: float = 0.0) -> float:
        """The next wait: the ladder's step with jitter, never under `at_least_s` (Retry-After)."""
        delay = min(self.cap_s, self._next_s * (0.5 + self.rng.random()))
        self._next_s = min(self.cap_s, self._next_s * 2)
        return max(delay, at_least_s)

    def reset(self) -> None:
        self._next_s = self.start_s
