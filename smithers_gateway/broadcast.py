"""Broadcast events: what the runs this process drives do (`node.*`, `task.output`,
`approval.*`, `signal.received`, `run.completed`, `run.time_travel_jumped`) and the
cron fires (`cron.triggered`, `publish_named`), pushed to
every authenticated socket allowed `run:read`, or only to those whose `connect` named the
run in `subscribe`.

They come from the one event feed of the app (`RunService.feeding`: each event this
process commits, once), are encoded once for all sockets and queue on each socket's
outbox, whose writer and backpressure they share with everything else sent there. Runs
driven by another process sharing the database are not broadcast: that would take a
follower per run; `streamRunEvents` follows them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from smithers.events import Event

from .frames import event_parts
from .outbox import Outbox
from .pushed import NODE_STATES, pushed_name

BROADCAST = frozenset(
    {
        *(f"node.{state}" for state in NODE_STATES),
        "task.output",
        "approval.requested",
        "approval.decided",
        "approval.auto_approved",
        "signal.received",
        "run.completed",
        "run.time_travel_jumped",
    }
)
STATUS = {"RunFinished": "finished", "RunFailed": "failed", "RunCancelled": "cancelled"}


def broadcast_payload(event: Event) -> dict[str, Any]:
    """The stored event (`type`, `runId`, `timestampMs`, its fields) with its durable seq
    as `eventSeq` (a signal's own `seq` is one of its fields), plus `approved` on a
    decision and `status` on `run.completed`."""
    payload = {**event.payload, "eventSeq": event.seq}
    if event.type in ("ApprovalGranted", "ApprovalDenied"):
        payload["approved"] = event.type == "ApprovalGranted"
    elif event.type in STATUS:
        payload["status"] = STATUS[event.type]
    return payload


@dataclass(frozen=True)
class Listener:
    outbox: Outbox
    runs: frozenset[str] | None  # None: every run


class Broadcast:
    """The sockets that receive broadcast events."""

    def __init__(self) -> None:
        self.listeners: dict[Outbox, Listener] = {}

    def add(self, outbox: Outbox, runs: list[str] | None) -> None:
        self.listeners[outbox] = Listener(outbox, None if runs is None else frozenset(runs))

    def remove(self, outbox: Outbox) -> None:
        self.listeners.pop(outbox, None)

    def publish(self, event: Event, state_version: int) -> None:
        name = pushed_name(event)
        if name in BROADCAST:
            self.publish_named(name, event.run_id, broadcast_payload(event), state_version)

    def publish_named(
        self, name: str, run_id: str, payload: dict[str, Any], state_version: int
    ) -> None:
        """An event about run `run_id` (a stored one, or `cron.triggered`)."""
        if not self.listeners:
            return
        head, tail = event_parts(name, payload, state_version)
        pieces = (head,)
        for listener in list(self.listeners.values()):
            if listener.runs is None or run_id in listener.runs:
                listener.outbox.encoded_event(pieces, tail)
