"""subscribe(run_id, after_seq): stored events, then live ones, in order, once each."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from typing import Any, overload

from .events import Event
from .followers import PAGE, POLL_INTERVAL_S, Follower, follow, unfollow
from .store import log as log_q
from .store import runs as runs_q
from .store.base import Store
from .store.records import TERMINAL_STATUSES

Recent = Callable[[int], list[Event]]


def _read(store: Store, run_id: str, after_seq: int) -> tuple[list[Event], bool, int]:
    """Events after `after_seq`; whether the log ended there for good (a terminal run
    whose last event has been read: terminal events are always a run's last); and a seq
    up to which every event was committed before the events were read."""
    with store.read() as conn:
        marker = runs_q.run_marker(conn, run_id)  # (status, last_seq, _): none of its JSON
        fresh = marker is not None and marker[1] > after_seq
        events = log_q.events_after(conn, run_id, after_seq, PAGE) if fresh else []
        last = events[-1].seq if events else after_seq
        if events and events[-1].is_terminal and not _ended(marker, last):
            # On PostgreSQL each statement reads at its own snapshot: the run may have ended
            # after its row was read. Nothing would follow the terminal event to say so.
            marker = runs_q.run_marker(conn, run_id)
    if marker is None:
        return events, False, -1
    return events, _ended(marker, last), marker[1]


def _ended(marker: tuple[str, int, int | None] | None, last: int) -> bool:
    return marker is not None and marker[0] in TERMINAL_STATUSES and marker[1] <= last


@overload
def subscribe(
    store: Store,
    run_id: str,
    after_seq: int = -1,
    *,
    until_terminal: bool = True,
    poll_interval: float = POLL_INTERVAL_S,
    is_local: Callable[[], bool] | None = None,
    max_buffer: int = 1024,
    idle: None = None,
    recent: Recent | None = None,
) -> AsyncIterator[Event]: ...


@overload
def subscribe(
    store: Store,
    run_id: str,
    after_seq: int = -1,
    *,
    until_terminal: bool = True,
    poll_interval: float = POLL_INTERVAL_S,
    is_local: Callable[[], bool] | None = None,
    max_buffer: int = 1024,
    idle: float,
    recent: Recent | None = None,
) -> AsyncIterator[Event | None]: ...


def subscribe(
    store: Store, run_id: str, after_seq: int = -1, **options: Any
) -> AsyncIterator[Event | None]:
    """Yield the run's events with `seq > after_seq`, then live ones as they commit.

    Registers for live events before reading the table, so nothing committed in between
    is missed; live events already read are skipped by seq. A subscriber whose buffer
    overflowed is `behind` and reads the table again. With `until_terminal` it stops
    after a terminal event once the run is terminal and nothing follows it.
    Events of other processes come from the run's follower (one per run in this process,
    polling every `poll_interval` as set by its first subscriber), not from a poll of
    each subscriber; `is_local()` says this process drives the run, so pushes suffice.
    With `idle`, a `None` is yielded after that many seconds without an event (so a
    stream can send keep-alives without a second task).
    `recent(after_seq)` gives the run's events held in memory (an `EventWindow`): they are
    replayed first, and the table is read only for what follows them.
    """
    return flatten(subscribe_batches(store, run_id, after_seq, **options))


async def flatten(
    batches: AsyncGenerator[list[Event] | None, None],
) -> AsyncIterator[Event | None]:
    """One event (or None) at a time from batches of them; closes `batches` when closed."""
    async with aclosing(batches):
        async for batch in batches:
            if batch is None:
                yield None
                continue
            for event in batch:
                yield event


async def subscribe_batches(
    store: Store,
    run_id: str,
    after_seq: int = -1,
    *,
    until_terminal: bool = True,
    poll_interval: float = POLL_INTERVAL_S,
    is_local: Callable[[], bool] | None = None,
    max_buffer: int = 1024,
    idle: float | None = None,
    recent: Recent | None = None,
) -> AsyncGenerator[list[Event] | None, None]:
    """`subscribe`, with the events at hand together: a list whenever it would wait for
    more (and after each page read from the table), so a stream writes them at once."""
    sub = store.bus.subscribe(run_id, max_buffer)
    follower: Follower | None = None
    last = after_seq
    quiet_since = time.monotonic()
    batch: list[Event] = []
    try:
        need_read = True
        while True:
            if need_read or sub.behind:
                sub.behind = False
                sub.buffer.clear()
                for event in recent(last) if recent is not None else ():
                    last = event.seq
                    quiet_since = time.monotonic()
                    batch.append(event)
                while True:
                    events, ended, committed = await store.run(_read, store, run_id, last)
                    if events:
                        last = events[-1].seq
                        quiet_since = time.monotonic()
                        batch.extend(events)
                    if len(events) < PAGE:
                        break
                    yield batch
                    batch = []
                need_read = False
                if until_terminal and ended:
                    if batch:
                        yield batch
                    return
                if follower is None:
                    # The last read saw every event up to `committed`: the follower looks after it.
                    follower = follow(
                        store, run_id, committed, poll_interval=poll_interval, is_local=is_local
                    )
            while sub.buffer:
                event = sub.buffer.popleft()
                if event.seq <= last:
                    continue
                if event.seq != last + 1:
                    need_read = True  # a gap: fill it from the table
                    break
                last = event.seq
                quiet_since = time.monotonic()
                batch.append(event)
                if until_terminal and event.is_terminal:
                    need_read = True  # confirm nothing follows before closing
                    break
            if need_read or sub.behind:
                continue
            if batch:
                yield batch
                batch = []
                continue  # more may have come meanwhile
            timeout = None if idle is None else max(0.0, quiet_since + idle - time.monotonic())
            await sub.wait(timeout)
            quiet = not sub.buffer and not sub.behind
            if quiet and idle is not None and time.monotonic() - quiet_since >= idle:
                quiet_since = time.monotonic()
                yield None
    finally:
        store.bus.unsubscribe(sub)
        if follower is not None:
            unfollow(follower, is_local)
