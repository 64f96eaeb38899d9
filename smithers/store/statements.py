"""Statements built once and reused with parameters.

Building a SQLAlchemy statement per call costs more than running it on SQLite; the hot
paths of the engine run the same few shapes over and over, so they are built once per
shape (table, key columns, updated columns) and executed with bound values.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, CursorResult

from .schema import metadata


@cache
def _update(table: str, keys: tuple[str, ...], columns: tuple[str, ...]) -> sa.Update:
    t = metadata.tables[table]
    return (
        sa.update(t)
        .where(*[t.c[k] == sa.bindparam(f"k_{k}") for k in keys])
        .values({c: sa.bindparam(f"v_{c}") for c in columns})
    )


@cache
def _insert(table: str) -> sa.Insert:
    return sa.insert(metadata.tables[table])


def update(
    conn: Connection, table: str, where: dict[str, Any], values: dict[str, Any]
) -> CursorResult[Any]:
    """`UPDATE table SET values WHERE key = value ...` with a statement built once per shape."""
    stmt = _update(table, tuple(where), tuple(values))
    params = {f"k_{k}": v for k, v in where.items()}
    params.update({f"v_{c}": v for c, v in values.items()})
    return conn.execute(stmt, params)


def insert(conn: Connection, table: str, values: dict[str, Any]) -> None:
    conn.execute(_insert(table), values)
