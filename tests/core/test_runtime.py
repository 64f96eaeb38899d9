"""The Runtime's own lifecycle: what it leaves behind when its block ends."""

from __future__ import annotations

import anyio
import pytest

from smithers import Runtime, Store, load_workflow
from smithers.queries import get_run
from tests.helpers import EXAMPLES, event_types, eventually

pytestmark = pytest.mark.anyio


async def test_a_runtime_cancelled_from_outside_lets_its_runs_go(store: Store) -> None:
    """Ctrl-C cancels the block a runtime runs in: its runs are released (resumable at
    once by another process), not left owned until their heartbeat goes stale."""
    wf = load_workflow(EXAMPLES / "slow.py")
    with anyio.CancelScope() as outside:
        async with Runtime(store) as rt:
            run_id = await rt.start(wf, input={"seconds": 60})
            await eventually(lambda: "NodeStarted" in event_types(store, run_id))
            outside.cancel()
            await anyio.sleep(60)
    assert outside.cancelled_caught
    run = get_run(store, run_id)
    assert run is not None and run.status == "running" and run.runtime_owner_id is None
