"""JSON from clients: parse with bounds on nesting, and find strings that cannot be stored.

Pure: standard library only. Every JSON body or message a client sends goes through `loads`
(ingest, webhooks API, dashboard login, WebSocket messages), so one rule holds everywhere:

- Nesting deeper than `MAX_DEPTH` is refused. `json.loads` is C and fast but recurses once
  per level: 100,000 `[` raise RecursionError (a 500 when uncaught), and a value of several
  hundred levels that does parse breaks whatever recurses on it later (repr, encoders). The
  parser's own RecursionError is caught; the depth of what parsed is checked level by level
  (each container visited once: about 1.3x the parse itself), and only when the text has
  more openers than the limit, which small bodies never do.
- Bytes must be UTF-8 (RFC 8259); the error says at which byte they are not.
- With `strict_text`, every string (keys too) must be encodable as UTF-8: a JSON escape can
  produce a lone UTF-16 surrogate (`"\\ud800"`) that SQLite and the UTF-8 encoders refuse.
  Ingest keeps it off and rejects such strings per row and field instead (parse.py), so the
  good rows of a batch are kept.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["MAX_DEPTH", "ClientJsonError", "depth_exceeds", "loads", "unencodable_path"]

# The deepest legitimate body is a The Odds API event list (8 levels, 9 when wrapped in an
# object); WebSocket messages and webhook bodies are 2-3 deep.
MAX_DEPTH = 32
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class ClientJsonError(ValueError):
    """The text is not acceptable JSON. `message` completes "the body is ..." ("not valid
    JSON: ...", "nested too deeply ..."), fit for a 400 or an error frame."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def loads(raw: bytes | str, *, max_depth: int = MAX_DEPTH, max_chars: int | None = None,
          strict_text: bool = False) -> Any:
    """The parsed value, or ClientJsonError naming the problem."""
    if isinstance(raw, bytes | bytearray):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ClientJsonError(f"not UTF-8 text (invalid byte at offset {exc.start})") from None
    else:
        text = raw
    if max_chars is not None and len(text) > max_chars:
        raise ClientJsonError(f"too long (over {max_chars} characters)")
    try:
        value = json.loads(text)
    except RecursionError:
        raise ClientJsonError(_too_deep(max_depth)) from None
    except ValueError as exc:  # JSONDecodeError, and ints past Python's digit limit
        raise ClientJsonError(f"not valid JSON: {exc}") from None
    if text.count("[") + text.count("{") > max_depth and depth_exceeds(value, max_depth):
        raise ClientJsonError(_too_deep(max_depth))
    if strict_text and _SURROGATE_ESCAPE.search(text):
        where = unencodable_path(value)
        if where is not None:
            raise ClientJsonError(f"not valid Unicode text at {where or 'the top level'}: a lone UTF-16 surrogate "
                                  "(an unpaired \\ud800-\\udfff escape)")
    return value


def _too_deep(max_depth: int) -> str:
    return f"nested too deeply (at most {max_depth} levels of arrays and objects)"


def depth_exceeds(value: Any, limit: int) -> bool:
    """Whether `value` nests lists/dicts more than `limit` levels deep (a scalar is level 0)."""
    level = [value] if isinstance(value, list | dict) else []
    for _ in range(limit):
        children: list[Any] = []
        for node in level:
            children.extend(node.values() if isinstance(node, dict) else node)
        level = [c for c in children if isinstance(c, list | dict)]
        if not level:
            return False
    return bool(level)


def encodable(text: str) -> bool:
    """Whether `text` can be encoded as UTF-8 (no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unencodable_path(value: Any, path: str = "") -> str | None:
    """The path (`a.b[2]`) of the first string or key that is not valid Unicode text, else None
    (an empty path means `value` itself). Callers bound the depth first (`loads` does)."""
    if isinstance(value, str):
        return None if encodable(value) else path
    if isinstance(value, dict):
        for k, v in value.items():
            name = f"{path}.{k[:40]}" if path else k[:40]
            if not encodable(k):
                return f"{path}.<key>" if path else "<key>"
            found = unencodable_path(v, name)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = unencodable_path(v, f"{path}[{i}]")
            if found is not None:
                return found
    return None
