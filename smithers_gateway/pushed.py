"""The name a stored event is pushed under (`NodeFinished` -> `node.finished`, a terminal
event -> `run.completed`); an event with no pushed name keeps its type."""

from __future__ import annotations

import re

from smithers.events import Event

NAMES = {
    "NodeOutput": "task.output",
    "ApprovalRequested": "approval.requested",
    "ApprovalGranted": "approval.decided",
    "ApprovalDenied": "approval.decided",
    "ApprovalAutoApproved": "approval.auto_approved",
    "SignalReceived": "signal.received",
    "TimeTravelJumped": "run.time_travel_jumped",
}
NODE_STATES = frozenset(
    {
        "pending",
        "started",
        "finished",
        "failed",
        "skipped",
        "cancelled",
        "retrying",
        "waiting_approval",
        "waiting_event",
        "waiting_timer",
    }
)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def pushed_name(event: Event) -> str:
    if event.is_terminal:
        return "run.completed"
    if event.type in NAMES:
        return NAMES[event.type]
    if event.type.startswith("Node") and _snake(event.type[4:]) in NODE_STATES:
        return "node." + _snake(event.type[4:])
    return event.type
