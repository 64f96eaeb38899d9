"""The statuses of a run and the states of a node, as stored in the database.

`StrEnum` members are the strings themselves: they compare equal to, hash like and are
stored as the spec's values, so rows read back as plain strings still match them.
"""

from __future__ import annotations

import enum


class RunStatus(enum.StrEnum):
    """`_smithers_runs.status`."""

    RUNNING = "running"
    WAITING_APPROVAL = "waiting-approval"
    WAITING_EVENT = "waiting-event"
    WAITING_TIMER = "waiting-timer"
    PAUSED = "paused"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


class NodeState(enum.StrEnum):
    """`_smithers_nodes.state`."""

    PENDING = "pending"
    IN_PROGRESS = "in-progress"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    WAITING_APPROVAL = "waiting-approval"
    WAITING_EVENT = "waiting-event"
    WAITING_TIMER = "waiting-timer"


TERMINAL_STATUSES: frozenset[RunStatus] = frozenset(
    {RunStatus.FINISHED, RunStatus.FAILED, RunStatus.CANCELLED}
)
"""A run in one of these never changes again."""

WAITING_STATUSES: frozenset[RunStatus] = frozenset(
    {RunStatus.WAITING_APPROVAL, RunStatus.WAITING_EVENT, RunStatus.WAITING_TIMER}
)
"""A run parked on a human, a signal or a timer: rows only, no owner."""

WAITING_STATES: frozenset[NodeState] = frozenset(
    {NodeState.WAITING_APPROVAL, NodeState.WAITING_EVENT, NodeState.WAITING_TIMER}
)
"""A node waiting for a decision, a signal or a timer."""
