"""The views of ended runs, kept so `GET /v1/runs/{id}` does not rebuild them.

An ended run's view changes only when the run changes: a rewind, retry or resume reopens it
(its status leaves the ended ones) and every event it logs bumps its `last_seq`, in this
process or any other on the same database. So a view is kept with its run's marker,
`(status, last_seq, finished_at_ms)`, and served again only while one narrow indexed read of
that marker finds it unchanged: no time-to-live, no feed to miss, nothing stale across
processes. `runState.computedAt` is the time of that read (the state was checked now).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from .clock import now_ms
from .store.base import Store
from .store.records import RunRecord

__all__ = ["ViewCache", "marker_of"]

Marker = tuple[str, int, int | None]


def marker_of(run: RunRecord) -> Marker:
    return (run.status, run.last_seq, run.finished_at_ms)


class ViewCache:
    """At most `size` views of ended runs, least recently served dropped first; safe to share
    between the threads a PostgreSQL store reads in."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._views: OrderedDict[tuple[Store, str], tuple[Marker, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, store: Store, run_id: str, marker: Marker) -> dict[str, Any] | None:
        """The kept view while `marker` is the one it was built at, `computedAt` now."""
        key = (store, run_id)
        with self._lock:
            kept = self._views.get(key)
            if kept is None or kept[0] != marker:
                return None
            self._views.move_to_end(key)
        view = kept[1]
        return {**view, "runState": {**view["runState"], "computedAt": now_ms()}}

    def put(self, store: Store, run_id: str, run: RunRecord, view: dict[str, Any]) -> None:
        """Keep `view`, built from `run`, when the run has ended (a live one changes by
        itself: a heartbeat goes stale with no write)."""
        if not run.is_terminal:
            return
        key = (store, run_id)
        with self._lock:
            self._views[key] = (marker_of(run), view)
            self._views.move_to_end(key)
            while len(self._views) > self.size:
                self._views.popitem(last=False)
