"""Webhooks, the pure parts: URL and field validation, filters, what a delivery body says.

A webhook's filters are the drop stream's (`sports`, `threshold`, `direction`, `bookmakers`,
`markets`, `kinds`, `event_id`), validated by the same functions: the JSON fields become the
stream's multi-dict of params, so errors read the same and name the same field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..core.filters import Catalog, Filter, ParamError, parse_filter, parse_sports
from ..core.frames import Frame, dumps
from ..core.time import iso_from_ms
from .addresses import blocked_host

FORMATS = ("json", "slack", "discord")
EVENT_TYPES = ("odds_drop", "steam")  # steam: with "steam" in the filter's kinds (issue 15.3)
TEST_EVENT = "test"
FILTER_FIELDS = ("sports", "threshold", "direction", "bookmakers", "markets", "kinds", "event_id")
MAX_URL_LENGTH = 2048
MAX_DESCRIPTION = 200


@dataclass(frozen=True, slots=True)
class Webhook:
    id: int
    key_id: int
    url: str
    description: str
    format: str
    filters: dict[str, Any]  # normalised, see normalise_filters
    secret: str
    is_active: bool
    disabled_reason: str | None
    consecutive_failures: int
    after_seq: int  # drops with a stream id at or below this predate the webhook (or its re-enabling)
    created_ms: int
    updated_ms: int

    def public(self, *, with_secret: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "url": self.url, "description": self.description, "format": self.format,
            "events": events_of(self.filters), "filters": self.filters, "is_active": self.is_active,
            "disabled_reason": self.disabled_reason, "consecutive_failures": self.consecutive_failures,
            "secret_hint": self.secret[:10] + "...", "created_at": iso_from_ms(self.created_ms),
            "created_ms": self.created_ms, "updated_ms": self.updated_ms,
        }
        if with_secret:
            out["secret"] = self.secret
        return out


def events_of(filters: Mapping[str, Any]) -> list[str]:
    """The event types a webhook's (normalised) filters bring: steam with `steam` in kinds."""
    kinds = filters.get("kinds") or []
    steam = "steam" in kinds
    drops = not steam or any(k in ("game", "prop") for k in kinds)
    return [*(["odds_drop"] if drops else []), *(["steam"] if steam else [])]


