"""Queries for the Gateway's webhooks: delivery ids seen (`_smithers_webhook_deliveries`)
and the runs of a workflow whose nodes wait for a signal."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from .schema import nodes, runs
from .schema import webhook_deliveries as deliveries

TERMINAL = ("finished", "failed", "cancelled")


def record_delivery(conn: Connection, key: str, delivery_id: str, now: int) -> bool:
    """Record a delivery id; False when it is recorded already. ON CONFLICT DO NOTHING
    rather than catching the key violation (PostgreSQL aborts a transaction on an error),
    RETURNING rather than the row count (psycopg may not report one)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    inserted = conn.execute(
        dialect.insert(deliveries)
        .values(webhook_key=key, delivery_id=delivery_id, received_at_ms=now)
        .on_conflict_do_nothing()
        .returning(deliveries.c.delivery_id)
    )
    return inserted.first() is not None


def forget_delivery(conn: Connection, key: str, delivery_id: str) -> None:
    conn.execute(
        sa.delete(deliveries).where(
            deliveries.c.webhook_key == key, deliveries.c.delivery_id == delivery_id
        )
    )


def waiting_on_signal(conn: Connection, signal: str) -> list[dict[str, Any]]:
    """`{"runId", "config", "wait"}` of each live run with a node waiting for `signal`,
    oldest run first (a run once per waiting node). The caller picks the workflow from the
    config: a run's `workflow_name` is the name its root element gives, not its key."""
    rows = conn.execute(
        sa.select(runs.c.run_id, runs.c.config_json, nodes.c.wait_json)
        .join(nodes, nodes.c.run_id == runs.c.run_id)
        .where(runs.c.status.not_in(TERMINAL))
        .where(nodes.c.state == "waiting-event")
        .order_by(runs.c.created_at_ms, runs.c.run_id)
    )
    found = []
    for run_id, config_json, wait_json in rows:
        wait = json.loads(wait_json) if wait_json else {}
        if wait.get("signal") == signal:
            config = json.loads(config_json) if config_json else {}
            found.append({"runId": run_id, "config": config, "wait": wait})
    return found
