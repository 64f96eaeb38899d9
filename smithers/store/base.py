"""Store: the database behind every run. Connections, transactions and the event log.

Queries live in the sibling modules as plain functions over a connection; this module
owns how connections are made and how a write transaction appends events and publishes
them once committed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread
import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Connection, Engine

from ..clock import now_ms
from ..events import Event, EventBus, make_payload, payload_text
from . import outputs, postgres, statements
from .engines import create_db_engine, sqlite_write_lock
from .migrations import MIGRATIONS, Migration, migrate, schema_version
from .schema import runs

T = TypeVar("T")
logger = logging.getLogger("smithers.store")


class Tx:
    """One write transaction. `emit` appends an event with the run's next seq."""

    def __init__(self, conn: Connection, watched: postgres.Watched | None = None) -> None:
        self.conn = conn
        self.postgres = conn.dialect.name == "postgresql"
        self.watched = watched
        self.now = now_ms()
        self.events: list[Event] = []
        self.touched: set[str] = set()
        self.rows: list[dict[str, Any]] = []  # the events as inserted
        self._pending: list[tuple[str, dict[str, Any]]] = []

    def touch(self, run_id: str) -> None:
        """Mark an outside command on the run, so its owner re-reads its state."""
        self.conn.execute(
            sa.update(runs)
            .where(runs.c.run_id == run_id)
            .values(command_seq=runs.c.command_seq + 1)
        )
        if self.postgres and run_id not in self.touched:
            postgres.notify_command(self.conn, run_id)
        self.touched.add(run_id)

    def emit(self, run_id: str, type_: str, **fields: Any) -> None:
        """Append an event; seqs are allocated when the transaction is about to commit."""
        self._pending.append((run_id, make_payload(run_id, type_, self.now, fields)))

    def flush(self) -> None:
        """Allocate seqs (one bump of `last_seq` per run) and insert the pending events.

        Bumping `last_seq` locks the run's row until commit, so transactions that append
        to one run commit in seq order and a reader never sees a gap that later fills.
        """
        by_run: dict[str, list[dict[str, Any]]] = {}
        for run_id, payload in self._pending:
            by_run.setdefault(run_id, []).append(payload)
        self._pending.clear()
        rows = []
        for run_id, payloads in by_run.items():
            texts = [payload_text(payload) for payload in payloads]
            if self.postgres:  # seqs and rows in one statement, announced if watched
                announce = self.watched is not None and run_id in self.watched
                types = [payload["type"] for payload in payloads]
                last = postgres.append_events(
                    self.conn, run_id, types, texts, self.now, announce=announce
                )
            else:
                last = self._bump_seq(run_id, len(payloads))
            first = last - len(payloads) + 1
            for offset, (payload, text) in enumerate(zip(payloads, texts, strict=True)):
                seq = first + offset
                rows.append(
                    {
                        "run_id": run_id,
                        "seq": seq,
                        "timestamp_ms": self.now,
                        "type": payload["type"],
                        "payload_json": text,
                    }
                )
                self.events.append(Event(run_id, seq, self.now, payload["type"], payload, text))
        if not self.postgres:
            statements.insert_many(self.conn, "_smithers_events", rows)
        self.rows.extend(rows)

    def _bump_seq(self, run_id: str, n: int) -> int:
        cursor = statements.execute(
            self.conn,
            "UPDATE _smithers_runs SET last_seq = last_seq + :n WHERE run_id = :rid "
            "RETURNING last_seq",
            {"rid": run_id, "n": n},
        )
        last = int(cursor.fetchone()[0])
        cursor.close()
        return last


