"""Task and node outputs: validated against their model, written, and cached by the driver."""

from __future__ import annotations

from typing import Any, TypeAlias

import sqlalchemy as sa
from pydantic import BaseModel

from ..context import OutputCache
from ..definition import OutputRef, SmithersWorkflow
from ..store import outputs as outputs_q
from ..store.base import Store, Tx

# An output a transaction wrote: (output key, node id, iteration, value), cached after commit.
Applied: TypeAlias = tuple[str, str, int, BaseModel]


def ensure_output_tables(store: Store, workflow: SmithersWorkflow) -> None:
    store.ensure_output_tables({ref.key: ref.model for ref in workflow.outputs})


def validate_output(output: OutputRef | None, value: Any) -> BaseModel | None:
    """A task's return value as its output model (None for tasks without an output)."""
    if output is None:
        return None
    if isinstance(value, output.model):
        return value
    if isinstance(value, BaseModel):
        value = value.model_dump()
    return output.model.model_validate(value)


def write_output(
    tx: Tx,
    table: sa.Table,
    ref: OutputRef,
    run_id: str,
    node_id: str,
    iteration: int,
    model: BaseModel,
) -> Applied:
    outputs_q.write_output(
        tx.conn, table, ref.model, run_id=run_id, node_id=node_id, iteration=iteration, value=model
    )
    return (ref.key, node_id, iteration, model)


def remember(cache: OutputCache, applied: list[Applied]) -> None:
    """Add committed outputs to a driver's cache (only after their transaction commits)."""
    for key, node_id, iteration, value in applied:
        cache.setdefault(key, {})[(node_id, iteration)] = value
