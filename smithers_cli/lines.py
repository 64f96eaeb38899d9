"""What run events say in words: one plain line per step, node states, failures, durations.

Shared by the plain and the live view of `smithers up` and `smithers runs watch`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

Payload = dict[str, Any]
Hint = Callable[[Payload], str | None]

NODE_STATES = {
    "NodePending": "pending",
    "NodeStarted": "in-progress",
    "NodeFinished": "finished",
    "NodeFailed": "failed",
    "NodeCancelled": "cancelled",
    "NodeSkipped": "skipped",
    "NodeWaitingApproval": "waiting-approval",
    "NodeWaitingEvent": "waiting-event",
    "NodeWaitingTimer": "waiting-timer",
    "NodeRetrying": "in-progress",
}

RUN_ENDS = {"RunFinished": "finished", "RunFailed": "failed", "RunCancelled": "cancelled"}

# What asks a person for something, and what answers it (or moves the node on).
ASKS = frozenset({"ApprovalRequested", "NodeWaitingEvent"})
ANSWERS = frozenset(
    {
        "ApprovalGranted",
        "ApprovalDenied",
        "ApprovalAutoApproved",
        "NodeStarted",
        "NodeFinished",
        "NodeFailed",
        "NodeSkipped",
        "NodeCancelled",
    }
)


def where(p: Payload) -> str:
    """The node an event is about: `id`, or `id[iteration]` inside a loop."""
    return f"{p.get('nodeId')}" + (f"[{p['iteration']}]" if p.get("iteration") else "")


def error_message(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message", error))
    return str(error)


def failure_text(error: Any) -> str:
    """A failure as a person debugs it: the task's traceback when the engine kept one
    (its last line is the message), else the message."""
    traceback = error.get("traceback") if isinstance(error, dict) else None
    if isinstance(traceback, str) and traceback.strip():
        return traceback.rstrip("\n")
    return error_message(error)


def describe(p: Payload) -> str | None:
    """One plain line for an event payload (a failure may add its traceback beneath),
    or None for events not worth a line."""
    kind = p.get("type")
    at = where(p)
    message = error_message(p.get("error") or {})
    by = f" by {p['decidedBy']}" if p.get("decidedBy") else ""
    if kind == "NodeFailed":
        text = failure_text(p.get("error") or {})
        if text == message:
            return f"{at}: failed: {message}"
        return f"{at}: failed: {message}\n" + indent(text)
    lines: dict[str, str] = {
        "RunStarted": "run resumed" if p.get("resumed") else "run started",
        "NodeStarted": f"{at}: started"
        + (f" (attempt {p.get('attempt')})" if (p.get("attempt") or 1) > 1 else ""),
        "NodeFinished": f"{at}: finished",
        "NodeRetrying": f"{at}: retrying (attempt {p.get('attempt')})",
        "NodeSkipped": f"{at}: skipped",
        "NodeCancelled": f"{at}: cancelled",
        "NodeOutput": f"{at} | {p.get('text', '')}",
        "ApprovalGranted": f"{at}: approved{by}",
        "ApprovalDenied": f"{at}: denied{by}",
        "ApprovalAutoApproved": f"{at}: approved automatically",
        "SignalReceived": f"signal {p.get('signalName')} received",
        "NodeWaitingTimer": f"{at}: waiting until {p.get('firesAtMs')}",
        "RunFinished": "run finished",
        "RunFailed": f"run failed: {message}",
        "RunCancelled": "run cancelled",
    }
    return lines.get(str(kind))


def indent(text: str, by: str = "  ") -> str:
    return "\n".join(by + line for line in text.splitlines())


def open_asks(history: Iterable[Payload]) -> list[Payload]:
    """The requests in a run's past events that nobody has answered yet (what a resumed
    run still waits for: it does not ask again)."""
    asks: dict[tuple[Any, Any], Payload] = {}
    for p in history:
        key = (p.get("nodeId"), p.get("iteration") or 0)
        if p.get("type") in ASKS:
            asks[key] = p
        elif p.get("type") in ANSWERS:
            asks.pop(key, None)
    return list(asks.values())


def duration(ms: float) -> str:
    """A duration as people read it: `0.4s`, `12.3s`, `3m 04s`, `2h 05m`, `3d 04h`."""
    seconds = max(ms, 0) / 1000
    if seconds < 59.95:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"
