"""What one render decided: tasks ready to start, bookkeeping to commit, what is awaited."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..definition import OutputRef
from ..nodes import Task
from .actions import Action

WaitKind = Literal["approval", "event", "timer"]


@dataclass(frozen=True, slots=True)
class ReadyTask:
    task: Task
    iteration: int
    output: OutputRef | None
    attempt: int


@dataclass(frozen=True, slots=True)
class Wait:
    """A node waiting on something outside the engine's hands."""

    kind: WaitKind
    node_id: str
    iteration: int


@dataclass(frozen=True, slots=True)
class Failure:
    """Why the run fails: a node's error (`node_id` is empty for the run as a whole)."""

    node_id: str
    iteration: int
    error: Any


@dataclass
class Plan:
    ready: list[ReadyTask] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    waiting: list[Wait] = field(default_factory=list)
    running: int = 0
    failed: list[Failure] = field(default_factory=list)
    next_fire_ms: int | None = None
    done: bool = False

    def wait_on(
        self, kind: WaitKind, node_id: str, iteration: int, fires_at: int | None = None
    ) -> None:
        self.waiting.append(Wait(kind, node_id, iteration))
        if fires_at is not None:
            self.next_fire_ms = (
                fires_at if self.next_fire_ms is None else min(self.next_fire_ms, fires_at)
            )
