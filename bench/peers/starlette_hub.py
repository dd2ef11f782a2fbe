"""The Python peer of bench/side_by_side.py: an in-memory pub/sub hub on FastAPI + sse-starlette.

What a Python user would otherwise write, following the sse-starlette README: an async
generator per subscriber, yielding dicts to `EventSourceResponse`, fed by one
`asyncio.Queue` per subscriber. Nothing is tuned.

    uvicorn bench.peers.starlette_hub:app --host 127.0.0.1 --port 8000 --no-access-log

    POST /publish       body: JSON list of {"topic": str, "data": object}; each event is
                        serialised once and put on the queue of every subscriber of its topic
    GET  /sse/{topic}   text/event-stream of the topic's events (`id:` + `data:` lines)
    GET  /stats         subscribers, events published, subscribers evicted

Slow consumers: a subscriber's queue holds at most HUB_QUEUE_MAX events (env, default 1000).
When it is full the hub evicts the subscriber: its queue is emptied, a sentinel ends its
generator, and the response ends (the client sees the end of the stream). Without a bound
the server would buffer without limit instead.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from sse_starlette import EventSourceResponse

QUEUE_MAX = int(os.environ.get("HUB_QUEUE_MAX", "1000"))


class Event(BaseModel):
    topic: str
    data: dict[str, Any]


class Hub:
    def __init__(self) -> None:
        self.topics: dict[str, set[asyncio.Queue[dict[str, str] | None]]] = defaultdict(set)
        self.ids = itertools.count(1)
        self.published = 0
        self.evicted = 0

    def subscribe(self, topic: str) -> asyncio.Queue[dict[str, str] | None]:
        queue: asyncio.Queue[dict[str, str] | None] = asyncio.Queue(maxsize=QUEUE_MAX)
        self.topics[topic].add(queue)
        return queue

    def unsubscribe(self, topic: str, queue: asyncio.Queue[dict[str, str] | None]) -> None:
        self.topics[topic].discard(queue)

    def publish(self, topic: str, data: dict[str, Any]) -> None:
        event = {"id": str(next(self.ids)), "data": json.dumps(data, separators=(",", ":"))}
        self.published += 1
        for queue in list(self.topics.get(topic, ())):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self.evict(topic, queue)

    def evict(self, topic: str, queue: asyncio.Queue[dict[str, str] | None]) -> None:
        self.unsubscribe(topic, queue)
        self.evicted += 1
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(None)  # ends the subscriber's generator, hence its response


hub = Hub()
app = FastAPI()


@app.post("/publish")
async def publish(events: list[Event]) -> dict[str, int]:
    for event in events:
        hub.publish(event.topic, event.data)
    return {"accepted": len(events)}


@app.get("/sse/{topic}")
async def subscribe(topic: str) -> EventSourceResponse:
    queue = hub.subscribe(topic)

    async def events() -> AsyncIterator[dict[str, str]]:
        try:
            while True:
                event = await queue.get()
                if event is None:  # evicted
                    return
                yield event
        finally:
            hub.unsubscribe(topic, queue)

    return EventSourceResponse(events(), ping=15)


@app.get("/stats")
async def stats() -> dict[str, int]:
    return {"subscribers": sum(len(s) for s in hub.topics.values()), "published": hub.published,
            "evicted": hub.evicted, "queue_max": QUEUE_MAX}