class Store:
    """A database (SQLite file or PostgreSQL) holding runs, their state and event logs."""

    def __init__(
        self, engine: Engine, *, bus: EventBus | None = None, inline: bool | None = None
    ) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.inline = self.dialect == "sqlite" if inline is None else inline
        self.bus = bus or EventBus()
        self.output_tables: dict[str, sa.Table] = {}
        self.output_models: dict[str, type[BaseModel]] = {}
        self.output_metadata = sa.MetaData()
        self._ddl_lock = threading.Lock()
        # On PostgreSQL: the runs other processes watch, heard once this store writes.
        self.watched: postgres.Watched | None = None
        self._watching: object | None = None
        self._watch_lock = threading.Lock()
        # At most this many calls at once, so the pool keeps that many connections open
        # rather than opening and closing one per call past its size.
        self._threads = anyio.CapacityLimiter(postgres.STORE_THREADS)
        self._write_lock: threading.Lock | contextlib.nullcontext[None] = (
            sqlite_write_lock(engine) if self.dialect == "sqlite" else contextlib.nullcontext()
        )
        # SQLite's writes queue on `_write_lock` anyway: they share one connection, kept
        # open between them (no pool checkout and new Connection per transaction).
        self._writer: Connection | None = None

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call `fn` (store work) inline on SQLite, in a worker thread on PostgreSQL.

        A SQLite call takes well under a millisecond and this process's writers already
        queue on one lock, so a thread hop would cost more than it saves; a PostgreSQL
        call waits on the network and must not hold the event loop. On PostgreSQL, work
        whose connection the server dropped is tried again (`postgres.retrying`).
        """
        if self.inline:
            return self.call(fn, *args, **kwargs)
        return await anyio.to_thread.run_sync(
            partial(self.call, fn, *args, **kwargs), limiter=self._threads
        )

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call `fn` (store work of whole transactions) here and now; on PostgreSQL, again
        when the server dropped its connection under it (`postgres.retrying`)."""
        if self.dialect == "postgresql":
            return postgres.retrying(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    def listen(self, fn: postgres.NoticeFn) -> object | None:
        """On PostgreSQL, call `fn` (in the listening thread) with what others (other
        processes, other engines) commit: appended events and commands (`postgres.Notice`).
        `None` on SQLite, where only polls see other processes. Pair with `unlisten`."""
        if self.dialect != "postgresql":
            return None
        return postgres.listener(self.engine).add(postgres.from_elsewhere(self.engine, fn))

    def unlisten(self, token: object | None) -> None:
        if token is not None:
            postgres.listener(self.engine).remove(token)

    def _start_watching(self) -> None:
        with self._watch_lock:
            if self.watched is None:
                watched = postgres.Watched()
                watched.all_for_a_while()
                self._watching = self.listen(partial(self._on_watch, watched))
                self.watched = watched

    def _on_watch(self, watched: postgres.Watched, notice: postgres.Notice) -> None:
        """In the listening thread: note who watches what; once listening, ask them all."""
        watched.heard(notice)
        if notice.kind == "reconnected":
            watched.all_for_a_while()  # until the watchers have answered
            try:
                self.call(self.announce_watch, postgres.ASK)
            except Exception:
                logger.warning("asking for watchers failed", exc_info=True)

    def announce_watch(self, run_id: str) -> None:
        """On PostgreSQL, have the run's events announced to this process for a while."""
        if self.dialect == "postgresql":
            with self.read() as conn:
                postgres.announce_watch(conn, run_id)

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=False)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def ensure_tables(self, migrations: Sequence[Migration] = MIGRATIONS) -> None:
        """Bring the database to the latest schema version (see `migrations`).

        A database already there costs one read. Otherwise the migrations run in one write
        transaction (SQLite's write lock, PostgreSQL's advisory lock): when several
        processes open a new or older database at once, one migrates and the others wait,
        then find it migrated. A newer database is refused (`SCHEMA_TOO_NEW`).
        """
        if self.dialect != "sqlite":
            # SQLite opens through the write lock below: the first connections to a new
            # file switch it to WAL, which they must not do at once ("database is locked").
            with self.read() as conn:
                if schema_version(conn) == len(migrations):
                    return
        with self._ddl_lock, self.write() as tx:
            self._lock_ddl(tx.conn)
            migrate(tx.conn, migrations)

    def ensure_output_tables(self, models: dict[str, type[BaseModel]]) -> None:
        """Create (or widen) the output table of each model, once per process and model.

        Concurrent first runs must not race to CREATE TABLE: threads of this process queue
        on a lock, other processes on PostgreSQL on a transaction-scoped advisory lock
        (SQLite's write transaction already excludes them).
        """
        if all(self.output_models.get(k) is m for k, m in models.items()):
            return
        with self._ddl_lock, self.write() as tx:
            self._lock_ddl(tx.conn)
            for key, model in models.items():
                if self.output_models.get(key) is model:
                    continue
                self.output_tables[key] = outputs.ensure_output_table(
                    tx.conn, self.output_metadata, key, model
                )
                self.output_models[key] = model

    def _lock_ddl(self, conn: Connection) -> None:
        """Keep other processes' DDL out until this transaction ends (SQLite's write
        transaction already does)."""
        if self.dialect == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7370501)")

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """A write transaction; its events are published after commit."""
        # SQLite has one writer at a time; queueing our own threads on a lock is far
        # cheaper than letting them meet in SQLite's sleeping busy handler.
        if self.watched is None and self.dialect == "postgresql":
            self._start_watching()
        committing = False
        with self._write_lock:
            conn = self._writer
            if conn is None:
                conn = self.engine.connect().execution_options(smithers_write=True)
            try:
                with conn.begin():
                    tx = Tx(conn, self.watched)
                    yield tx
                    tx.flush()
                    committing = True
            except Exception as exc:
                self._drop_writer(conn)
                # The server went away at COMMIT: whether it committed, the events say.
                lost = committing and tx.postgres and postgres.is_disconnect(exc)
                if not lost or not self.call(postgres.committed, self, tx.rows[:1]):
                    raise
            except BaseException:
                self._drop_writer(conn)
                raise
            if self.dialect == "sqlite":
                self._writer = conn
            else:
                conn.close()
        self.bus.publish(tx.events)
        if tx.touched:
            self.bus.notify_touched(sorted(tx.touched))

    def _drop_writer(self, conn: Connection) -> None:
        """A write that failed may leave its connection in any state: the next opens anew."""
        self._writer = None
        conn.close()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def close(self) -> None:
        self.unlisten(self._watching)
        self._watching = None
        with self._write_lock:
            if self._writer is not None:
                self._drop_writer(self._writer)
        self.engine.dispose()


def open_store(db: str | Engine | Store, *, bus: EventBus | None = None) -> Store:
    """Open a store from a URL, a path or an Engine, migrating its schema (see
    `Store.ensure_tables`)."""
    if isinstance(db, Store):
        return db
    engine = db if isinstance(db, Engine) else create_db_engine(db)
    store = Store(engine, bus=bus)
    try:
        store.ensure_tables()
    except BaseException:
        store.close()
        raise
    return store
