"""Hot-path SQL run directly on the driver connection of a SQLAlchemy transaction.

A SQLAlchemy Core execution costs tens of microseconds of Python before the database
sees it, several times what SQLite itself takes; the engine's hot paths run a few small
statements over and over. These run as plain SQL (portable: only the parameter markers
differ, `:name` for sqlite3 and `%(name)s` for psycopg) on the transaction's own driver
connection, so they stay inside whatever transaction the caller holds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@cache
def _for(dialect: str, sql: str) -> str:
    return sql if dialect == "sqlite" else _NAMED.sub(r"%(\1)s", sql)


def execute(conn: Connection, sql: str, params: Mapping[str, Any] | None = None) -> Any:
    """Run `sql` (with `:name` markers) in the caller's transaction; the DBAPI cursor."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        # Not in a psycopg pipeline, though BEGIN would then share the first statement's
        # round trip: the server does not arm `idle_in_transaction_session_timeout` after
        # a pipeline, and that timeout is what frees the rows of a stalled process.
        cursor.execute(_for(conn.dialect.name, sql), params or {})
    except conn.dialect.loaded_dbapi.IntegrityError as exc:
        # Callers catch SQLAlchemy's IntegrityError whichever path ran the statement.
        raise IntegrityError(sql, params, exc) from exc
    return cursor


def execute_many(conn: Connection, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    cursor.executemany(_for(conn.dialect.name, sql), rows)
    cursor.close()


def fetch_all(
    conn: Connection, sql: str, params: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    cursor = execute(conn, sql, params)
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    cursor.close()
    return rows


def fetch_one(
    conn: Connection, sql: str, params: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    cursor = execute(conn, sql, params)
    row = cursor.fetchone()
    names = [d[0] for d in cursor.description]
    cursor.close()
    return None if row is None else dict(zip(names, row, strict=True))


def for_update(conn: Connection) -> str:
    """The row-lock clause (SQLite locks the whole database for a write transaction)."""
    return "" if conn.dialect.name == "sqlite" else " FOR UPDATE"


def _q(name: str) -> str:
    """A quoted identifier: output tables and fields are named by users (`order`, `fooBar`)."""
    return '"' + name.replace('"', '""') + '"'


@cache
def _update_sql(table: str, keys: tuple[str, ...], columns: tuple[str, ...]) -> str:
    sets = ", ".join(f"{_q(c)} = :v_{c}" for c in columns)
    where = " AND ".join(f"{_q(k)} = :k_{k}" for k in keys)
    return f"UPDATE {_q(table)} SET {sets} WHERE {where}"


@cache
def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return (
        f"INSERT INTO {_q(table)} ({', '.join(map(_q, columns))}) "
        f"VALUES ({', '.join(':' + c for c in columns)})"
    )


def update(conn: Connection, table: str, where: dict[str, Any], values: dict[str, Any]) -> int:
    """`UPDATE table SET values WHERE key = value ...`; the number of rows changed."""
    params = {f"k_{k}": v for k, v in where.items()}
    params.update({f"v_{c}": v for c, v in values.items()})
    cursor = execute(conn, _update_sql(table, tuple(where), tuple(values)), params)
    count: int = cursor.rowcount
    cursor.close()
    return count


@cache
def _upsert_sql(
    table: str, keys: tuple[str, ...], columns: tuple[str, ...], insert_only: tuple[str, ...]
) -> str:
    names = (*keys, *columns, *insert_only)
    sets = ", ".join(f"{_q(c)} = excluded.{_q(c)}" for c in columns)
    return (
        f"{_insert_sql(table, names)} ON CONFLICT ({', '.join(map(_q, keys))}) DO UPDATE SET {sets}"
    )


def upsert(
    conn: Connection,
    table: str,
    key: dict[str, Any],
    values: dict[str, Any],
    insert_only: dict[str, Any] | None = None,
) -> None:
    """Insert the row, or update `values` of the row with this `key` (one round trip).

    `insert_only` columns are written when the row is new and left alone otherwise.
    """
    extra = insert_only or {}
    sql = _upsert_sql(table, tuple(key), tuple(values), tuple(extra))
    execute(conn, sql, {**key, **values, **extra}).close()


def insert(conn: Connection, table: str, values: dict[str, Any]) -> None:
    execute(conn, _insert_sql(table, tuple(values)), values).close()


def insert_many(conn: Connection, table: str, rows: list[dict[str, Any]]) -> None:
    if len(rows) == 1:
        insert(conn, table, rows[0])
    elif rows:
        execute_many(conn, _insert_sql(table, tuple(rows[0])), rows)
