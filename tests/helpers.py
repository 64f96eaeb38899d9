"""Paths and small checks shared by the tests."""

from __future__ import annotations

from pathlib import Path

import anyio

from smithers import Store
from smithers.store import log as log_q

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def event_types(store: Store, run_id: str) -> list[str]:
    with store.read() as conn:
        return [e.type for e in log_q.events_after(conn, run_id, -1, limit=100_000)]


def assert_contiguous(store: Store, run_id: str) -> None:
    with store.read() as conn:
        seqs = [e.seq for e in log_q.events_after(conn, run_id, -1, limit=100_000)]
    assert seqs == list(range(len(seqs)))


async def eventually(check: object, timeout: float = 10.0) -> None:
    """Wait until `check()` is truthy (a state reached by another task or process)."""
    with anyio.fail_after(timeout):
        while not check():  # type: ignore[operator]
            await anyio.sleep(0.02)
