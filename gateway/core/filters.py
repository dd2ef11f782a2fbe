"""Query/WS parameters -> a Filter, with errors that name the parameter; Filter.matches.

Pure. Params arrive as a multi-dict (`name -> [values]`), so CSV and repetition both work:
`?markets=h2h,spreads` == `?markets=h2h&markets=spreads`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from .conflate import MAX_MS as MAX_CONFLATE_MS
from .frames import DROP, STEAM, Frame
from .odds import ODDS_FORMATS

Params = Mapping[str, Sequence[str]]

DIRECTIONS = {"both": None, "toward_favorite": "toward_favorite", "toward_dog": "toward_dog",
              "toward_underdog": "toward_dog"}
KINDS = {"game": "game", "prop": "prop", "props": "prop"}
STEAM_KIND = "steam"  # on the drop stream: steam frames (issue 15), beside or instead of drops
STEAM_MODES = ("off", "also", "only")
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


class ParamError(ValueError):
    """A bad query parameter or message field; `param` names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


@dataclass(frozen=True, slots=True)
class Catalog:
    """What exists: filters naming anything else are rejected."""

    sports: Collection[str]
    bookmakers: Collection[str]
    markets: Collection[str]


@dataclass(frozen=True, slots=True)
class Filter:
    """Which frames a connection wants. None means "no restriction"."""

    event_ids: frozenset[str] | None = None
    bookmakers: frozenset[str] | None = None
    markets: frozenset[str] | None = None
    kinds: frozenset[str] | None = None
    threshold: int = 10
    direction: str | None = None  # None = both
    live_only: bool = False
    drops: bool = False  # drop frames are in scope, so threshold and direction mean something
    steam: str = "off"  # steam frames: off, also (with drops), only (kinds=steam, /v1/steam)
    odds_format: str = "american"  # prices in frames (thresholds stay in cents)
    conflate_ms: int = 0  # odds frames: at most one per row (or market state) per window

    def matches(self, f: Frame) -> bool:
        if self.event_ids is not None and f.event_id not in self.event_ids:
            return False
        if self.live_only and not f.live:
            return False
        stream = f.stream
        if stream in (DROP, STEAM):
            if self.steam != ("off" if stream == DROP else "only") and self.steam != "also":
                return False
            if f.delta_cents < self.threshold:
                return False
            if self.direction is not None and f.direction != self.direction:
                return False
        if self.bookmakers is not None:
            if f.bookmaker is not None and f.bookmaker not in self.bookmakers:
                return False
            if f.books and self.bookmakers.isdisjoint(f.books):
                return False
        if self.kinds is not None and f.kinds and not self.kinds.intersection(f.kinds):
            return False
        return not (
            self.markets is not None and f.markets and self.markets.isdisjoint(f.markets)
        )

    def describe(self) -> dict[str, object]:
        """The filter as the `connected` frame reports it: the drop filters (threshold,
        direction) only where drops are in scope (not on the odds or PBP streams)."""
        def lst(s: frozenset[str] | None) -> list[str] | None:
            return sorted(s) if s is not None else None

        kinds = lst(self.kinds)
        if self.steam != "off":
            kinds = [*(kinds or ([] if self.steam == "only" else ["game", "prop"])), STEAM_KIND]
        out: dict[str, object] = {
            "event_id": lst(self.event_ids),
            "bookmakers": lst(self.bookmakers),
            "markets": lst(self.markets),
            "kinds": kinds,
        }
        if self.drops:
            out.update(threshold=self.threshold, direction=self.direction or "both")
        if self.odds_format != "american":
            out["odds_format"] = self.odds_format
        if self.conflate_ms:
            out["conflate_ms"] = self.conflate_ms
        return out

    @property
    def drop_streams(self) -> tuple[str, ...]:
        """The log streams a drop-stream connection with this filter reads."""
        return {"off": (DROP,), "also": (DROP, STEAM), "only": (STEAM,)}[self.steam]


def csv(params: Params, name: str) -> list[str] | None:
    """All values of a CSV/repeated param, stripped, or None if absent or empty."""
    raw = params.get(name)
    if not raw:
        return None
    out = [part.strip() for value in raw for part in value.split(",") if part.strip()]
    return out or None


def one(params: Params, name: str, *aliases: str) -> str | None:
    for n in (name, *aliases):
        raw = params.get(n)
        if raw:
            return raw[-1].strip()
    return None


