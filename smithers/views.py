"""The views of ended runs, kept so `GET /v1/runs/{id}` does not rebuild them.

An ended run's view changes only when the run changes: a rewind, retry or resume reopens it
(its status leaves the ended ones) and every event it logs bumps its `last_seq`, in this
process or any other on the same database. So a view is kept with its run's marker,
`(status, last_seq, finished_at_ms)`, and served again only while one narrow indexed read of
that marker finds it unchanged: no time-to-live, no feed to miss, nothing stale across
processes. `runState.computedAt` is the time of that read (the state was checked now).

Each view is kept encoded too, cut where `computedAt`'s value goes, so serving it again as
JSON is joining three byte strings.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, NamedTuple

from .clock import now_ms
from .encoding import dumps
from .store.base import Store
from .store.records import RunRecord

__all__ = ["ViewCache", "marker_of"]

Marker = tuple[str, int, int | None]


def marker_of(run: RunRecord) -> Marker:
    return (run.status, run.last_seq, run.finished_at_ms)


def _cut_at_clock(view: dict[str, Any]) -> tuple[bytes, bytes] | None:
    """The encoded view before and after `runState.computedAt`'s value. An ended run's
    runState is `{"state", "computedAt"}`; the first `"runState":{...` in the bytes is the
    view's own (the keys before it are ours, their string values escape every quote)."""
    state = view["runState"]
    if list(state) != ["state", "computedAt"]:
        return None
    unclocked = {"state": state["state"], "computedAt": 0}
    encoded = dumps({**view, "runState": unclocked})
    head = b'"runState":' + dumps(unclocked)[:-2]
    at = encoded.find(head)
    if at < 0:
        return None
    at += len(head)
    return encoded[:at], encoded[at + 1 :]


class _Kept(NamedTuple):
    marker: Marker
    view: dict[str, Any]
    cut: tuple[bytes, bytes] | None


class ViewCache:
    """At most `size` views of ended runs, least recently served dropped first; safe to share
    between the threads a PostgreSQL store reads in."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._views: OrderedDict[tuple[Store, str], _Kept] = OrderedDict()
        self._lock = threading.Lock()

    def _current(self, store: Store, run_id: str, marker: Marker) -> _Kept | None:
        key = (store, run_id)
        with self._lock:
            kept = self._views.get(key)
            if kept is None or kept.marker != marker:
                return None
            self._views.move_to_end(key)
        return kept

    def get(self, store: Store, run_id: str, marker: Marker) -> dict[str, Any] | None:
        """The kept view while `marker` is the one it was built at, `computedAt` now."""
        kept = self._current(store, run_id, marker)
        if kept is None:
            return None
        view = kept.view
        return {**view, "runState": {**view["runState"], "computedAt": now_ms()}}

    def get_json(self, store: Store, run_id: str, marker: Marker) -> bytes | None:
        """`get`, encoded."""
        kept = self._current(store, run_id, marker)
        if kept is None or kept.cut is None:
            return None
        head, tail = kept.cut
        return b"%b%d%b" % (head, now_ms(), tail)

    def put(self, store: Store, run_id: str, run: RunRecord, view: dict[str, Any]) -> None:
        """Keep `view`, built from `run`, when the run has ended (a live one changes by
        itself: a heartbeat goes stale with no write)."""
        if not run.is_terminal:
            return
        key = (store, run_id)
        kept = _Kept(marker_of(run), view, _cut_at_clock(view))
        with self._lock:
            self._views[key] = kept
            self._views.move_to_end(key)
            while len(self._views) > self.size:
                self._views.popitem(last=False)
