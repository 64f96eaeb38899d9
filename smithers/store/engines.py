"""How a database URL becomes an Engine: SQLite files in WAL mode with one write lock per
file in this process, PostgreSQL with its pool and connection checks, and URLs as people
should see them."""

from __future__ import annotations

import os
import threading
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection, Engine

from ..errors import SmithersError
from . import postgres

_sqlite_locks: dict[str, threading.Lock] = {}
_sqlite_locks_guard = threading.Lock()


def sqlite_write_lock(engine: Engine) -> threading.Lock:
    """One lock per SQLite file in this process, shared by every Store on that file."""
    database = engine.url.database or ":memory:"
    key = database if database == ":memory:" else os.path.realpath(database)
    with _sqlite_locks_guard:
        return _sqlite_locks.setdefault(key, threading.Lock())


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
        write = conn.get_execution_options().get("smithers_write")
        conn.connection.dbapi_connection.execute(  # type: ignore[union-attr]
            "BEGIN IMMEDIATE" if write else "BEGIN"
        )


def database_url(url: str) -> sa.URL:
    """The SQLAlchemy URL for a URL, a bare SQLite path, or `postgres://...`."""
    if "://" not in url:
        url = f"sqlite:///{url}"
    if url.startswith(("postgres://", "postgresql://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    try:
        return sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise SmithersError("INVALID_REQUEST", f"invalid database URL: {url}") from exc


def shown_db_url(db: str) -> str:
    """A database URL as people should see it: SQLite paths made absolute (so a hint works
    from another folder) and any password hidden (banners, hints and logs are read by
    others)."""
    parsed = database_url(db)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        parsed = parsed.set(database=os.path.abspath(parsed.database or ""))
    return parsed.render_as_string(hide_password=True)


def create_db_engine(url: str) -> Engine:
    """An Engine for a SQLAlchemy URL, a bare SQLite path, or `postgres://...`."""
    parsed = database_url(url)
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
    try:
        engine = sa.create_engine(
            parsed,
            pool_size=postgres.POOL_SIZE,
            max_overflow=30,
            pool_recycle=1800,
            # No automatic server-side prepares: psycopg's bookkeeping for them cost this
            # process more CPU per statement than the parses they save the server
            # (bench_runs.py on PostgreSQL: 16.5 -> 13-14 ms CPU per run).
            connect_args={"prepare_threshold": None},
        )
    except ImportError as exc:  # the URL names a driver that is not installed
        raise missing_driver(parsed, exc) from None
    if engine.dialect.name == "postgresql":
        postgres.setup_engine(engine)
    return engine


def missing_driver(url: sa.URL, exc: ImportError) -> SmithersError:
    """The one-line error for a database URL whose driver cannot be imported (the URL is
    not repeated: it may carry a password)."""
    if url.drivername == "postgresql+psycopg":
        how = "PostgreSQL needs the psycopg driver: pip install 'smithers-asgi[postgres]'"
    else:
        how = f"the {url.drivername} driver is not installed ({exc})"
    return SmithersError("DB_DRIVER_MISSING", f"cannot open the database: {how}")
