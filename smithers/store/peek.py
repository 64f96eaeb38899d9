"""One-row reads of a run's marker off the pool: the per-request check of a kept view.

A SQLite store read inline on the loop pays more for SQLAlchemy's pool checkout, BEGIN and
COMMIT than for the indexed SELECT itself; here each thread keeps one plain connection to
the file in autocommit mode (each SELECT its own snapshot, none held between reads).
PostgreSQL and in-memory SQLite go through `Store.read`.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref

from . import runs as runs_q
from .base import Store

__all__ = ["run_marker"]

Marker = tuple[str, int, int | None]

_SQL = "SELECT status, last_seq, finished_at_ms FROM _smithers_runs WHERE run_id = ?"
# Per store: its file (None: read through the pool) and each thread's connection to it.
_readers: weakref.WeakKeyDictionary[Store, tuple[str | None, threading.local]] = (
    weakref.WeakKeyDictionary()
)
_guard = threading.Lock()


def run_marker(store: Store, run_id: str) -> Marker | None:
    """`(status, last_seq, finished_at_ms)` of the run, or None when there is no such run."""
    reader = _readers.get(store) or _reader_of(store)
    path, local = reader
    if path is None:
        with store.read() as conn:
            return runs_q.run_marker(conn, run_id)
    plain: sqlite3.Connection | None = getattr(local, "conn", None)
    if plain is None:
        plain = local.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        plain.execute("PRAGMA busy_timeout=15000")
    row = plain.execute(_SQL, (run_id,)).fetchone()
    return None if row is None else (row[0], int(row[1]), row[2])


def _reader_of(store: Store) -> tuple[str | None, threading.local]:
    with _guard:
        reader = _readers.get(store)
        if reader is None:
            reader = _readers[store] = (_file_of(store), threading.local())
        return reader


def _file_of(store: Store) -> str | None:
    url = store.engine.url
    if store.dialect != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    if url.query.get("mode") == "memory" or url.database.startswith("file:"):
        return None
    return url.database
