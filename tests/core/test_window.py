"""The event window: the last N events this process committed, each once, replayed by a
subscriber before it reads the rest from the database, with no gap and no duplicate."""

from __future__ import annotations

import anyio
import pytest

from smithers import Event, Runtime, Store, subscribe
from smithers.window import EventWindow

from .test_subscriptions import stored, ticking

pytestmark = pytest.mark.anyio


def event(run_id: str, seq: int) -> Event:
    return Event(run_id, seq, 0, "NodeOutput", {"type": "NodeOutput", "runId": run_id})


def test_the_window_keeps_the_last_events_once_each() -> None:
    window = EventWindow(4)
    assert window.add("db", event("a", 0)) and window.add("db", event("b", 0))
    assert not window.add("db", event("a", 0))  # seen already
    for seq in (2, 1, 3):  # out of order, as PostgreSQL commits may publish
        window.add("db", event("a", seq))
    assert len(window) == 4  # the oldest went: a's seq 0
    assert window.after("db", "a", -1) == []  # the database has seq 0
    assert [e.seq for e in window.after("db", "a", 0)] == [1, 2, 3]
    assert [e.seq for e in window.after("db", "a", 2)] == [3]
    assert window.after("db", "a", 3) == [] and window.after("other-db", "a", 0) == []
    assert [e.seq for e in window.after("db", "b", -1)] == [0]
    window.add("db", event("a", 5))  # 4 not seen: a replay stops before the gap
    assert window.after("db", "b", -1) == []  # the oldest went: b's
    assert [e.seq for e in window.after("db", "a", 1)] == [2, 3]


async def test_a_subscriber_replays_the_window_then_reads_the_rest(store: Store) -> None:
    async with Runtime(store) as rt:
        run_id = await rt.start(ticking(20))
        await rt.wait(run_id)
    events = stored(store, run_id)
    window = EventWindow(len(events))
    for e in events[3:10]:  # the window holds a middle stretch only
        window.add(store, e)
    for after in (-1, 2, 5, 9, 12):
        seen: list[Event] = []
        with anyio.fail_after(20):
            recent = lambda seq: window.after(store, run_id, seq)  # noqa: E731
            async for e in subscribe(store, run_id, after, recent=recent):
                seen.append(e)
        assert [e.seq for e in seen] == [e.seq for e in events[after + 1 :]]
        from_window = [e.seq for e in seen if any(e is w for w in events[3:10])]
        assert from_window == ([] if not 2 <= after < 9 else list(range(after + 1, 10)))
