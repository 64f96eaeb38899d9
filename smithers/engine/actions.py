"""The bookkeeping a render plans and the engine commits before it renders again.

One frozen dataclass per kind; `apply.apply_action` holds what each one writes and emits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from ..definition import OutputRef
from ..store.records import SignalRecord


@dataclass(frozen=True, slots=True)
class Pending:
    """A node reached for the first time: its row, as pending."""

    node_id: str
    iteration: int
    label: str | None = None
    output_table: str | None = None


@dataclass(frozen=True, slots=True)
class Skip:
    """A task whose `skip_if` holds."""

    node_id: str
    iteration: int


@dataclass(frozen=True, slots=True)
class RequestApproval:
    """Ask for a decision: an `Approval` node (`gate=False`) or a task's `needs_approval`."""

    node_id: str
    iteration: int
    request: dict[str, Any]
    gate: bool
    on_deny: str
    auto: bool = False
    label: str | None = None


@dataclass(frozen=True, slots=True)
class ApprovalOutput:
    """Write an approved approval's decision to its output table."""

    node_id: str
    iteration: int
    output: OutputRef


@dataclass(frozen=True, slots=True)
class WaitEvent:
    """A signal node starts waiting for its signal (until `fires_at`, when it has a timeout)."""

    node_id: str
    iteration: int
    signal: str
    correlation_id: str | None = None
    fires_at: int | None = None
    label: str | None = None


@dataclass(frozen=True, slots=True)
class ConsumeSignal:
    """A signal node takes a delivered signal (and writes its data to its output)."""

    node_id: str
    iteration: int
    signal: SignalRecord
    output: OutputRef | None = None


@dataclass(frozen=True, slots=True)
class SignalTimeout:
    """A signal node's time ran out."""

    node_id: str
    iteration: int
    on_timeout: Literal["fail", "skip", "continue"]


@dataclass(frozen=True, slots=True)
class StartTimer:
    node_id: str
    iteration: int
    fires_at: int
    label: str | None = None


@dataclass(frozen=True, slots=True)
class FireTimer:
    node_id: str
    iteration: int
    fires_at: int


@dataclass(frozen=True, slots=True)
class AdvanceLoop:
    """A loop starts its next iteration (`iteration` is the new one)."""

    node_id: str
    iteration: int


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
