"""One render: the tree a render function returned -> frame JSON and a plan of what to do."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...context import OutputCache
from ...definition import SmithersWorkflow
from ...errors import SmithersError
from ...nodes import Approval, Branch, Loop, Node, Parallel, Sequence, Signal, Task, Timer, Workflow
from ...store.nodes import NodeTables
from ..plan import Plan
from .approvals import walk_approval
from .containers import walk_container, walk_parallel
from .loops import walk_loop
from .signals import walk_signal
from .tasks import walk_task
from .timers import walk_timer
from .walk import Frame, Walk, Walked, props


@dataclass
class Rendered:
    frame: Frame
    frame_text: str
    frame_hash: str
    mounted_task_ids: list[str]
    task_index: list[dict[str, Any]]
    plan: Plan
    name: str | None
    uses: frozenset[str]


def walk_node(w: Walk, node: Node, iteration: int, reachable: bool) -> Walked:
    """Walk one node by its kind."""
    match node:
        case Task():
            return walk_task(w, node, iteration, reachable)
        case Sequence():
            return walk_container(w, node, {}, iteration, reachable)
        case Parallel():
            return walk_parallel(w, node, iteration, reachable)
        case Workflow():
            return walk_container(w, node, props(name=node.name), iteration, reachable)
        case Branch():
            return walk_container(w, node, props(cond=bool(node.cond)), iteration, reachable)
        case Approval():
            return walk_approval(w, node, iteration, reachable)
        case Signal():
            return walk_signal(w, node, iteration, reachable)
        case Timer():
            return walk_timer(w, node, iteration, reachable)
        case Loop():
            return walk_loop(w, node, reachable)
    raise SmithersError(
        "WORKFLOW_INVALID", f"render returned {type(node).__name__}, which is not a node"
    )


def render(
    workflow: SmithersWorkflow,
    render_fn: Callable[[], Any],
    tables: NodeTables,
    outputs: OutputCache,
    now: int,
) -> Rendered:
    """Call the render function and walk its tree against the persisted state."""
    root = render_fn()
    if not isinstance(root, Node):
        raise SmithersError(
            "WORKFLOW_INVALID", f"render returned {type(root).__name__}, expected a Workflow node"
        )
    walker = Walk(workflow, tables, outputs, now, walk_node)
    done, frame = walker.walk(root, 0, True)
    walker.plan.done = done and not walker.plan.failed
    text = json.dumps(frame, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return Rendered(
        frame=frame,
        frame_text=text,
        frame_hash=hashlib.sha256(text.encode()).hexdigest(),
        mounted_task_ids=walker.mounted,
        task_index=walker.task_index,
        plan=walker.plan,
        name=root.name if isinstance(root, Workflow) else None,
        uses=frozenset(walker.uses),
    )
