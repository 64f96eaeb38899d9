"""Loop nodes: walk the children at the loop's current iteration, then advance or stop."""

from __future__ import annotations

from ...errors import SmithersError
from ...nodes import Loop
from ..actions import AdvanceLoop
from ..plan import Failure
from .walk import Walk, Walked, element, props


def walk_loop(w: Walk, node: Loop, reachable: bool) -> Walked:
    w.uses.add("loops")
    w.claim_id(node.id)
    if w.in_loop:
        raise SmithersError("WORKFLOW_INVALID", f"loop {node.id!r} is nested in another loop")
    iteration = w.tables.loop_iterations.get(node.id, 0)
    w.in_loop = True
    try:
        done, children = w.sequence(node.child_nodes(), iteration, reachable)
    finally:
        w.in_loop = False
    frame = element(
        node,
        props(
            id=node.id,
            iteration=iteration,
            maxIterations=node.max_iterations,
            onMaxReached=node.on_max_reached,
            until=bool(node.until),
        ),
        children,
    )
    if not done or not reachable:
        return False, frame
    if node.until:
        return True, frame
    if iteration + 1 >= node.max_iterations:
        if node.on_max_reached == "fail":
            error = {
                "code": "LOOP_MAX_ITERATIONS",
                "message": f"loop {node.id!r} reached {node.max_iterations} iterations",
            }
            w.plan.failed.append(Failure(node.id, iteration, error))
            return False, frame
        return True, frame
    w.plan.actions.append(AdvanceLoop(node.id, iteration + 1))
    return False, frame
