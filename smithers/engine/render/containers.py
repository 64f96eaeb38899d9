"""Nodes that only order their children: Workflow, Sequence, Branch and Parallel."""

from __future__ import annotations

from ...nodes import Node, Parallel
from .walk import Walk, Walked, element, props


def walk_container(
    w: Walk, node: Node, node_props: dict[str, str], iteration: int, reachable: bool
) -> Walked:
    """A Workflow, Sequence or Branch: its (chosen) children in sequence."""
    done, children = w.sequence(node.child_nodes(), iteration, reachable)
    return done, element(node, node_props, children)


def walk_parallel(w: Walk, node: Parallel, iteration: int, reachable: bool) -> Walked:
    """Children side by side, at most `max_concurrency` of their tasks running at once."""
    plan = w.plan
    ready_before = len(plan.ready)
    running_before = plan.running
    done = True
    children = []
    for child in node.child_nodes():
        child_done, frame = w.walk(child, iteration, reachable)
        done = done and child_done
        children.append(frame)
    if node.max_concurrency is not None and node.max_concurrency > 0:
        running_inside = plan.running - running_before
        allowed = max(0, node.max_concurrency - running_inside)
        del plan.ready[ready_before + allowed :]
    return done, element(node, props(maxConcurrency=node.max_concurrency), children)
