"""The event window: the most recent events this process committed, kept in memory so a
stream that resumes a little behind replays from here instead of the database."""

from __future__ import annotations

from collections import deque

from .events import Event


class EventWindow:
    """The last `size` events by seq, per run and store (`key`). An event is added once:
    `add` says whether it was new. Events may arrive out of seq order (PostgreSQL commits
    publish from worker threads); `after` returns only an unbroken run of seqs."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._runs: dict[tuple[object, str], dict[int, Event]] = {}
        self._order: deque[tuple[tuple[object, str], int]] = deque()

    def __len__(self) -> int:
        return len(self._order)

    def add(self, key: object, event: Event) -> bool:
        run = self._runs.setdefault((key, event.run_id), {})
        if event.seq in run:
            return False
        run[event.seq] = event
        self._order.append(((key, event.run_id), event.seq))
        while len(self._order) > self.size:
            old_run, old_seq = self._order.popleft()
            events = self._runs[old_run]
            del events[old_seq]
            if not events:
                del self._runs[old_run]
        return True

    def after(self, key: object, run_id: str, after_seq: int) -> list[Event]:
        """The run's events `after_seq + 1, after_seq + 2, ...` while the window holds each
        one; empty when it does not hold the next one."""
        run = self._runs.get((key, run_id))
        found: list[Event] = []
        if run is None:
            return found
        seq = after_seq + 1
        while seq in run:
            found.append(run[seq])
            seq += 1
        return found
