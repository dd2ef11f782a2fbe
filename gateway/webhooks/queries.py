"""Webhook SQL: plain functions of a sqlite3 connection (run through Store.read / write_fn).

Tables `webhooks` and `webhook_deliveries` (schema.sql). A delivery row is the durable
queue: `pending` rows with `next_attempt_ms` are what the worker sends, so a restart loses
none. The worker's position in the stream log is `meta.webhooks_seq`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..core.frames import DROP, STEAM
from ..store import LogRow, max_seq, read_log
from .model import Webhook

WATERMARK = "webhooks_seq"
DELIVERY_STATES = ("pending", "delivered", "failed", "cancelled")
_COLS = ("id, key_id, url, description, format, filters, secret, is_active, disabled_reason, "
         "consecutive_failures, after_seq, created_ms, updated_ms")


def _hook(r: tuple[Any, ...]) -> Webhook:
    return Webhook(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], bool(r[7]), r[8], r[9], r[10],
                   r[11], r[12])


def insert_webhook(conn: sqlite3.Connection, *, key_id: int, url: str, description: str, fmt: str,
                   filters: Mapping[str, Any], secret: str, after_seq: int, now: int,
                   max_per_key: int | None = None) -> Webhook | None:
    """The new webhook, or None if the key already has `max_per_key`."""
    if max_per_key is not None and count_webhooks(conn, key_id) >= max_per_key:
        return None
    cur = conn.execute(
        "INSERT INTO webhooks (key_id, url, description, format, filters, secret, is_active, after_seq, "
        "created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?)",
        (key_id, url, description, fmt, json.dumps(filters), secret, after_seq, now, now),
    )
    hook = get_webhook(conn, cur.lastrowid or 0)
    assert hook is not None
    return hook


def get_webhook(conn: sqlite3.Connection, webhook_id: int, *, key_id: int | None = None) -> Webhook | None:
    """One webhook; with `key_id`, only if that key owns it (others' ids look unknown)."""
    sql, args = f"SELECT {_COLS} FROM webhooks WHERE id = ?", [webhook_id]
    if key_id is not None:
        sql += " AND key_id = ?"
        args.append(key_id)
    row = conn.execute(sql, args).fetchone()
    return _hook(row) if row else None


def list_webhooks(conn: sqlite3.Connection, *, key_id: int | None = None) -> list[Webhook]:
    sql, args = f"SELECT {_COLS} FROM webhooks", []
    if key_id is not None:
        sql += " WHERE key_id = ?"
        args.append(key_id)
    return [_hook(r) for r in conn.execute(sql + " ORDER BY id", args)]


def count_webhooks(conn: sqlite3.Connection, key_id: int) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM webhooks WHERE key_id = ?", (key_id,)).fetchone()[0])


def update_webhook(conn: sqlite3.Connection, webhook_id: int, *, now: int, last_seq: int,
                   url: str | None = None, description: str | None = None, fmt: str | None = None,
                   filters: Mapping[str, Any] | None = None, is_active: bool | None = None,
                   secret: str | None = None) -> Webhook:
    """Change what is given. Enabling resets the failure count and starts after `last_seq`;
    disabling cancels the pending deliveries."""
    sets: dict[str, Any] = {"updated_ms": now}
    for col, value in (("url", url), ("description", description), ("format", fmt), ("secret", secret)):
        if value is not None:
            sets[col] = value
    if filters is not None:
        sets["filters"] = json.dumps(filters)
    current = get_webhook(conn, webhook_id)
    assert current is not None
    if is_active is True and not current.is_active:
        sets.update(is_active=1, disabled_reason=None, consecutive_failures=0, after_seq=last_seq)
    elif is_active is False and current.is_active:
        sets.update(is_active=0, disabled_reason="disabled by its owner")
        cancel_pending(conn, webhook_id, "webhook disabled by its owner", now)
    assign = ", ".join(f"{col} = ?" for col in sets)
    conn.execute(f"UPDATE webhooks SET {assign} WHERE id = ?", [*sets.values(), webhook_id])
    hook = get_webhook(conn, webhook_id)
    assert hook is not None
    return hook


def delete_webhook(conn: sqlite3.Connection, webhook_id: int, *, key_id: int | None = None) -> bool:
    if get_webhook(conn, webhook_id, key_id=key_id) is None:
        return False
    conn.execute("DELETE FROM webhook_deliveries WHERE webhook_id = ?", (webhook_id,))
    conn.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,))
    return True


