"""What every feed talks to: a Sink that accepts batches of quotes and plays.

A feed never touches the store or the hub: it hands parsed records to the sink (the
writer's ingest channel), which persists them, detects drops and publishes frames.
"""

from __future__ import annotations

from typing import Protocol

from ..core.model import Play, Quote


class Sink(Protocol):
    async def submit_quotes(self, quotes: list[Quote], *, source: str) -> None:
        """Queue quotes for the writer; waits only if the ingest channel is full."""

    async def submit_plays(self, plays: list[Play]) -> None:
        """Queue plays for the writer."""