def int_param(params: Params, name: str, default: int, lo: int, hi: int) -> int:
    text = one(params, name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ParamError(name, f"must be an integer between {lo} and {hi}, got {text!r}") from None
    if not lo <= value <= hi:
        raise ParamError(name, f"must be between {lo} and {hi}, got {value}")
    return value


def bool_param(params: Params, name: str, default: bool) -> bool:
    text = one(params, name)
    if text is None or text == "":
        return default
    if text.lower() in TRUE:
        return True
    if text.lower() in FALSE:
        return False
    raise ParamError(name, f"must be true or false, got {text!r}")


def known(values: list[str] | None, universe: Collection[str], param: str, what: str) -> frozenset[str] | None:
    if values is None:
        return None
    unknown = [v for v in values if v not in universe]
    if unknown:
        raise ParamError(param, f"unknown {what}: {', '.join(unknown)}")
    return frozenset(values)


def odds_format_param(params: Params) -> str:
    """`oddsFormat` (alias `odds_format`) of a stream: american (default), decimal or probability."""
    text = one(params, "oddsFormat", "odds_format")
    if text is None or text == "":
        return "american"
    if text not in ODDS_FORMATS:
        raise ParamError("oddsFormat", f"must be american, decimal or probability, got {text!r}")
    return text


def parse_filter(params: Params, catalog: Catalog, *, drops: bool = False, conflate: bool = False,
                 steam: str | None = None) -> Filter:
    """Build a Filter from stream params, validating every one against the catalog.

    `drops`: the drop stream's params (threshold, direction, `kinds=steam`); `steam` forces
    the steam mode (`/v1/steam`: "only"); `conflate`: `conflate_ms` is taken (the odds stream
    and WebSocket), elsewhere it is a 400."""
    event_ids = csv(params, "event_id") or csv(params, "match_id") or csv(params, "event_ids")
    if event_ids is not None and "*" in event_ids:
        event_ids = None
    kinds_raw = csv(params, "kinds")
    kinds = None
    steam_mode = "off"
    if kinds_raw is not None:
        allowed = ("game", "prop", STEAM_KIND) if drops else ("game", "prop")
        bad = [k for k in kinds_raw if k not in KINDS and not (drops and k == STEAM_KIND)]
        if bad:
            raise ParamError("kinds", f"unknown kind: {', '.join(bad)} (use {', '.join(allowed)})")
        market_kinds = [k for k in kinds_raw if k != STEAM_KIND]
        if STEAM_KIND in kinds_raw:
            steam_mode = "also" if market_kinds else "only"
        kinds = frozenset(KINDS[k] for k in market_kinds) or None
    if steam is not None:
        steam_mode = steam
    if conflate:
        conflate_ms = int_param(params, "conflate_ms", 0, 0, MAX_CONFLATE_MS)
    elif one(params, "conflate_ms"):
        raise ParamError("conflate_ms", "is taken by the odds stream and WebSocket streams only")
    else:
        conflate_ms = 0
    threshold = 10
    direction = None
    if drops:
        threshold = int_param(params, "threshold", 10, 1, 200)
        text = one(params, "direction")
        if text is not None and text != "":
            if text not in DIRECTIONS:
                raise ParamError("direction", f"must be both, toward_favorite or toward_dog, got {text!r}")
            direction = DIRECTIONS[text]
    return Filter(
        event_ids=frozenset(event_ids) if event_ids is not None else None,
        bookmakers=known(csv(params, "bookmakers"), catalog.bookmakers, "bookmakers", "bookmaker"),
        markets=known(csv(params, "markets"), catalog.markets, "markets", "market"),
        kinds=kinds,
        threshold=threshold,
        direction=direction,
        drops=drops,
        steam=steam_mode,
        odds_format=odds_format_param(params),
        conflate_ms=conflate_ms,
    )


def parse_sports(params: Params, path_sport: str, catalog: Catalog) -> frozenset[str] | None:
    """Sports in scope for a stream: None = every sport (`all`). `sports` overrides the path."""
    listed = csv(params, "sports")
    if listed is None:
        if path_sport == "multi":
            raise ParamError("sports", "required with /multi: a CSV of sport keys")
        listed = [path_sport]
    if "all" in listed:
        return None
    unknown = [s for s in listed if s not in catalog.sports]
    if unknown:
        param = "sports" if csv(params, "sports") is not None else "sport_key"
        raise ParamError(param, f"unknown sport: {', '.join(unknown)}")
    return frozenset(listed)
