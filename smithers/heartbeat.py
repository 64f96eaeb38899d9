"""The heartbeat of a runtime's runs, on a thread of its own.

Other processes judge a run's owner alive by `heartbeat_at_ms`, so nothing that can be
slow may sit in front of it: not the event loop (a blocking call there), not the worker
thread pool (busy with tasks), not the loader (a slow import). A plain thread with its
own connection from the pool writes the heartbeat of every run the runtime drives.
"""

from __future__ import annotations

import logging
import threading

from .store import runs as runs_q
from .store.base import Store

logger = logging.getLogger("smithers.heartbeat")


class Heartbeat:
    """`start()`, then `beat_for(run_ids)` whenever the set changes, then `stop()`."""

    def __init__(self, store: Store, owner_id: str, interval_s: float) -> None:
        self.store = store
        self.owner_id = owner_id
        self.interval_s = interval_s
        self._run_ids: frozenset[str] = frozenset()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="smithers-heartbeat", daemon=True)

    def beat_for(self, run_ids: frozenset[str]) -> None:
        self._run_ids = run_ids  # one reference swap: the thread reads a consistent set

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _beat(self, run_ids: list[str]) -> None:
        with self.store.write() as tx:
            runs_q.heartbeat(tx.conn, self.owner_id, run_ids, tx.now)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            run_ids = self._run_ids
            if not run_ids:
                continue
            try:
                self.store.call(self._beat, sorted(run_ids))
            except Exception:
                logger.exception("heartbeat failed; retrying in %.1f s", self.interval_s)