def key_named(conn: sqlite3.Connection, name: str) -> tuple[int, str] | None:
    """(id, tier) of the active key with this name."""
    row = conn.execute("SELECT id, tier FROM api_keys WHERE name = ? AND revoked_ms IS NULL", (name,)).fetchone()
    return (int(row[0]), str(row[1])) if row else None


def key_names(conn: sqlite3.Connection) -> dict[int, str]:
    return {int(r[0]): str(r[1]) for r in conn.execute("SELECT id, name FROM api_keys")}


# -- the worker ------------------------------------------------------------------------------

def active_webhooks(conn: sqlite3.Connection, tiers: Iterable[str]) -> list[Webhook]:
    """Active webhooks whose key is unrevoked and of a tier allowed webhooks."""
    tier_list = list(tiers)
    marks = ",".join("?" * len(tier_list)) or "NULL"
    cols = ", ".join("w." + c.strip() for c in _COLS.split(","))
    rows = conn.execute(
        f"SELECT {cols} FROM webhooks w JOIN api_keys k ON k.id = w.key_id "
        f"WHERE w.is_active = 1 AND k.revoked_ms IS NULL AND k.tier IN ({marks}) ORDER BY w.id",
        tier_list,
    )
    return [_hook(r) for r in rows]


def start_position(conn: sqlite3.Connection, tiers: Iterable[str]) -> int:
    """Where matching resumes: the stored watermark, but never before the oldest active
    webhook began; a store that never ran webhooks starts at the end of the log."""
    top = max_seq(conn)
    stored = get_watermark(conn)
    floor = min((h.after_seq for h in active_webhooks(conn, tiers)), default=top)
    start = min(top, floor if stored is None else max(stored, floor))
    set_watermark(conn, start)
    return start


def new_drops(conn: sqlite3.Connection, *, after: int, tiers: Iterable[str],
              limit: int) -> tuple[list[Webhook], list[LogRow], int]:
    """(active webhooks, drop rows after `after`, last id read). Without webhooks nothing is
    read and the last id is the end of the log."""
    hooks = active_webhooks(conn, tiers)
    if not hooks:
        return [], [], max_seq(conn)
    rows = read_log(conn, after, (DROP, STEAM), None, limit)
    return hooks, rows, rows[-1].seq if rows else after


def get_watermark(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (WATERMARK,)).fetchone()
    return int(row[0]) if row else None


def set_watermark(conn: sqlite3.Connection, seq: int) -> None:
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                 (WATERMARK, str(seq)))


@dataclass(frozen=True, slots=True)
class NewDelivery:
    id: str
    webhook_id: int
    event_type: str
    seq: int | None
    body: str
    next_attempt_ms: int | None


def insert_deliveries(conn: sqlite3.Connection, rows: list[NewDelivery], *, now: int,
                      watermark: int | None = None) -> None:
    conn.executemany(
        "INSERT INTO webhook_deliveries (id, webhook_id, event_type, seq, body, status, attempts, "
        "next_attempt_ms, created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
        [(d.id, d.webhook_id, d.event_type, d.seq, d.body, d.next_attempt_ms, now, now) for d in rows],
    )
    if watermark is not None:
        set_watermark(conn, watermark)


@dataclass(frozen=True, slots=True)
class Due:
    """A pending delivery and what sending it needs (read at send time: rotation applies)."""

    id: str
    webhook_id: int
    event_type: str
    body: str
    attempts: int
    url: str
    secret: str
    key_id: int = 0  # the owner: the delivery pool is shared per key (shares.py)


def due_deliveries(conn: sqlite3.Connection, now: int, per_webhook: int, per_key: int, limit: int) -> list[Due]:
    """Due rows, oldest first, at most `per_webhook` of each webhook and `per_key` of each key
    (a backlog on one dead endpoint, or on one key's many, cannot crowd out the others)."""
    rows = conn.execute(
        "SELECT id, webhook_id, event_type, body, attempts, url, secret, key_id FROM ("
        " SELECT *, ROW_NUMBER() OVER (PARTITION BY key_id ORDER BY next_attempt_ms, rid) AS nk FROM ("
        "  SELECT d.id, d.webhook_id, d.event_type, d.body, d.attempts, w.url, w.secret, w.key_id,"
        "   d.next_attempt_ms, d.rowid AS rid,"
        "   ROW_NUMBER() OVER (PARTITION BY d.webhook_id ORDER BY d.next_attempt_ms, d.rowid) AS nh"
        "  FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id JOIN api_keys k ON k.id = w.key_id"
        "  WHERE d.status = 'pending' AND d.next_attempt_ms <= ? AND w.is_active = 1 AND k.revoked_ms IS NULL"
        " ) WHERE nh <= ?"
        ") WHERE nk <= ? ORDER BY next_attempt_ms, rid LIMIT ?",
        (now, per_webhook, per_key, limit),
    )
    return [Due(*r) for r in rows]


