"""`ctx`: what a render function may read of its run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from .definition import OutputRef, SmithersWorkflow
from .errors import SmithersError
from .store.nodes import NodeTables

# table key -> (node_id, iteration) -> validated model instance
OutputCache = dict[str, dict[tuple[str, int], BaseModel]]


@dataclass
class ApprovalDecision:
    """`ctx.approval(id)`: the decision on an approval node, as stored."""

    approved: bool
    note: str | None
    decided_by: str | None
    decision: Any
    auto_approved: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "approved": self.approved,
            "note": self.note,
            "decidedBy": self.decided_by,
            "decision": self.decision,
        }


class Ctx:
    """Built afresh for every render from the run's persisted state."""

    def __init__(
        self,
        *,
        workflow: SmithersWorkflow,
        run_id: str,
        input: Any,
        auth: dict[str, Any] | None,
        outputs: OutputCache,
        tables: NodeTables,
    ) -> None:
        self.workflow = workflow
        self.run_id = run_id
        self.input = input
        self.auth = auth
        self._outputs = outputs
        self._tables = tables

    @property
    def iteration(self) -> int:
        """The highest iteration any loop has reached (0 before the first loop advances)."""
        iterations = self._tables.loop_iterations
        return max(iterations.values()) if iterations else 0

    def iteration_of(self, loop_id: str) -> int:
        return self._tables.loop_iterations.get(loop_id, 0)

    def _ref(self, model: Any) -> OutputRef:
        ref = self.workflow.resolve_output(model)
        if ref is None:
            raise SmithersError("WORKFLOW_INVALID", "an output model is required")
        return ref

    def output_maybe(self, model: Any, node_id: str, iteration: int | None = None) -> Any:
        """The node's output (the latest iteration unless one is given), or None."""
        rows = self._outputs.get(self._ref(model).key, {})
        if iteration is not None:
            return rows.get((node_id, iteration))
        found = [(it, value) for (nid, it), value in rows.items() if nid == node_id]
        return max(found, key=lambda pair: pair[0])[1] if found else None

    def output(self, model: Any, node_id: str, iteration: int | None = None) -> Any:
        value = self.output_maybe(model, node_id, iteration)
        if value is None:
            raise SmithersError(
                "OUTPUT_NOT_FOUND",
                f"no output of {node_id!r}"
                + ("" if iteration is None else f" at iteration {iteration}"),
            )
        return value

    def latest(self, model: Any, node_id: str) -> Any:
        return self.output_maybe(model, node_id)

    def outputs(self, model: Any) -> list[Any]:
        """Every row of an output, ordered by node id and iteration."""
        rows = self._outputs.get(self._ref(model).key, {})
        return [rows[key] for key in sorted(rows)]

    def approval(self, node_id: str, iteration: int = 0) -> ApprovalDecision | None:
        record = self._tables.approvals.get((node_id, iteration))
        if record is None or record.status == "requested":
            return None
        return ApprovalDecision(
            approved=record.status == "approved",
            note=record.note,
            decided_by=record.decided_by,
            decision=record.decision,
            auto_approved=record.auto_approved,
        )
