"""Signal and WaitForEvent nodes: wait for a signal (or time out), then walk the children."""

from __future__ import annotations

from typing import Any

from ...nodes import Node, Signal, flatten
from ...store.records import SignalRecord
from ..actions import ConsumeSignal, SignalTimeout, WaitEvent
from .walk import Frame, Walk, Walked, element, props


def walk_signal(w: Walk, node: Signal, iteration: int, reachable: bool) -> Walked:
    key = w.enter(node.id, iteration, "signals")
    output = w.workflow.resolve_output(node.output)
    node_props = props(
        id=node.id,
        label=node.label,
        signal=node.signal_name,
        correlationId=node.correlation_id,
        timeoutMs=node.timeout_ms,
        onTimeout=node.on_timeout,
        output=output.key if output else None,
    )
    rec = w.tables.nodes.get(key)
    state = None if rec is None else rec.state
    children: list[Frame] = []
    if state == "finished" and rec is not None:
        done = True
        if not (rec.wait or {}).get("timedOut"):
            data = (rec.wait or {}).get("data")
            if output is not None:
                data = w.outputs.get(output.key, {}).get(key, data)
            done, children = w.sequence(_children(node, data), iteration, reachable)
        return done, element(node, node_props, children)
    frame = element(node, node_props, children)
    settled = w.settled(key, state, reachable)
    if settled is not None:
        return settled, frame
    match = _find_signal(w, node)
    if match is not None:
        w.claimed_signals.add(match.seq)
        w.plan.actions.append(ConsumeSignal(*key, match, output))
        return False, frame
    if state != "waiting-event":
        fires_at = None if node.timeout_ms is None else w.now + node.timeout_ms
        w.plan.actions.append(
            WaitEvent(*key, node.signal_name, node.correlation_id, fires_at, node.label)
        )
        return False, frame
    assert rec is not None
    if rec.fires_at_ms is not None and rec.fires_at_ms <= w.now:
        w.plan.actions.append(SignalTimeout(*key, node.on_timeout))
        return False, frame
    w.plan.wait_on("event", *key, rec.fires_at_ms)
    return False, frame


def _children(node: Signal, data: Any) -> list[Node]:
    """The children, given as nodes or as a function of the signal's data."""
    children = node.children
    if callable(children) and not isinstance(children, Node):
        children = children(data)
    return flatten(children)


def _find_signal(w: Walk, node: Signal) -> SignalRecord | None:
    """The first delivered signal for the node that no node before it took in this walk."""
    for signal in w.tables.open_signals:
        if signal.seq in w.claimed_signals or signal.signal_name != node.signal_name:
            continue
        if node.correlation_id is not None and signal.correlation_id != node.correlation_id:
            continue
        return signal
    return None
