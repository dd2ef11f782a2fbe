"""PlaySelector: duplicates across sources, backups held while the primary is fresh, failover."""

from __future__ import annotations

import pytest

from gateway.core.model import Play
from gateway.core.sources import (
    DUPLICATE,
    HELD,
    OTHER_SECONDARY,
    PROMOTED,
    RESTORED,
    Decision,
    PlaySelector,
    StatusChange,
    normalize_clock,
    status_payload,
)

S = 1000  # ms
PRIMARY, BACKUP, OTHER = "nba_live", "backup", "other"


def play(source: str, clock: str, *, role: str | None = None, event: str = "made_2", score: tuple[int, int] = (2, 0),
         period: int = 1, desc: str = "", at: int = 0, match: str = "g1") -> Play:
    return Play(match_id=match, sport_key="basketball_nba", source=source,
                role=role or ("primary" if source == PRIMARY else "secondary"), event_type=event,
                team_or_player_a="Lakers", team_or_player_b="Thunder", score_a=str(score[0]), score_b=str(score[1]),
                description=desc or f"{source} {event} {clock}", period=period, clock=clock,
                occurred_at_ms=1_000_000 + at, captured_at_ms=1_000_000 + at)


def game(n: int, source: str, start: int = 0) -> list[Play]:
    """n distinct plays (one per 10 s of game clock)."""
    return [play(source, f"PT{11 - i // 6}:{50 - (i % 6) * 10:02d}.00", score=(2 * i, i), at=start + i * S)
            for i in range(n)]


@pytest.mark.parametrize(("raw", "norm"), [
    ("PT02:14.00", "2:14"), ("PT2:14", "2:14"), ("02:14", "2:14"), ("2:14", "2:14"), ("PT2M14.00S", "2:14"),
    ("PT00:05.30", "0:05.3"), ("PT0:05.3", "0:05.3"), ("PT12:00.00", "12:00"), (None, ""), ("Q3 4:32", "Q3 4:32"),
])
def test_clock_forms_compare_equal(raw: str | None, norm: str) -> None:
    assert normalize_clock(raw) == norm


def test_a_single_primary_is_published_once() -> None:
    sel = PlaySelector()
    plays = game(5, PRIMARY)
    assert [sel.decide(p, i * S).emit for i, p in enumerate(plays)] == [(p,) for p in plays]
    # within one source a repeated key is another play (sub out / sub in; a looped replay)
    assert sel.decide(plays[2], 9 * S).emit == (plays[2],)


def test_backup_copies_are_never_published_while_the_primary_is_fresh() -> None:
    sel = PlaySelector(stale_after_ms=60 * S)
    out = []
    for i, (p, b) in enumerate(zip(game(12, PRIMARY), game(12, BACKUP), strict=True)):
        first, second = (p, b) if i % 2 else (b, p)  # either source may be faster
        out += [sel.decide(first, i * 5 * S), sel.decide(second, i * 5 * S + 300)]
    published = [p for d in out for p in d.emit]
    assert [p.source for p in published] == [PRIMARY] * 12
    assert {d.dropped for d in out} == {None, DUPLICATE, HELD}
    assert all(d.status is None for d in out)


def test_repeated_keys_count_per_source() -> None:
    """Five substitutions at one dead ball are five plays; the backup's five are duplicates."""
    sel = PlaySelector()
    subs = [play(PRIMARY, "PT9:30", event="substitution", desc=f"SUB {i}") for i in range(5)]
    copies = [play(BACKUP, "PT09:30.00", event="substitution", desc=f"sub #{i}") for i in range(5)]
    assert sum(len(sel.decide(p, 0).emit) for p in subs) == 5
    assert [sel.decide(p, S).dropped for p in copies] == [DUPLICATE] * 5
    sixth = play(BACKUP, "PT09:30.00", event="substitution", desc="sub #5")
    assert sel.decide(sixth, S).dropped == HELD  # one the primary did not have


