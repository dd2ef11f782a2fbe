"""In-process fan-out: topics by (stream, sport), one bounded memory channel per subscriber.

Policy: `publish` never blocks and never awaits. A subscriber whose channel is full is cut
off (slow consumer): it is removed from every topic, its channel closed, and its transport
sends a final error frame so the client reconnects and resumes from the store.
Subscribers with the same streams, sports and filter form a group: frames are filtered
once per (frame, group) and encoded once per group and wire format. The filter also holds
the odds format (frames are converted once per format, `Frame.as_format`) and the
conflation window: a conflated group's frames are held in its `Conflator` and handed out,
the latest per row, at most once per window by `flush_conflated` (gateway/conflation.py
runs it), so conflation costs once per group too, not per subscriber.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import trio

from .core.conflate import Conflator
from .core.filters import Filter
from .core.frames import Frame

CONFLATE_MAX_HELD = 50_000  # frames a conflated group holds at most: past it, it is handed out early

logger = logging.getLogger(__name__)

SLOW_CONSUMER = "slow_consumer"
SHUTDOWN = "shutdown"


class Subscriber:
    __slots__ = ("cut_reason", "deliver", "group", "receive", "send", "transport", "wakeup")

    def __init__(self, group: Group, buffer: int, transport: str) -> None:
        self.group = group
        self.transport = transport
        self.cut_reason: str | None = None
        self.send, self.receive = trio.open_memory_channel[Frame](buffer)
        # direct mode: the frames of one publish go to `deliver(frames, encoded)` instead of
        # the channel (`encoded` is shared by the group: bytes by encoder, encoded once); it
        # returns False when the client is too far behind. `wakeup`, when set, is called on a
        # cut and on every publish that queued frames: the subscriber's task waits elsewhere.
        self.deliver: Callable[[list[Frame], dict[Any, bytes]], bool] | None = None
        self.wakeup: Callable[[], None] | None = None

    @property
    def filter(self) -> Filter:
        return self.group.filter

    @property
    def streams(self) -> tuple[str, ...]:
        return self.group.streams


class Group:
    """Subscribers that asked for the same streams, sports and filter. Each publish gives
    them the same frames, so the filter runs once per frame for all of them, and a frame
    batch is encoded once per wire format, however many subscribers share it."""

    __slots__ = ("conflator", "filter", "key", "next_flush", "sports", "streams", "subs")

    def __init__(self, key: GroupKey) -> None:
        self.key = key
        self.streams, self.sports, self.filter = key
        self.subs: set[Subscriber] = set()
        self.conflator = Conflator() if self.filter.conflate_ms else None
        self.next_flush = 0.0  # trio time: a conflated group hands frames out from then on


GroupKey = tuple[tuple[str, ...], frozenset[str] | None, Filter]


@dataclass(frozen=True, slots=True)
class HubStats:
    subscribers: int
    by_transport: dict[str, int]
    published: int
    delivered: int
    slow_consumer_cuts: int
    groups: int


class Hub:
    def __init__(self, buffer: int = 4096) -> None:
        self.buffer = buffer
        self._groups: dict[GroupKey, Group] = {}
        self._topics: dict[tuple[str, str], set[Group]] = {}
        self._wildcard: dict[str, set[Group]] = {}
        self._all: set[Subscriber] = set()
        self.published = 0
        self.delivered = 0
        self.cuts = 0
        self.conflating: set[Group] = set()  # conflated groups holding frames
        self.conflation_wakeup = trio.Event()  # set when a group starts holding (conflation.py waits)

    def subscribe(
        self,
        streams: Iterable[str],
        sports: frozenset[str] | None,
        flt: Filter,
        *,
        transport: str = "sse",
    ) -> Subscriber:
        sub = Subscriber(self._join((tuple(streams), sports, flt)), self.buffer, transport)
        sub.group.subs.add(sub)
        self._all.add(sub)
        return sub

    def set_filter(self, sub: Subscriber, flt: Filter) -> None:
        """A live filter change (WS `subscribe`): from the next publish on."""
        if sub not in self._all or flt == sub.group.filter:
            return
        old = sub.group
        if old.conflator:  # what it holds for this subscriber goes out now, not lost with the move
            slow: list[Subscriber] = []
            self._deliver_one(sub, old.conflator.peek(), slow)
            for s in slow:
                self._cut_slow(s)
            if sub not in self._all:
                return
        sub.group = self._join((old.streams, old.sports, flt))
        sub.group.subs.add(sub)
        self._leave(old, sub)

    def _join(self, key: GroupKey) -> Group:
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = Group(key)
            for stream in group.streams:
                if group.sports is None:
                    self._wildcard.setdefault(stream, set()).add(group)
                else:
                    for sport in group.sports:
                        self._topics.setdefault((stream, sport), set()).add(group)
        return group

    def _leave(self, group: Group, sub: Subscriber) -> None:
        group.subs.discard(sub)
        if group.subs:
            return
        del self._groups[group.key]
        self.conflating.discard(group)
        for stream in group.streams:
            if group.sports is None:
                self._wildcard.get(stream, set()).discard(group)
            else:
                for sport in group.sports:
                    groups = self._topics.get((stream, sport))
                    if groups is not None:
                        groups.discard(group)
                        if not groups:
                            del self._topics[(stream, sport)]

    def unsubscribe(self, sub: Subscriber) -> None:
        """Idempotent; safe to call from `finally` blocks."""
        if sub not in self._all:
            return
        self._all.discard(sub)
        self._leave(sub.group, sub)
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
        published = 0
        batches: dict[Group, list[Frame]] = {}
        for frame in frames:
            published += 1
            stream = frame.stream
            assert stream is not None and frame.sport_key is not None
            for groups in (topics.get((stream, frame.sport_key)), wildcard.get(stream)):
                if groups:
                    for group in groups:
                        if group.filter.matches(frame):
                            if group in batches:
                                batches[group].append(frame)
                            else:
                                batches[group] = [frame]
        slow: list[Subscriber] = []
        for group, batch in batches.items():
            fmt = group.filter.odds_format
            if fmt != "american":
                batch = [f.as_format(fmt) for f in batch]
            if group.conflator is not None:
                self._hold(group, batch)
            else:
                self._deliver(group, batch, slow)
        for sub in slow:  # cut after the loops: cutting mutates the groups
            self._cut_slow(sub)
        self.published += published

    def _deliver(self, group: Group, batch: list[Frame], slow: list[Subscriber]) -> None:
        encoded: dict[Any, bytes] = {}
        for sub in group.subs:  # the loop of a fan-out: what is per subscriber is inlined
            deliver = sub.deliver
            if deliver is None:
                self._deliver_one(sub, batch, slow, encoded)
            elif not deliver(batch, encoded):
                slow.append(sub)
        self.delivered += len(batch) * len(group.subs)

    @staticmethod
    def _deliver_one(sub: Subscriber, batch: list[Frame], slow: list[Subscriber],
                     encoded: dict[Any, bytes] | None = None) -> None:
        if sub.deliver is not None:
            if not sub.deliver(batch, {} if encoded is None else encoded):
                slow.append(sub)
            return
        try:
            for frame in batch:
                sub.send.send_nowait(frame)
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            slow.append(sub)
        if sub.wakeup is not None:  # its task waits on the client, not the channel
            sub.wakeup()

    # -- conflation (issue 15.4) -----------------------------------------------------------
    def _hold(self, group: Group, batch: list[Frame]) -> None:
        assert group.conflator is not None
        group.conflator.add(batch)
        if group not in self.conflating:
            self.conflating.add(group)
            self.conflation_wakeup.set()  # a new due time: the flusher looks again
        elif len(group.conflator) > CONFLATE_MAX_HELD:
            group.next_flush = 0.0
            self.conflation_wakeup.set()

    def conflation_due(self) -> float | None:
        """When the next held group is due (trio time), None if none holds anything."""
        return min((g.next_flush for g in self.conflating), default=None)

    def flush_conflated(self, now: float) -> int:
        """Hand out the frames of every held group that is due (at most once per window each);
        returns the number of groups flushed."""
        due = [g for g in self.conflating if g.next_flush <= now]
        slow: list[Subscriber] = []
        for group in due:
            self.conflating.discard(group)
            assert group.conflator is not None
            group.next_flush = now + group.filter.conflate_ms / 1000
            self._deliver(group, group.conflator.take(), slow)
        for sub in slow:
            self._cut_slow(sub)
        return len(due)

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
            groups=len(self._groups),
        )
