"""In-process fan-out: topics by (stream, sport), one bounded memory channel per subscriber.

Policy: `publish` never blocks and never awaits. A subscriber whose channel is full is cut
off (slow consumer): it is removed from every topic, its channel closed, and its transport
sends a final error frame so the client reconnects and resumes from the store.
Frames are filtered here, once per (frame, subscriber), and are already encoded.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import trio

from .core.filters import Filter
from .core.frames import Frame

logger = logging.getLogger(__name__)

SLOW_CONSUMER = "slow_consumer"
SHUTDOWN = "shutdown"


class Subscriber:
    __slots__ = ("cut_reason", "deliver", "filter", "receive", "send", "sports", "streams", "transport", "wakeup")

    def __init__(
        self,
        streams: tuple[str, ...],
        sports: frozenset[str] | None,
        flt: Filter,
        buffer: int,
        transport: str,
    ) -> None:
        self.streams = streams
        self.sports = sports  # None: every sport, including ones that appear later
        self.filter = flt  # may be replaced live (WS subscribe); read at each publish
        self.transport = transport
        self.cut_reason: str | None = None
        self.send, self.receive = trio.open_memory_channel[Frame](buffer)
        # direct mode (SSE): frames of one publish go to `deliver` instead of the channel;
        # it returns False when the client is too far behind. `wakeup`, when set, is called
        # on a cut and on every frame queued: the subscriber's task is waiting elsewhere.
        self.deliver: Callable[[list[Frame]], bool] | None = None
        self.wakeup: Callable[[], None] | None = None


@dataclass(frozen=True, slots=True)
class HubStats:
    subscribers: int
    by_transport: dict[str, int]
    published: int
    delivered: int
    slow_consumer_cuts: int


class Hub:
    def __init__(self, buffer: int = 4096) -> None:
        self.buffer = buffer
        self._topics: dict[tuple[str, str], set[Subscriber]] = {}
        self._wildcard: dict[str, set[Subscriber]] = {}
        self._all: set[Subscriber] = set()
        self.published = 0
        self.delivered = 0
        self.cuts = 0

    def subscribe(
        self,
        streams: Iterable[str],
        sports: frozenset[str] | None,
        flt: Filter,
        *,
        transport: str = "sse",
    ) -> Subscriber:
        sub = Subscriber(tuple(streams), sports, flt, self.buffer, transport)
        for stream in sub.streams:
            if sports is None:
                self._wildcard.setdefault(stream, set()).add(sub)
            else:
                for sport in sports:
                    self._topics.setdefault((stream, sport), set()).add(sub)
        self._all.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        """Idempotent; safe to call from `finally` blocks."""
        if sub not in self._all:
            return
        self._all.discard(sub)
        for stream in sub.streams:
            if sub.sports is None:
                self._wildcard.get(stream, set()).discard(sub)
            else:
                for sport in sub.sports:
                    subs = self._topics.get((stream, sport))
                    if subs is not None:
                        subs.discard(sub)
                        if not subs:
                            del self._topics[(stream, sport)]
        sub.send.close()
        if sub.wakeup is not None:
            sub.wakeup()

    def cut(self, sub: Subscriber, reason: str) -> None:
        if sub.cut_reason is None:
            sub.cut_reason = reason
        self.unsubscribe(sub)

    def publish(self, frames: Iterable[Frame]) -> None:
        """Hand each frame to every matching subscriber. Never blocks."""
        topics, wildcard = self._topics, self._wildcard
        delivered = 0
        published = 0
        slow: list[Subscriber] = []
        direct: dict[Subscriber, list[Frame]] = {}
        for frame in frames:
            published += 1
            stream = frame.stream
            assert stream is not None and frame.sport_key is not None
            for group in (topics.get((stream, frame.sport_key)), wildcard.get(stream)):
                if not group:
                    continue
                for sub in group:
                    if not sub.filter.matches(frame):
                        continue
                    if sub.deliver is not None:  # written after the loop, all of this publish at once
                        if sub in direct:
                            direct[sub].append(frame)
                        else:
                            direct[sub] = [frame]
                        delivered += 1
                        continue
                    try:
                        sub.send.send_nowait(frame)
                        delivered += 1
                        if sub.wakeup is not None:  # its task waits on the client, not the channel
                            sub.wakeup()
                    except trio.WouldBlock:
                        slow.append(sub)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        slow.append(sub)
            if slow:  # cut outside the loop over the group: cutting mutates it
                for sub in slow:
                    self._cut_slow(sub)
                slow.clear()
        for sub, batch in direct.items():
            if sub.deliver is not None and not sub.deliver(batch):
                self._cut_slow(sub)
        self.published += published
        self.delivered += delivered

    def _cut_slow(self, sub: Subscriber) -> None:
        if sub.cut_reason is None and sub in self._all:
            self.cuts += 1
            logger.info("cutting off a slow %s subscriber (its buffer is full)", sub.transport)
        self.cut(sub, SLOW_CONSUMER)

    def close_all(self, reason: str = SHUTDOWN) -> None:
        for sub in list(self._all):
            self.cut(sub, reason)

    def __len__(self) -> int:
        return len(self._all)

    def statistics(self) -> HubStats:
        return HubStats(
            subscribers=len(self._all),
            by_transport=dict(Counter(s.transport for s in self._all)),
            published=self.published,
            delivered=self.delivered,
            slow_consumer_cuts=self.cuts,
        )