def test_a_stale_primary_is_replaced_without_losing_plays() -> None:
    sel = PlaySelector(stale_after_ms=60 * S)
    both = list(zip(game(3, PRIMARY), game(3, BACKUP), strict=True))
    for i, (p, b) in enumerate(both):
        sel.decide(p, i * S)
        sel.decide(b, i * S + 100)
    # the primary goes silent; the backup keeps reporting every 15 s
    later = game(9, BACKUP, start=100 * S)[3:]
    decisions = [sel.decide(b, (20 + 15 * i) * S) for i, b in enumerate(later)]
    assert [d.dropped for d in decisions[:5]] == [HELD] * 5  # 20..80 s: within the grace period
    promoted = decisions[5]  # 95 s: the first held play has waited 75 s > 60 s
    assert promoted.status == StatusChange(PROMOTED, "basketball_nba", "g1", BACKUP, PRIMARY, "primary_stale")
    assert [p.description for p in promoted.emit] == [p.description for p in later]  # held ones included, in order
    assert {(p.source, p.role) for p in promoted.emit} == {(BACKUP, "primary")}
    assert sel.serving("basketball_nba", "g1") == BACKUP
    nxt = play(BACKUP, "PT1:00", score=(40, 40), at=200 * S)
    assert sel.decide(nxt, 110 * S).emit[0].role == "primary"  # straight through now
    assert sel.decide(play(OTHER, "PT0:59", score=(40, 42)), 111 * S).dropped == OTHER_SECONDARY

    # the primary comes back, first with the plays it missed: restored, its copies dropped
    catch_up = [play(PRIMARY, p.clock or "", score=(int(p.score_a), int(p.score_b)), at=300 * S + i)
                for i, p in enumerate([*later, nxt])]
    first = sel.decide(catch_up[0], 120 * S)
    assert first.status == StatusChange(RESTORED, "basketball_nba", "g1", PRIMARY, BACKUP, "primary_recovered")
    assert first.emit == () and first.dropped == DUPLICATE
    assert all(sel.decide(p, 121 * S) == Decision(dropped=DUPLICATE) for p in catch_up[1:])
    fresh = play(PRIMARY, "PT0:40", score=(42, 42), at=400 * S)
    assert sel.decide(fresh, 122 * S) == Decision(emit=(fresh,))
    assert sel.decide(play(BACKUP, "PT0:30", score=(44, 42)), 123 * S).dropped == HELD  # a backup again
    assert sel.serving("basketball_nba", "g1") is None


def test_a_pause_in_the_game_does_not_promote_the_faster_source() -> None:
    sel = PlaySelector(stale_after_ms=60 * S)
    sel.decide(play(PRIMARY, "PT0:00", event="period_end", score=(50, 48)), 0)
    # halftime: 15 minutes without plays; the backup reports the restart 2 s sooner
    restart_b = play(BACKUP, "PT12:00", event="period_start", score=(50, 48), period=3)
    restart_p = play(PRIMARY, "PT12:00.00", event="period_start", score=(50, 48), period=3)
    assert sel.decide(restart_b, 900 * S).dropped == HELD
    assert sel.decide(restart_p, 902 * S).emit == (restart_p,)
    assert sel.decide(play(BACKUP, "PT11:40", score=(52, 48), period=3), 925 * S).dropped == HELD
    assert sel.decide(play(PRIMARY, "PT11:40", score=(52, 48), period=3), 926 * S).status is None


def test_a_match_without_primary_is_served_by_its_backup_after_the_grace_period() -> None:
    sel = PlaySelector(stale_after_ms=10 * S)
    plays = game(4, BACKUP)
    assert [sel.decide(p, i * 5 * S).dropped for i, p in enumerate(plays[:3])] == [HELD, HELD, HELD]
    d = sel.decide(plays[3], 15 * S)
    assert d.status is not None and (d.status.previous_source, d.status.reason) == (None, "no_primary")
    assert [p.description for p in d.emit] == [p.description for p in plays]


def test_per_source_stale_after() -> None:
    sel = PlaySelector(stale_after_ms=60 * S)
    sel.set_stale_after(PRIMARY, 2 * S)
    sel.decide(play(PRIMARY, "PT5:00"), 0)
    sel.decide(play(BACKUP, "PT4:50", score=(4, 0)), S)
    d = sel.decide(play(BACKUP, "PT4:40", score=(6, 0)), 4 * S)
    assert d.status is not None and d.status.status == PROMOTED and len(d.emit) == 2


def test_memory_is_bounded() -> None:
    sel = PlaySelector(memory=4, max_matches=2, max_pending=3)
    plays = game(10, PRIMARY)
    for p in plays:
        sel.decide(p, 0)
    copies = game(10, BACKUP)
    assert sel.decide(copies[0], 0).dropped == HELD  # forgotten: only the last keys are kept
    assert sel.decide(copies[-1], 0).dropped == DUPLICATE
    for m in ("g2", "g3"):
        sel.decide(play(BACKUP, "PT1:00", match=m), 0)
    assert len(sel._matches) == 2 and ("basketball_nba", "g1") not in sel._matches
    for i in range(5):
        sel.decide(play(BACKUP, f"PT0:{50 - i:02d}", match="g3", score=(i, 9)), S)
    assert len(sel._matches[("basketball_nba", "g3")].pending) == 3


def test_status_payload() -> None:
    change = StatusChange(PROMOTED, "basketball_nba", "g1", BACKUP, PRIMARY, "primary_stale")
    assert status_payload(change, timestamp_ms=123) == {
        "type": "stream_status", "status": "source_promoted", "sport_key": "basketball_nba", "match_id": "g1",
        "source": BACKUP, "previous_source": PRIMARY, "reason": "primary_stale", "timestamp": 123}
