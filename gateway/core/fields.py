"""Field readers for ingest rows: each checks one field and names it in its error.

Pure: standard library only. Shared by `parse` (flat quotes, TOA event lists, PBP rows).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, TypeGuard

from .client_json import encodable
from .time import ms_from_iso


class RowError(ValueError):
    """One row (or one field of it) is unusable; the message names the field."""


KEY_RE = re.compile(r"[a-z0-9_]+")
MAX_TEXT = 200
MAX_DESCRIPTION = 2000
# ints below this are unix *seconds* (1e11 ms is 1973): a common client mistake worth naming
MIN_MS = 100_000_000_000
MAX_MS = 10_000_000_000_000  # year 2286: anything later is garbage, not a time
MAX_POINT = 100_000.0
MAX_SCORE = 999_999  # an integer score past this is garbage (and SQLite/JSON clients choke on huge ints)
MAX_PERIOD = 999
MAX_CLOCK = 40


def text(row: Mapping[str, Any], name: str, *, max_len: int = MAX_TEXT) -> str | None:
    """An optional non-empty string field (None when absent or null)."""
    value = row.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RowError(f"{name}: expected a string, got {type(value).__name__}")
    if len(value) > max_len:
        raise RowError(f"{name}: longer than {max_len} characters")
    check_unicode(name, value)
    if not value.strip():
        raise RowError(f"{name}: must not be empty")
    return value


def check_unicode(name: str, value: str) -> str:
    """`value`, if the store can take it: a JSON escape such as `\\ud800` yields a lone UTF-16
    surrogate, which cannot be encoded as UTF-8 (SQLite would refuse the whole batch)."""
    if not encodable(value):
        raise RowError(f"{name}: contains a lone UTF-16 surrogate (not valid Unicode text)")
    return value


def req_text(row: Mapping[str, Any], name: str) -> str:
    value = text(row, name)
    if value is None:
        raise RowError(f"{name}: required")
    return value


def key(row: Mapping[str, Any], name: str) -> str:
    value = req_text(row, name)
    if not KEY_RE.fullmatch(value):
        raise RowError(f"{name}: {value!r} must be lowercase letters, digits and underscores")
    return value


def is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def ms(row: Mapping[str, Any], name: str, default: int | None = None) -> int:
    value = row.get(name)
    if value is None:
        if default is None:
            raise RowError(f"{name}: required")
        return default
    if not is_int(value):
        raise RowError(f"{name}: expected unix milliseconds (an integer), got {type(value).__name__}")
    return check_ms(name, value)


def check_ms(name: str, value: int) -> int:
    if value < MIN_MS:
        raise RowError(f"{name}: {value} looks like unix seconds or is too early; send unix milliseconds")
    if value > MAX_MS:
        raise RowError(f"{name}: {value} is too far in the future")
    return value


def time_ms(row: Mapping[str, Any], name: str, *, int_unit_ms: bool = True) -> int:
    """An ISO-8601 string or an int (unix ms; TOA's dateFormat=unix sends seconds)."""
    value = row.get(name)
    if isinstance(value, str):
        try:
            return check_ms(name, ms_from_iso(value))
        except ValueError:
            raise RowError(f"{name}: {value!r} is not an ISO-8601 time") from None
    if is_int(value):
        if not int_unit_ms and value < MIN_MS:
            value *= 1000
        return check_ms(name, value)
    if value is None:
        raise RowError(f"{name}: required")
    raise RowError(f"{name}: expected an ISO-8601 string or unix milliseconds, got {type(value).__name__}")


def number(row: Mapping[str, Any], name: str) -> float | None:
    value = row.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RowError(f"{name}: expected a number, got {type(value).__name__}")
    if is_int(value) and abs(value) > MAX_POINT:  # before isfinite: a huge int overflows a float
        raise RowError(f"{name}: not a finite number within +-{MAX_POINT:g}")
    if not math.isfinite(value) or abs(value) > MAX_POINT:
        raise RowError(f"{name}: {value!r} is not a finite number within +-{MAX_POINT:g}")
    return float(value)


def mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise RowError(f"{what}: expected an object, got {type(value).__name__}")
    return value


def list_of(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise RowError(f"{what}: expected a list, got {type(value).__name__}")
    return value
