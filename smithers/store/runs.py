"""Queries on `_smithers_runs`: creation, ownership, heartbeats and listings."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import statements
from .records import RunRecord, dumps
from .schema import runs


def insert_run(
    conn: Connection,
    *,
    run_id: str,
    workflow_name: str,
    workflow_path: str | None,
    workflow_hash: str | None,
    owner_id: str | None,
    now: int,
    input: Any,
    config: dict[str, Any],
    auth: dict[str, Any] | None,
    parent_run_id: str | None = None,
) -> None:
    statements.insert(
        conn,
        "_smithers_runs",
        dict(
            run_id=run_id,
            parent_run_id=parent_run_id,
            workflow_name=workflow_name,
            workflow_path=workflow_path,
            workflow_hash=workflow_hash,
            status="running",
            created_at_ms=now,
            started_at_ms=now,
            heartbeat_at_ms=None if owner_id is None else now,
            runtime_owner_id=owner_id,
            input_json=dumps(input),
            config_json=dumps(config),
            auth_json=None if auth is None else dumps(auth),
            last_seq=-1,
        ),
    )


def get_run(conn: Connection, run_id: str, *, lock: bool = False) -> RunRecord | None:
    sql = "SELECT * FROM _smithers_runs WHERE run_id = :rid"
    if lock:
        sql += statements.for_update(conn)
    row = statements.fetch_one(conn, sql, {"rid": run_id})
    return None if row is None else RunRecord.from_row(row)


def run_marker(conn: Connection, run_id: str) -> tuple[str, int, int | None] | None:
    """`(status, last_seq, finished_at_ms)`: what changes whenever the run does."""
    row = statements.fetch_one(
        conn,
        "SELECT status, last_seq, finished_at_ms FROM _smithers_runs WHERE run_id = :rid",
        {"rid": run_id},
    )
    return None if row is None else (row["status"], int(row["last_seq"]), row["finished_at_ms"])


def lock_ownership(conn: Connection, run_id: str) -> tuple[str, str | None, int] | None:
    """Lock the run's row and return `(status, owner, command_seq)`."""
    row = statements.fetch_one(
        conn,
        "SELECT status, runtime_owner_id, command_seq FROM _smithers_runs WHERE run_id = :rid"
        + statements.for_update(conn),
        {"rid": run_id},
    )
    return (
        None if row is None else (row["status"], row["runtime_owner_id"], int(row["command_seq"]))
    )


def run_exists(conn: Connection, run_id: str) -> bool:
    return conn.execute(sa.select(runs.c.run_id).where(runs.c.run_id == run_id)).first() is not None


def update_run(conn: Connection, run_id: str, **values: Any) -> None:
    statements.update(conn, "_smithers_runs", {"run_id": run_id}, values)


def heartbeat(conn: Connection, owner_id: str, run_ids: list[str], now: int) -> None:
    """Refresh the heartbeat of those of `run_ids` that are running and still ours."""
    if not run_ids:
        return
    conn.execute(
        sa.update(runs)
        .where(runs.c.run_id.in_(run_ids))
        .where(runs.c.runtime_owner_id == owner_id)
        .where(runs.c.status == "running")
        .values(heartbeat_at_ms=now)
    )


def run_markers(conn: Connection, run_ids: list[str]) -> dict[str, tuple[int, str, str | None]]:
    """`(command_seq, status, owner)` for each run: what an owner watches for outside
    changes (a command, an end, or the run claimed by another process)."""
    if not run_ids:
        return {}
    rows = conn.execute(
        sa.select(runs.c.run_id, runs.c.command_seq, runs.c.status, runs.c.runtime_owner_id).where(
            runs.c.run_id.in_(run_ids)
        )
    )
    return {r[0]: (int(r[1]), r[2], r[3]) for r in rows}


def release_runs(conn: Connection, owner_id: str, run_ids: list[str]) -> None:
    """Hand running runs back unowned, so another process adopts them at once."""
    conn.execute(
        sa.update(runs)
        .where(runs.c.run_id.in_(run_ids))
        .where(runs.c.runtime_owner_id == owner_id)
        .values(runtime_owner_id=None, heartbeat_at_ms=None)
    )


def claimable_runs(conn: Connection, *, stale_before: int, limit: int = 100) -> list[RunRecord]:
    """`running` runs that are unowned or whose heartbeat is older than `stale_before`."""
    rows = conn.execute(
        sa.select(runs)
        .where(runs.c.status == "running")
        .where(
            sa.or_(
                runs.c.runtime_owner_id.is_(None),
                runs.c.heartbeat_at_ms.is_(None),
                runs.c.heartbeat_at_ms < stale_before,
            )
        )
        .order_by(runs.c.created_at_ms)
        .limit(limit)
    )
    return [RunRecord.from_row(r) for r in rows]


def running_runs_owned_by_others(
    conn: Connection, owner_id: str, limit: int = 1000
) -> list[tuple[str, str]]:
    rows = conn.execute(
        sa.select(runs.c.run_id, runs.c.runtime_owner_id)
        .where(runs.c.status == "running")
        .where(runs.c.runtime_owner_id.is_not(None))
        .where(runs.c.runtime_owner_id != owner_id)
        .limit(limit)
    )
    return [(r[0], r[1]) for r in rows]


def list_runs(
    conn: Connection,
    *,
    limit: int = 50,
    status: str | None = None,
    workflow: str | None = None,
    offset: int = 0,
) -> list[RunRecord]:
    query = sa.select(runs).order_by(runs.c.created_at_ms.desc(), runs.c.run_id.desc())
    if status:
        query = query.where(runs.c.status == status)
    if workflow:
        query = query.where(
            sa.or_(runs.c.workflow_name == workflow, runs.c.workflow_path == workflow)
        )
    return [RunRecord.from_row(r) for r in conn.execute(query.limit(limit).offset(offset))]


def run_row(conn: Connection, run_id: str) -> dict[str, Any] | None:
    """The run's row as stored, every column (for copying it to another database)."""
    row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()
    return None if row is None else dict(row._mapping)


def put_run_row(conn: Connection, values: dict[str, Any]) -> None:
    """Write a copied run row: update it where it exists, else insert it."""
    found = conn.execute(
        sa.update(runs).where(runs.c.run_id == values["run_id"]).values(values)
    ).rowcount
    if not found:
        conn.execute(sa.insert(runs).values(values))
