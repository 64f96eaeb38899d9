"""RunResult: how a run stands when `run_workflow` / `Runtime.wait` returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunResult:
    """How a run stands when `run_workflow` / `Runtime.wait` returns."""

    run_id: str
    status: str
    error: Any = None
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status == "finished"
