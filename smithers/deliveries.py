"""Webhook deliveries on a store: a delivery id claimed once per database (so every
Gateway on it refuses a replay), and the runs a delivered signal goes to."""

from __future__ import annotations

from .registry import CONFIG_KEY
from .signals import awaits
from .store import runs as runs_q
from .store import webhooks as webhooks_q
from .store.base import Store

TERMINAL = webhooks_q.TERMINAL


def claim_delivery(store: Store, key: str, delivery_id: str) -> bool:
    """Record the delivery id of webhook `key`; False when it was recorded before (by this
    process or any other on the database: the primary key decides)."""
    with store.write() as tx:
        return webhooks_q.record_delivery(tx.conn, key, delivery_id, tx.now)


def release_delivery(store: Store, key: str, delivery_id: str) -> None:
    """Forget a claim whose delivery did nothing, so the sender's retry is taken."""
    with store.write() as tx:
        webhooks_q.forget_delivery(tx.conn, key, delivery_id)


def signal_targets(
    store: Store,
    workflow_key: str,
    signal: str,
    correlation_id: str | None = None,
    run_id: str | None = None,
) -> list[str]:
    """The runs of the workflow registered as `workflow_key` a signal goes to: with `run_id`,
    that run if it is a live run of the workflow (a signal sent before its node is reached
    is kept for it); else every live run with a node waiting for `signal` (and for
    `correlation_id`, when the node names one), oldest first."""
    with store.read() as conn:
        if run_id is not None:
            run = runs_q.get_run(conn, run_id)
            if run is None or run.status in TERMINAL:
                return []
            return [run_id] if run.config.get(CONFIG_KEY) == workflow_key else []
        waiting = webhooks_q.waiting_on_signal(conn, signal)
    found: list[str] = []
    for row in waiting:
        if row["config"].get(CONFIG_KEY) != workflow_key or row["runId"] in found:
            continue
        if awaits(row["wait"], signal, correlation_id):
            found.append(row["runId"])
    return found
