"""Task nodes: ready to start, running, skipped, or gated by an approval."""

from __future__ import annotations

from ...nodes import Task
from ..actions import RequestApproval, Skip
from ..plan import ReadyTask
from .walk import Walk, Walked, element, props


def walk_task(w: Walk, node: Task, iteration: int, reachable: bool) -> Walked:
    key = w.enter(node.id, iteration, "approvals" if node.needs_approval else None)
    output = w.workflow.resolve_output(node.output)
    frame = element(
        node,
        props(
            id=node.id,
            label=node.label,
            output=output.key if output else None,
            retries=node.retries or None,
            timeoutMs=node.timeout_ms,
            skipIf=node.skip_if or None,
            continueOnFail=node.continue_on_fail or None,
            needsApproval=node.needs_approval or None,
            iteration=iteration if w.in_loop else None,
            meta=node.meta,
        ),
        [],
    )
    w.task_index.append(
        {
            "nodeId": node.id,
            "iteration": iteration,
            "ordinal": len(w.task_index),
            "outputTable": output.key if output else None,
        }
    )
    state = w.state(key)
    settled = w.settled(key, state, reachable, node.continue_on_fail)
    if settled is not None:
        return settled, frame
    w.mounted.append(node.id)
    if state == "in-progress":
        w.plan.running += 1
        return False, frame
    if state == "waiting-approval":
        w.plan.wait_on("approval", *key)
        return False, frame
    if node.skip_if:
        w.plan.actions.append(Skip(*key))
        return False, frame
    if node.needs_approval and key not in w.tables.approvals:
        request = {"title": f"Approve {node.label or node.id}?"}
        w.plan.actions.append(
            RequestApproval(*key, request, gate=True, on_deny="fail", label=node.label)
        )
        return False, frame
    w.pending(key, node.label, output)
    rec = w.tables.nodes.get(key)
    attempt = (rec.last_attempt if rec else 0) + 1
    w.plan.ready.append(ReadyTask(node, iteration, output, attempt))
    return False, frame
