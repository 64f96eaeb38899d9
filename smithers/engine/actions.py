"""The bookkeeping a render plans and the engine commits before it renders again.

One frozen dataclass per kind; `apply.apply_action` holds what each one writes and emits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from ..definition import OutputRef
from ..store.records import SignalRecord


@dataclass(frozen=True, slots=True)
class NodeAction:
    """What every action names: the node and its iteration."""

    node_id: str
    iteration: int


@dataclass(frozen=True, slots=True)
class Pending(NodeAction):
    """A node reached for the first time: its row, as pending."""

    label: str | None = None
    output_table: str | None = None


@dataclass(frozen=True, slots=True)
class Skip(NodeAction):
    """A task whose `skip_if` holds."""


@dataclass(frozen=True, slots=True)
class RequestApproval(NodeAction):
    """Ask for a decision: an `Approval` node (`gate=False`) or a task's `needs_approval`."""

    request: dict[str, Any]
    gate: bool
    on_deny: str
    auto: bool = False
    label: str | None = None


@dataclass(frozen=True, slots=True)
class ApprovalOutput(NodeAction):
    """Write an approved approval's decision to its output table."""

    output: OutputRef


@dataclass(frozen=True, slots=True)
class WaitEvent(NodeAction):
    """A signal node starts waiting for its signal (until `fires_at`, when it has a timeout)."""

    signal: str
    correlation_id: str | None = None
    fires_at: int | None = None
    label: str | None = None


@dataclass(frozen=True, slots=True)
class ConsumeSignal(NodeAction):
    """A signal node takes a delivered signal (and writes its data to its output)."""

    signal: SignalRecord
    output: OutputRef | None = None


@dataclass(frozen=True, slots=True)
class SignalTimeout(NodeAction):
    """A signal node's time ran out."""

    on_timeout: Literal["fail", "skip", "continue"]


@dataclass(frozen=True, slots=True)
class StartTimer(NodeAction):
    """A timer starts: it fires at `fires_at`."""

    fires_at: int
    label: str | None = None


@dataclass(frozen=True, slots=True)
class FireTimer(NodeAction):
    """A due timer fires."""

    fires_at: int


@dataclass(frozen=True, slots=True)
class AdvanceLoop(NodeAction):
    """A loop starts its next iteration (`iteration` is the new one)."""


Action: TypeAlias = (
    Pending
    | Skip
    | RequestApproval
    | ApprovalOutput
    | WaitEvent
    | ConsumeSignal
    | SignalTimeout
    | StartTimer
    | FireTimer
    | AdvanceLoop
)
