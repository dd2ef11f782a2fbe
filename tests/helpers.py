"""Test helpers: flat quotes, and a small SSE reader over an httpx stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

COMMENCE = "2026-05-12T22:30:00Z"


def quote(price: int, *, book: str = "pinnacle", market: str = "h2h", outcome: str = "home",
          event: str = "2026-05-12_Lakers_Warriors", sport: str = "basketball_nba", point: float | None = None,
          player: str | None = None, **extra: Any) -> dict[str, Any]:
    row = {"sport_key": sport, "event_id": event, "home_team": "Los Angeles Lakers",
           "away_team": "Golden State Warriors", "commence_time": COMMENCE, "bookmaker": book,
           "market_key": market, "outcome": outcome, "price": price, "point": point, "player": player}
    row.update(extra)
    return row


@dataclass
class Event:
    id: str | None
    event: str | None
    data: dict[str, Any]


async def sse_events(resp: httpx.Response) -> AsyncIterator[Event]:
    """Parse an SSE body as a browser would: blank line ends an event; skip data-less ones."""
    ev_id = ev_name = None
    data: list[str] = []
    async for line in resp.aiter_lines():
        if line == "":
            if data:
                yield Event(ev_id, ev_name, json.loads("\n".join(data)))
            ev_id = ev_name = None
            data = []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                data.append(value)
            elif field == "id":
                ev_id = value
            elif field == "event":
                ev_name = value


async def next_of(events: AsyncIterator[Event], *types: str) -> Event:
    async for ev in events:
        if ev.data.get("type") in types:
            return ev
    raise AssertionError(f"stream ended before a {types} frame")


async def push(client: httpx.AsyncClient, key: str, rows: list[dict[str, Any]],
               path: str = "/v1/ingest/odds") -> dict[str, Any]:
    r = await client.post(path, json=rows, headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body