def next_due_ms(conn: sqlite3.Connection, after: int) -> int | None:
    """The earliest retry scheduled after `after` (rows due already are claimed or in flight)."""
    row = conn.execute("SELECT MIN(next_attempt_ms) FROM webhook_deliveries WHERE status = 'pending' "
                       "AND next_attempt_ms > ?", (after,)).fetchone()
    return int(row[0]) if row and row[0] is not None else None


def record_attempt(conn: sqlite3.Connection, due: Due, *, ok: bool, status: int | None, error: str | None,
                   now: int, retry_in_ms: int | None, disable_after: int) -> bool:
    """Store one attempt's outcome; returns True if this failure disabled the webhook.

    A failure with `retry_in_ms` stays pending; otherwise the delivery is final. Final
    failures of real events count toward auto-disable; a success resets the count.
    """
    attempts = due.attempts + 1
    if ok or retry_in_ms is None:
        conn.execute("UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_ms = NULL, "
                     "last_status = ?, last_error = ?, updated_ms = ? WHERE id = ?",
                     ("delivered" if ok else "failed", attempts, status, error, now, due.id))
    else:
        conn.execute("UPDATE webhook_deliveries SET attempts = ?, next_attempt_ms = ?, last_status = ?, "
                     "last_error = ?, updated_ms = ? WHERE id = ?",
                     (attempts, now + retry_in_ms, status, error, now, due.id))
        return False
    if due.event_type == "test":
        return False
    if ok:
        conn.execute("UPDATE webhooks SET consecutive_failures = 0 WHERE id = ?", (due.webhook_id,))
        return False
    conn.execute("UPDATE webhooks SET consecutive_failures = consecutive_failures + 1 WHERE id = ?",
                 (due.webhook_id,))
    row = conn.execute("SELECT consecutive_failures, is_active FROM webhooks WHERE id = ?",
                       (due.webhook_id,)).fetchone()
    if row is None or row[0] < disable_after or not row[1]:
        return False
    reason = f"disabled after {row[0]} consecutive failed deliveries (last: {error})"
    conn.execute("UPDATE webhooks SET is_active = 0, disabled_reason = ?, updated_ms = ? WHERE id = ?",
                 (reason, now, due.webhook_id))
    cancel_pending(conn, due.webhook_id, "webhook disabled after repeated failures", now)
    return True


def record_test(conn: sqlite3.Connection, due: Due, *, created_ms: int, now: int, ok: bool, status: int | None,
                error: str | None) -> None:
    """A test event sent by hand: stored already finished; it never counts toward auto-disable."""
    insert_deliveries(conn, [NewDelivery(due.id, due.webhook_id, due.event_type, None, due.body, None)],
                      now=created_ms)
    record_attempt(conn, due, ok=ok, status=status, error=error, now=now, retry_in_ms=None, disable_after=0)


def cancel_pending(conn: sqlite3.Connection, webhook_id: int, reason: str, now: int) -> None:
    conn.execute("UPDATE webhook_deliveries SET status = 'cancelled', next_attempt_ms = NULL, last_error = ?, "
                 "updated_ms = ? WHERE webhook_id = ? AND status = 'pending' AND event_type != 'test'",
                 (reason, now, webhook_id))


def list_deliveries(conn: sqlite3.Connection, webhook_id: int, *, limit: int,
                    status: str | None = None) -> list[dict[str, Any]]:
    sql = ("SELECT id, event_type, seq, status, attempts, next_attempt_ms, last_status, last_error, "
           "created_ms, updated_ms FROM webhook_deliveries WHERE webhook_id = ?")
    args: list[Any] = [webhook_id]
    if status is not None:
        sql += " AND status = ?"
        args.append(status)
    rows = conn.execute(sql + " ORDER BY created_ms DESC, rowid DESC LIMIT ?", [*args, limit])
    names = ("id", "event_type", "seq", "status", "attempts", "next_attempt_ms", "last_status", "last_error",
             "created_ms", "updated_ms")
    return [dict(zip(names, r, strict=True)) for r in rows]


def prune_deliveries(conn: sqlite3.Connection, before_ms: int) -> int:
    cur = conn.execute("DELETE FROM webhook_deliveries WHERE status != 'pending' AND updated_ms < ?", (before_ms,))
    return cur.rowcount
