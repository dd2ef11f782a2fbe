"""Client -> server WebSocket messages: parsing and validation. Pure (no I/O).

Messages are JSON objects with a `type`:
- `{"type":"subscribe", ...}` changes the connection's filter. Each field that is present
  replaces that dimension of the filter; absent fields keep their current value, so
  `{"type":"subscribe","event_id":"X"}` (ParlayAPI's form) replaces the event narrowing and
  keeps the bookmakers/markets given on the URL. Fields: `event_id` (a string; `null` or
  `"*"` = every event), `event_ids` (a list, combined with `event_id`), `bookmakers`,
  `markets`, `kinds` (lists or CSV strings; `null` = no restriction), `threshold`,
  `direction` (drops, `/ws/live` only), `conflate_ms` (0..120000: at most one frame per row
  per window, 0 = off), `oddsFormat` (american, decimal, probability; alias `odds_format`)
  and `snapshot` (true: send a fresh `initial_state` for the new filter). Unknown fields are
  ignored and listed in the ack as `ignored`.
- `{"type":"unsubscribe"}`: every event again. Only the event narrowing is cleared; the
  bookmakers/markets/kinds of the URL or of earlier subscribes stay (ParlayAPI: "reverts to
  all events").
- `{"type":"resume","last_event_id":N}`, `{"type":"ping"}`.
Anything else raises `BadMessage`, which the transport answers with a `bad_message` error.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..core import client_json
from ..core.conflate import MAX_MS as MAX_CONFLATE_MS
from ..core.filters import DIRECTIONS, KINDS, Catalog, Filter, known
from ..core.odds import ODDS_FORMATS

MAX_EVENT_IDS = 1000
MAX_MESSAGE_CHARS = 64 * 1024
SUBSCRIBE_FIELDS = {"type", "event_id", "event_ids", "bookmakers", "markets", "kinds", "threshold", "direction",
                    "snapshot", "conflate_ms", "oddsFormat", "odds_format"}
TYPES = ("subscribe", "unsubscribe", "resume", "ping")


class BadMessage(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Subscribe:
    filter: Filter
    snapshot: bool
    ignored: tuple[str, ...]


def parse_message(raw: str | bytes) -> dict[str, Any]:
    """The message as a dict with a known `type`, or BadMessage."""
    try:
        msg = client_json.loads(raw, max_chars=MAX_MESSAGE_CHARS, strict_text=True)
    except client_json.ClientJsonError as exc:
        raise BadMessage(f"the message is {exc.message}; send one JSON object per message") from None
    if not isinstance(msg, dict):
        raise BadMessage("a message must be a JSON object with a \"type\"")
    kind = msg.get("type")
    if not isinstance(kind, str):
        raise BadMessage(f"missing \"type\": use one of {', '.join(TYPES)}")
    if kind not in TYPES:
        raise BadMessage(f"unknown type {kind[:40]!r}: use one of {', '.join(TYPES)}")
    return msg


def _names(msg: dict[str, Any], field: str) -> list[str] | None:
    """A list (or CSV string) of names; None = no restriction."""
    value = msg[field]
    if value is None:
        return None
    if isinstance(value, str):
        value = [part for part in value.split(",")]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadMessage(f"{field} must be a list of strings, a CSV string or null")
    out = [v.strip() for v in value if v.strip()]
    if not out:
        raise BadMessage(f"{field} must not be empty (use null for no restriction)")
    return out


def _event_ids(msg: dict[str, Any], current: frozenset[str] | None) -> frozenset[str] | None:
    if "event_id" not in msg and "event_ids" not in msg:
        return current
    ids: list[str] = []
    wildcard = False
    if "event_id" in msg:
        one = msg["event_id"]
        if one is None or one == "*":
            wildcard = True
        elif isinstance(one, (str, int)) and not isinstance(one, bool) and str(one).strip():
            ids.append(str(one).strip())
        else:
            raise BadMessage("event_id must be a non-empty string, \"*\" or null")
    if "event_ids" in msg:
        many = _names(msg, "event_ids")
        if many is None or "*" in many:
            wildcard = True
        else:
            ids.extend(many)
    if wildcard:
        return None
    if len(ids) > MAX_EVENT_IDS:
        raise BadMessage(f"at most {MAX_EVENT_IDS} event ids per subscription")
    if any(len(i) > 256 for i in ids):
        raise BadMessage("an event id is at most 256 characters")
    return frozenset(ids)


def apply_subscribe(msg: dict[str, Any], current: Filter, catalog: Catalog) -> Subscribe:
    """The filter after a subscribe message (see the module docstring for the rules)."""
    changes: dict[str, Any] = {"event_ids": _event_ids(msg, current.event_ids)}
    try:
        for field, what in (("bookmakers", "bookmaker"), ("markets", "market")):
            if field in msg:
                universe = catalog.bookmakers if field == "bookmakers" else catalog.markets
                changes[field] = known(_names(msg, field), universe, field, what)
    except ValueError as exc:  # ParamError: an unknown book or market
        raise BadMessage(str(exc)) from None
    if "kinds" in msg:
        kinds = _names(msg, "kinds")
        if kinds is not None:
            bad = [k for k in kinds if k not in KINDS]
            if bad:
                raise BadMessage(f"kinds: unknown kind: {', '.join(bad)} (use game or prop)")
        changes["kinds"] = frozenset(KINDS[k] for k in kinds) if kinds is not None else None
    if "threshold" in msg:
        t = msg["threshold"]
        if not isinstance(t, int) or isinstance(t, bool) or not 1 <= t <= 200:
            raise BadMessage("threshold must be an integer between 1 and 200")
        changes["threshold"] = t
    if "direction" in msg:
        d = msg["direction"]
        if d is None:
            d = "both"
        if not isinstance(d, str) or d not in DIRECTIONS:
            raise BadMessage("direction must be both, toward_favorite or toward_dog")
        changes["direction"] = DIRECTIONS[d]
    if "conflate_ms" in msg:
        c = msg["conflate_ms"]
        if c is None:
            c = 0
        if not isinstance(c, int) or isinstance(c, bool) or not 0 <= c <= MAX_CONFLATE_MS:
            raise BadMessage(f"conflate_ms must be an integer between 0 and {MAX_CONFLATE_MS} (0: no conflation)")
        changes["conflate_ms"] = c
    for name in ("oddsFormat", "odds_format"):
        if name in msg:
            f = msg[name]
            if f is None:
                f = "american"
            if f not in ODDS_FORMATS:
                raise BadMessage(f"{name} must be american, decimal or probability")
            changes["odds_format"] = f
    snapshot = msg.get("snapshot", False)
    if not isinstance(snapshot, bool):
        raise BadMessage("snapshot must be true or false")
    ignored = tuple(sorted(k for k in msg if k not in SUBSCRIBE_FIELDS))
    return Subscribe(replace(current, **changes), snapshot, ignored)


def apply_unsubscribe(current: Filter) -> Filter:
    return replace(current, event_ids=None)


def resume_id(msg: dict[str, Any]) -> int:
    value = msg.get("last_event_id")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadMessage("resume needs last_event_id: a non-negative integer")
    return value


def event_id_field(flt: Filter) -> str | None:
    """The ack's `event_id`: the one event subscribed to, else null."""
    if flt.event_ids is not None and len(flt.event_ids) == 1:
        return next(iter(flt.event_ids))
    return None
