"""Several PBP sources for one match: which plays are published, and when a backup takes over.

Pure: standard library only, no clock (callers pass `now_ms`, the writer's batch time).

Each play comes from a source with a configured role. Per match, `PlaySelector.decide`:
- publishes a primary's plays, unless an equal play was published already (from any source);
- holds a secondary's plays while a primary covers the match. A held play is forgotten when a
  primary delivers it (or anything later), since the primary was alive after it;
- promotes the secondary once it has had plays the primary did not deliver for longer than
  `stale_after` (the primary is stale: silent while the match was in play). The promotion
  publishes a `source_promoted` status, then every held play in arrival order, so nothing the
  backup saw during the grace period is lost; later plays of the promoted source go straight
  out. Promoted plays keep their `source` and are published with `role: "primary"`;
- restores the primary at its next play (`source_restored`); its plays that the backup already
  published are dropped as duplicates.
Measuring staleness from the backup's first unmatched play (not from the primary's last play)
means a pause in the game (timeouts, halftime) never promotes a backup that merely reports
the first play after it a moment sooner. A match with no primary at all is served by its
secondary after the same grace period (`previous_source` null, reason `no_primary`).

Duplicate key: `(period, clock, event_type, score_a, score_b)` normalised (clock "PT02:14.00",
"2:14" and "02:14" are equal), plus the occurrence number of that tuple within its source, so
five substitutions at one dead ball stay five plays while the same five from a second source
are duplicates. Within one source every play counts (the NBA's substitution "out" and "in"
actions share clock, score, time and text): a source must not resend, which the feeds
guarantee with their cursors. Memory is bounded: per match the last `memory` keys, at most
`max_matches` matches (least recently active dropped first), `max_pending` held plays.
"""

from __future__ import annotations

import dataclasses
import re
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from .model import Play

PROMOTED, RESTORED = "source_promoted", "source_restored"
# why a play was not published (Decision.dropped)
DUPLICATE, HELD, OTHER_SECONDARY = "duplicate", "held", "other_secondary"

BaseKey = tuple[str, str, str, str, str]
_CLOCK = re.compile(r"^(?:PT)?(?:(\d+)M|(\d+):)?(\d+(?:\.\d+)?)S?$", re.IGNORECASE)


def normalize_clock(clock: str | None) -> str:
    """'PT02:14.00', 'PT2M14.00S', '02:14' and '2:14' -> '2:14'; '0:05.30' -> '0:05.3'."""
    if clock is None:
        return ""
    m = _CLOCK.match(clock.strip())
    if m is None:
        return clock.strip()
    minutes = int(m.group(1) or m.group(2) or 0)
    sec_text = m.group(3)
    whole, _, frac = sec_text.partition(".")
    frac = frac.rstrip("0")
    return f"{minutes}:{int(whole):02d}" + (f".{frac}" if frac else "")


def base_key(p: Play) -> BaseKey:
    period = "" if p.period is None else str(p.period).strip()
    return (period, normalize_clock(p.clock), p.event_type, p.score_a.strip(), p.score_b.strip())


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A change of the source that serves a match, announced as a `stream_status` frame."""

    status: str  # source_promoted | source_restored
    sport_key: str
    match_id: str
    source: str  # the source serving the match from now on
    previous_source: str | None
    reason: str  # primary_stale | no_primary | primary_recovered


@dataclass(frozen=True, slots=True)
class Decision:
    emit: tuple[Play, ...] = ()  # publish these, in order (after the status, if any)
    status: StatusChange | None = None
    dropped: str | None = None  # why the play itself is not published now, if it is not


def status_payload(change: StatusChange, *, timestamp_ms: int) -> dict[str, Any]:
    """The PBP stream's `stream_status` frame payload (the writer adds `id`)."""
    return {
        "type": "stream_status",
        "status": change.status,
        "sport_key": change.sport_key,
        "match_id": change.match_id,
        "source": change.source,
        "previous_source": change.previous_source,
        "reason": change.reason,
        "timestamp": timestamp_ms,
    }


