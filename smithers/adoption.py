"""Which runs a process should adopt: nobody drives them, or their timer came due."""

from __future__ import annotations

from functools import partial

from . import lifecycle
from .ownership import owner_is_dead
from .store import nodes as nodes_q
from .store import runs as runs_q
from .store.base import Store
from .store.records import RunRecord


def adoptable(
    store: Store, owner_id: str, now: int, *, timers: bool
) -> list[tuple[RunRecord, bool]]:
    """Runs to adopt (unowned, stale, orphaned), and with `timers` parked runs whose timer
    is due (`True` beside them)."""
    with store.read() as conn:
        ids = [
            run_id
            for run_id, owner in runs_q.running_runs_owned_by_others(conn, owner_id)
            if owner_is_dead(owner)
        ]
        read = partial(runs_q.get_run, conn)
        claimable = runs_q.claimable_runs(conn, stale_before=lifecycle.stale_before(now))
        orphaned = [run for run in map(read, ids) if run is not None]
        due_ids = nodes_q.waiting_timer_due(conn, now) if timers else []
        due = [run for run in map(read, due_ids) if run]
    return [(run, False) for run in (*claimable, *orphaned)] + [(run, True) for run in due]
