"""Queries on `_smithers_idempotency_keys`: which run a launch's idempotency key started."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .schema import idempotency_keys as keys

# A key answers with its first run for this long; after it, the key starts a new run.
KEY_TTL_MS = 24 * 60 * 60 * 1000


def run_for_key(conn: Connection, scope: str, key: str, now: int) -> str | None:
    """The run a key started within the last KEY_TTL_MS, or None."""
    found: str | None = conn.execute(
        sa.select(keys.c.run_id).where(
            keys.c.scope == scope,
            keys.c.idempotency_key == key,
            keys.c.created_at_ms > now - KEY_TTL_MS,
        )
    ).scalar_one_or_none()
    return found


def record_key(conn: Connection, scope: str, key: str, run_id: str, now: int) -> None:
    """Bind a key to the run being created (an expired binding is replaced). Under the
    primary key, a launch racing with the same key fails here and its transaction rolls
    back; the caller then finds the winner's run with `run_for_key`."""
    conn.execute(
        sa.delete(keys).where(
            keys.c.scope == scope,
            keys.c.idempotency_key == key,
            keys.c.created_at_ms <= now - KEY_TTL_MS,
        )
    )
    conn.execute(
        sa.insert(keys).values(scope=scope, idempotency_key=key, run_id=run_id, created_at_ms=now)
    )
