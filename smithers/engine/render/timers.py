"""Timer nodes: start, wait until due, fire."""

from __future__ import annotations

from ...errors import SmithersError
from ...nodes import Timer
from ..actions import FireTimer, StartTimer
from .walk import DONE_STATES, Walk, Walked, element, props


def walk_timer(w: Walk, node: Timer, iteration: int, reachable: bool) -> Walked:
    key = w.enter(node.id, iteration)
    frame = element(
        node,
        props(id=node.id, label=node.label, durationMs=node.duration_ms, untilMs=node.until_ms),
        [],
    )
    rec = w.tables.nodes.get(key)
    state = None if rec is None else rec.state
    if state in DONE_STATES:
        return True, frame
    if not reachable or state in ("cancelled", "failed"):
        return False, frame
    if state != "waiting-timer" or rec is None or rec.fires_at_ms is None:
        if node.until_ms is not None:
            fires_at = node.until_ms
        elif node.duration_ms is not None:
            fires_at = w.now + node.duration_ms
        else:
            raise SmithersError(
                "WORKFLOW_INVALID", f"timer {node.id!r} needs duration_ms or until_ms"
            )
        w.plan.actions.append(StartTimer(*key, fires_at, node.label))
        return False, frame
    if rec.fires_at_ms <= w.now:
        w.plan.actions.append(FireTimer(*key, rec.fires_at_ms))
        return False, frame
    w.plan.wait_on("timer", *key, rec.fires_at_ms)
    return False, frame
