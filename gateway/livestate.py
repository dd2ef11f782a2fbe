"""The live state of matches (the `live_state` table) as REST and `initial_state` give it."""

from __future__ import annotations

from typing import Any


def period_number(stored: str | None) -> int | str | None:
    """live_state.period is a TEXT column: give back the int that pbp_event frames carry (a
    label stored before periods were numbers stays as it was)."""
    return int(stored) if stored is not None and stored.isascii() and stored.isdigit() else stored


def live_state_rows(conn: Any, sport_key: str, match_id: str | None, *,
                    live_only: bool = False) -> list[dict[str, Any]]:
    sql = "SELECT * FROM live_state WHERE sport_key = ?"
    args: list[Any] = [sport_key]
    if match_id and match_id != "*":
        sql += " AND match_id = ?"
        args.append(match_id)
    if live_only:
        sql += " AND status != 'final'"
    return [live_state_json(r) for r in conn.execute(sql + " ORDER BY updated_ms DESC", args)]


def live_state_json(r: Any) -> dict[str, Any]:
    """A live_state row (the table's columns, in order) as REST and initial_state give it."""
    return {"type": "live_state", "match_id": r[0], "sport_key": r[1], "home_team": r[2], "away_team": r[3],
            "score_a": r[4], "score_b": r[5], "state": {"period": period_number(r[6]), "clock": r[7], "status": r[8]},
            "source": r[9], "last_play": r[10], "timestamp": r[11]}
