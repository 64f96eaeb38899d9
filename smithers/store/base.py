"""Store: the database behind every run. Connections, transactions and the event log.

Queries live in the sibling modules as plain functions over a connection; this module
owns how connections are made and how a write transaction appends events and publishes
them once committed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection, Engine

from ..clock import now_ms
from ..errors import SmithersError
from ..events import Event, EventBus, make_payload
from . import schema
from .schema import events, runs


class Tx:
    """One write transaction. `emit` appends an event with the run's next seq."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.now = now_ms()
        self.events: list[Event] = []
        self.touched: set[str] = set()

    def touch(self, run_id: str) -> None:
        """Mark an outside command on the run, so its owner re-reads its state."""
        self.conn.execute(
            sa.update(runs)
            .where(runs.c.run_id == run_id)
            .values(command_seq=runs.c.command_seq + 1)
        )
        self.touched.add(run_id)

    def emit(self, run_id: str, type_: str, **fields: Any) -> Event:
        seq = self.conn.execute(
            sa.update(runs)
            .where(runs.c.run_id == run_id)
            .values(last_seq=runs.c.last_seq + 1)
            .returning(runs.c.last_seq)
        ).scalar_one()
        payload = make_payload(run_id, type_, self.now, fields)
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        self.conn.execute(
            sa.insert(events).values(
                run_id=run_id, seq=seq, timestamp_ms=self.now, type=type_, payload_json=text
            )
        )
        event = Event(run_id, int(seq), self.now, type_, payload)
        self.events.append(event)
        return event


class Store:
    """A database (SQLite file or PostgreSQL) holding runs, their state and event logs."""

    def __init__(self, engine: Engine, *, bus: EventBus | None = None) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.bus = bus or EventBus()
        self.output_tables: dict[str, sa.Table] = {}
        self.output_models: dict[str, type[BaseModel]] = {}
        self.output_metadata = sa.MetaData()

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=False)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def ensure_tables(self) -> None:
        schema.metadata.create_all(self.engine, checkfirst=True)
        with self.write() as tx:
            found = tx.conn.execute(
                sa.select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")
            ).scalar_one_or_none()
            if found is None:
                tx.conn.execute(
                    sa.insert(schema.meta).values(
                        key="schema_version", value=str(schema.SCHEMA_VERSION)
                    )
                )

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """A write transaction; its events are published after commit."""
        conn = self.engine.connect().execution_options(smithers_write=True)
        with conn, conn.begin():
            tx = Tx(conn)
            yield tx
        self.bus.publish(tx.events)
        if tx.touched:
            self.bus.notify_touched(sorted(tx.touched))

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_setup(engine: Engine) -> None:
    @sa_event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves so writes can take the write lock up front.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=15000")
        cur.close()

    @sa_event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("smithers_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def create_db_engine(url: str) -> Engine:
    """An Engine for a SQLAlchemy URL, a bare SQLite path, or `postgres://...`."""
    if "://" not in url:
        url = f"sqlite:///{url}"
    if url.startswith(("postgres://", "postgresql://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise SmithersError("INVALID_REQUEST", f"invalid database URL: {url}") from exc
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            engine = sa.create_engine(
                parsed,
                connect_args={"check_same_thread": False},
                poolclass=sa.pool.StaticPool,
            )
        else:
            engine = sa.create_engine(
                parsed,
                connect_args={"check_same_thread": False, "timeout": 15},
                pool_size=8,
                max_overflow=32,
            )
        _sqlite_setup(engine)
        return engine
    return sa.create_engine(parsed, pool_size=10, max_overflow=30, pool_pre_ping=True)


def open_store(db: str | Engine | Store, *, bus: EventBus | None = None) -> Store:
    """Open (and create the tables of) a store from a URL, a path or an Engine."""
    if isinstance(db, Store):
        return db
    engine = db if isinstance(db, Engine) else create_db_engine(db)
    store = Store(engine, bus=bus)
    store.ensure_tables()
    return store
