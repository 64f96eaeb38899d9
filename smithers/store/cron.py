"""Queries on `_smithers_cron`: schedules, and the compare-and-set that claims a fire.

A row's `workflow_path` holds the key of the registered workflow it starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .schema import cron


@dataclass(frozen=True, slots=True)
class CronRecord:
    cron_id: str
    pattern: str
    timezone: str
    workflow: str
    enabled: bool
    created_at_ms: int
    last_run_at_ms: int | None
    next_run_at_ms: int | None
    error_json: str | None

    @classmethod
    def from_row(cls, row: Any) -> CronRecord:
        m = row._mapping
        return cls(
            cron_id=m["cron_id"],
            pattern=m["pattern"],
            timezone=m["timezone"],
            workflow=m["workflow_path"],
            enabled=bool(m["enabled"]),
            created_at_ms=int(m["created_at_ms"]),
            last_run_at_ms=m["last_run_at_ms"],
            next_run_at_ms=m["next_run_at_ms"],
            error_json=m["error_json"],
        )


def get_cron(conn: Connection, cron_id: str, *, lock: bool = False) -> CronRecord | None:
    query = sa.select(cron).where(cron.c.cron_id == cron_id)
    if lock and conn.dialect.name != "sqlite":  # SQLite's write transaction locks it all
        query = query.with_for_update()
    row = conn.execute(query).first()
    return None if row is None else CronRecord.from_row(row)


def list_crons(conn: Connection) -> list[CronRecord]:
    rows = conn.execute(sa.select(cron).order_by(cron.c.cron_id))
    return [CronRecord.from_row(row) for row in rows]


def insert_cron(conn: Connection, record: CronRecord) -> None:
    conn.execute(
        sa.insert(cron).values(
            cron_id=record.cron_id,
            pattern=record.pattern,
            timezone=record.timezone,
            workflow_path=record.workflow,
            enabled=record.enabled,
            created_at_ms=record.created_at_ms,
            last_run_at_ms=record.last_run_at_ms,
            next_run_at_ms=record.next_run_at_ms,
            error_json=record.error_json,
        )
    )


def update_schedule(conn: Connection, record: CronRecord) -> None:
    """A row's schedule, workflow and next fire (creation time and history kept)."""
    conn.execute(
        sa.update(cron)
        .where(cron.c.cron_id == record.cron_id)
        .values(
            pattern=record.pattern,
            timezone=record.timezone,
            workflow_path=record.workflow,
            enabled=record.enabled,
            next_run_at_ms=record.next_run_at_ms,
        )
    )


def delete_cron(conn: Connection, cron_id: str) -> bool:
    return conn.execute(sa.delete(cron).where(cron.c.cron_id == cron_id)).rowcount == 1


def due_crons(conn: Connection, now: int, limit: int = 100) -> list[CronRecord]:
    rows = conn.execute(
        sa.select(cron)
        .where(cron.c.enabled == sa.true(), cron.c.next_run_at_ms <= now)
        .order_by(cron.c.next_run_at_ms)
        .limit(limit)
    )
    return [CronRecord.from_row(row) for row in rows]


def earliest_next(conn: Connection) -> int | None:
    """The soonest next fire of any enabled row."""
    found = conn.execute(
        sa.select(sa.func.min(cron.c.next_run_at_ms)).where(cron.c.enabled == sa.true())
    ).scalar_one_or_none()
    return None if found is None else int(found)


def move_next(conn: Connection, cron_id: str, expected: int, **values: Any) -> bool:
    """Set `next_run_at_ms` (and `values`) only while it still is `expected`: of the
    processes that saw one due time, exactly one moves it on (the row lock makes the
    others re-check the condition and find it changed)."""
    result = conn.execute(
        sa.update(cron)
        .where(cron.c.cron_id == cron_id, cron.c.next_run_at_ms == expected)
        .values(**values)
    )
    return result.rowcount == 1


def set_fields(conn: Connection, cron_id: str, **values: Any) -> None:
    conn.execute(sa.update(cron).where(cron.c.cron_id == cron_id).values(**values))
