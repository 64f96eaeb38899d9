"""What a running task can reach: its identity, the sandbox settings, and its output log."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

current_task: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar(
    "smithers_current_task", default=None
)


@dataclass(eq=False)
class TaskContext:
    """Given to a task's `run(tctx)` when it takes one argument; also found by tools."""

    run_id: str
    node_id: str
    iteration: int
    attempt: int
    root_dir: str
    allow_network: bool
    emit: Callable[..., None]
    cancelled: threading.Event = field(default_factory=threading.Event)

    def log(self, text: str, stream: str = "stdout") -> None:
        """Append a `NodeOutput` event with one line of this task's output."""
        self.emit(
            "NodeOutput",
            nodeId=self.node_id,
            iteration=self.iteration,
            text=text,
            stream=stream,
        )

    def event(self, type_: str, **fields: Any) -> None:
        self.emit(type_, **fields)