def validate_url(value: Any, *, block_private: bool = False) -> str:
    """An absolute http(s) URL with a host and no credentials; ParamError('url', why) otherwise.

    `block_private` (`[webhooks] block_private_addresses`) also refuses a host that is a
    non-public address literal, in any form the resolver reads (`127.1`, `0x7f000001`), or
    `localhost`; names are resolved and checked at send time (guard.py)."""
    if not isinstance(value, str) or not value.strip():
        raise ParamError("url", "is required: the http(s) URL that receives the POSTs")
    url = value.strip()
    if len(url) > MAX_URL_LENGTH:
        raise ParamError("url", f"is too long ({len(url)} characters; at most {MAX_URL_LENGTH})")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise ParamError("url", "must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ParamError("url", f"is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ParamError("url", f"must use http or https, not {parts.scheme or 'no scheme'!r}")
    if parts.username is not None or parts.password is not None:
        raise ParamError("url", "must not contain credentials (user:password@); authenticate with the signature")
    host = parts.hostname
    if not host:
        raise ParamError("url", "has no host")
    if port == 0:
        raise ParamError("url", "port 0 is not a valid destination")
    why = blocked_host(host) if block_private else None
    if why is not None:
        raise ParamError("url", f"{why} ([webhooks] block_private_addresses is on)")
    return url


def validate_format(value: Any) -> str:
    if value not in FORMATS:
        raise ParamError("format", f"must be one of {', '.join(FORMATS)}, got {value!r}")
    return str(value)


def validate_description(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        raise ParamError("description", f"must be a string of at most {MAX_DESCRIPTION} characters")
    return value


def validate_events(value: Any) -> None:
    """`odds_drop` and `steam`; accepted for compatibility with ParlayAPI-style bodies (which
    frames a webhook gets is its `kinds`: add `steam` for steam frames)."""
    if value is None:
        return
    if not isinstance(value, list) or not value or any(v not in EVENT_TYPES for v in value):
        raise ParamError("events", f"must be a list of event types; supported: {', '.join(EVENT_TYPES)}")


def params_from_fields(fields: Mapping[str, Any]) -> dict[str, list[str]]:
    """JSON filter fields -> the stream's multi-dict (strings, lists of strings, an int threshold)."""
    params: dict[str, list[str]] = {}
    for name in FILTER_FIELDS:
        value = fields.get(name)
        if value is None:
            continue
        if isinstance(value, bool):
            raise ParamError(name, "must be a string or a list of strings")
        if isinstance(value, int) and name == "threshold":
            params[name] = [str(value)]
        elif isinstance(value, str):
            params[name] = [value]
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            params[name] = list(value)
        else:
            raise ParamError(name, "must be an integer" if name == "threshold" else
                             "must be a string (CSV) or a list of strings")
    return params


@dataclass(frozen=True, slots=True)
class Matcher:
    """A webhook's compiled filters: which drop frames it receives."""

    sports: frozenset[str] | None
    filter: Filter
    after_seq: int

    def matches(self, frame: Frame) -> bool:
        if frame.seq is None or frame.seq <= self.after_seq:
            return False
        if self.sports is not None and frame.sport_key not in self.sports:
            return False
        return self.filter.matches(frame)


def compile_filters(fields: Mapping[str, Any], catalog: Catalog) -> tuple[dict[str, Any], Filter,
                                                                           frozenset[str] | None]:
    """Validate filter fields exactly like the drop stream; (normalised, Filter, sports)."""
    params = params_from_fields(fields)
    sports = parse_sports(params, "all", catalog)
    flt = parse_filter(params, catalog, drops=True)
    normalised = flt.describe()
    normalised["sports"] = sorted(sports) if sports is not None else "all"
    return normalised, flt, sports


def matcher(hook: Webhook, catalog: Catalog) -> Matcher:
    _, flt, sports = compile_filters(hook.filters, catalog)
    return Matcher(sports, flt, hook.after_seq)


# -- what is posted ------------------------------------------------------------------------

def _price(p: Any) -> str:
    return f"{p:+d}" if isinstance(p, int) and p > 0 else str(p)


def drop_message(data: Mapping[str, Any], *, test: bool = False) -> str:
    """One readable line: `pinnacle h2h_home -110 -> -120 (toward_favorite) Lakers vs Warriors`
    (a steam: `steam h2h_home toward_favorite: pinnacle, bet365, betmgm in 12 s ...`)."""
    if data.get("type") == "steam":
        who = f"{data.get('player')} {data.get('market_key')} " if data.get("kind") == "prop" else ""
        books = ", ".join(str(b) for b in data.get("books", []))
        spread = int(data.get("time_spread_ms") or 0) // 1000
        return (f"steam {who}{data.get('side')} {data.get('direction')}: {books} in {spread} s "
                f"(first {data.get('first_mover')}) {data.get('home_team')} vs {data.get('away_team')}")
    side = str(data.get("side", ""))
    if data.get("kind") == "prop":
        side = f"{data.get('player')} {data.get('market_key')} {side} {data.get('line')}"
    elif data.get("point") is not None:
        side = f"{side} {data['point']}"
    text = (f"{data.get('bookmaker')} {side} {_price(data.get('prev'))} -> {_price(data.get('new'))} "
            f"({data.get('direction')}) {data.get('home_team')} vs {data.get('away_team')}")
    return f"[test] {text}" if test else text


def render_body(fmt: str, *, delivery_id: str, event_type: str, timestamp_ms: int, data: Mapping[str, Any]) -> str:
    """The exact request body, fixed when the delivery is created (every attempt sends it)."""
    if fmt == "slack":
        return dumps({"text": drop_message(data, test=event_type == TEST_EVENT)})
    if fmt == "discord":
        return dumps({"content": drop_message(data, test=event_type == TEST_EVENT)})
    return dumps({"id": delivery_id, "event_type": event_type, "timestamp_ms": timestamp_ms, "data": data})


def sample_drop(now_ms: int) -> dict[str, Any]:
    """The `data` of a test delivery: a made-up drop with every field of a real one."""
    return {
        "type": "odds_drop", "id": 0, "sport_key": "basketball_nba", "event_id": "test_event",
        "bookmaker": "pinnacle", "kind": "game", "market_key": "h2h", "market": "Moneyline",
        "side": "h2h_home", "outcome": "home", "prev": -110, "new": -120, "delta": -10,
        "prior_price": -110, "new_price": -120, "delta_cents": 10, "direction": "toward_favorite",
        "point": None, "home_team": "Los Angeles Lakers", "away_team": "Golden State Warriors",
        "commence_time": iso_from_ms(now_ms), "last_update": now_ms, "timestamp": now_ms, "elapsed_ms": 0,
        "test": True,
    }
