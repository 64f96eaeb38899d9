"""Read views of one run's insides: node states, task attempts, one frame, one node's
output with its schema (the Gateway's `listNodeStates`, `listAttempts`, `getAttempt`,
`getFrame`, `getNodeOutput`)."""

from __future__ import annotations

from typing import Any

from . import queries
from .errors import SmithersError
from .store import log as log_q
from .store import node_reads
from .store.base import Store


def node_states(store: Store, run_id: str) -> list[dict[str, Any]]:
    with store.read() as conn:
        found = node_reads.list_nodes(conn, run_id)
    return [
        {
            "runId": run_id,
            "nodeId": node.node_id,
            "iteration": node.iteration,
            "state": node.state,
            "lastAttempt": node.last_attempt,
            "updatedAtMs": node.updated_at_ms,
            "outputTable": node.output_table,
            "label": node.label,
            "error": node.error,
        }
        for node in found
    ]


def attempts(
    store: Store, run_id: str, node_id: str | None = None, iteration: int | None = None
) -> list[dict[str, Any]]:
    with store.read() as conn:
        return node_reads.list_attempts(conn, run_id, node_id, iteration)


def attempt(store: Store, run_id: str, node_id: str, iteration: int, number: int) -> dict[str, Any]:
    """One attempt; NOT_FOUND when the node has no such attempt."""
    for found in attempts(store, run_id, node_id, iteration):
        if found["attempt"] == number:
            return found
    raise SmithersError(
        "NOT_FOUND",
        f"node {node_id!r} has no attempt {number} in iteration {iteration}",
        {"runId": run_id, "nodeId": node_id, "iteration": iteration, "attempt": number},
    )


def frame(store: Store, run_id: str, frame_no: int) -> dict[str, Any]:
    """One render frame; NOT_FOUND when the run has no such frame."""
    with store.read() as conn:
        found = log_q.get_frame(conn, run_id, frame_no)
    if found is None:
        raise SmithersError(
            "NOT_FOUND", f"run {run_id!r} has no frame {frame_no}", {"frameNo": frame_no}
        )
    return found.to_json()


def node_output(store: Store, run_id: str, node_id: str, iteration: int = 0) -> dict[str, Any]:
    """A finished node's output row with the JSON schema of its model; NOT_FOUND when the
    node has produced none (yet)."""
    for item in queries.output_list(store, run_id, node_id):
        if item["iteration"] == iteration:
            model = store.output_models.get(item["outputKey"])
            schema = model.model_json_schema() if model is not None else None
            return {"runId": run_id, **item, "schema": schema}
    raise SmithersError(
        "NOT_FOUND",
        f"node {node_id!r} has no output for iteration {iteration}",
        {"runId": run_id, "nodeId": node_id, "iteration": iteration},
    )