class _Recent:
    """An insertion-ordered set that keeps only the last `size` members."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[object, None] = OrderedDict()

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def add(self, item: object) -> None:
        self._items[item] = None
        self._items.move_to_end(item)
        if len(self._items) > self._size:
            self._items.popitem(last=False)


@dataclass(slots=True)
class _Match:
    memory: int
    primary: str | None = None  # the last primary source seen for the match
    promoted: str | None = None  # the secondary serving the match while the primary is stale
    pending: deque[tuple[int, object, Play]] = field(default_factory=deque)  # (arrival ms, key, held play)
    published: _Recent = field(init=False)
    counts: OrderedDict[tuple[str, BaseKey], int] = field(default_factory=OrderedDict)

    def __post_init__(self) -> None:
        self.published = _Recent(self.memory)

    def occurrence(self, source: str, base: BaseKey) -> int:
        key = (source, base)
        n = self.counts.get(key, 0) + 1
        self.counts[key] = n
        self.counts.move_to_end(key)
        if len(self.counts) > self.memory * 2:
            self.counts.popitem(last=False)
        return n


class PlaySelector:
    """Per-match primary/secondary arbitration; see the module docstring."""

    def __init__(self, *, stale_after_ms: int = 60_000, memory: int = 2048, max_matches: int = 512,
                 max_pending: int = 1000) -> None:
        self.stale_after_ms = stale_after_ms
        self._stale_by_source: dict[str, int] = {}
        self._memory = memory
        self._max_matches = max_matches
        self._max_pending = max_pending
        self._matches: OrderedDict[tuple[str, str], _Match] = OrderedDict()

    def set_stale_after(self, source: str, stale_after_ms: int) -> None:
        """How long `source`, as a primary, may leave a backup unanswered before it is stale."""
        self._stale_by_source[source] = stale_after_ms

    def serving(self, sport_key: str, match_id: str) -> str | None:
        """The promoted secondary serving a match, or None while its primary does."""
        m = self._matches.get((sport_key, match_id))
        return None if m is None else m.promoted

    def _match(self, p: Play) -> _Match:
        key = (p.sport_key, p.match_id)
        m = self._matches.get(key)
        if m is None:
            m = self._matches[key] = _Match(self._memory)
            if len(self._matches) > self._max_matches:
                self._matches.popitem(last=False)
        self._matches.move_to_end(key)
        return m

    def decide(self, p: Play, now_ms: int) -> Decision:
        m = self._match(p)
        base = base_key(p)
        key = (base, m.occurrence(p.source, base))
        if p.role == "primary":
            return self._primary(m, p, key)
        return self._secondary(m, p, key, now_ms)

    def _primary(self, m: _Match, p: Play, key: object) -> Decision:
        m.primary = p.source
        m.pending.clear()  # the primary was alive after every held play: it covers them
        status = None
        if m.promoted is not None:
            status = StatusChange(RESTORED, p.sport_key, p.match_id, p.source, m.promoted, "primary_recovered")
            m.promoted = None
        if key in m.published:
            return Decision(status=status, dropped=DUPLICATE)
        m.published.add(key)
        return Decision(emit=(p,), status=status)

    def _secondary(self, m: _Match, p: Play, key: object, now_ms: int) -> Decision:
        if key in m.published:
            return Decision(dropped=DUPLICATE)
        if m.promoted is not None:
            if m.promoted != p.source:
                return Decision(dropped=OTHER_SECONDARY)
            m.published.add(key)
            return Decision(emit=(_as_primary(p),))
        m.pending.append((now_ms, key, p))
        if len(m.pending) > self._max_pending:
            m.pending.popleft()
        stale_after = self._stale_by_source.get(m.primary or "", self.stale_after_ms)
        if now_ms - m.pending[0][0] <= stale_after:
            return Decision(dropped=HELD)
        # promote: publish what this source had that the primary never delivered
        m.promoted = p.source
        reason = "primary_stale" if m.primary is not None else "no_primary"
        status = StatusChange(PROMOTED, p.sport_key, p.match_id, p.source, m.primary, reason)
        emit = []
        for _, hkey, held in m.pending:
            if held.source == p.source:  # another backup's held plays are not this one's to publish
                m.published.add(hkey)
                emit.append(_as_primary(held))
        m.pending.clear()
        return Decision(emit=tuple(emit), status=status)


def _as_primary(p: Play) -> Play:
    return p if p.role == "primary" else dataclasses.replace(p, role="primary")
