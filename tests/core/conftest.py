"""Fixtures of the core tests: a real task context whose run log is a list."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smithers.tasks import TaskContext, current_task

Events = list[tuple[str, dict[str, Any]]]


@pytest.fixture
def events() -> Events:
    return []


@pytest.fixture
def tctx(tmp_path: Path, events: Events) -> Iterator[TaskContext]:
    """The current task's context (as tools see it), rooted in `tmp_path`."""
    ctx = TaskContext(
        run_id="run-1",
        node_id="node-1",
        iteration=0,
        attempt=1,
        root_dir=str(tmp_path),
        allow_network=False,
        emit=lambda type_, **fields: events.append((type_, fields)),
    )
    token = current_task.set(ctx)
    yield ctx
    current_task.reset(token)
