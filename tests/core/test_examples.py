"""Every example runs to its documented end through the real engine and store."""

from __future__ import annotations

from pathlib import Path

import pytest

from smithers import (
    Runtime,
    Store,
    approve,
    deny,
    load_workflow,
    run_workflow,
    signal,
)
from tests.helpers import EXAMPLES, assert_contiguous, event_types, eventually

pytestmark = pytest.mark.anyio


async def test_hello(store: Store) -> None:
    result = await run_workflow(
        load_workflow(EXAMPLES / "hello.py"), input={"name": "Ada"}, store=store
    )
    assert result.status == "finished"
    assert result.outputs == {"greet": {"message": "Hello, Ada!"}}
    types = [t for t in event_types(store, result.run_id)]
    assert types[0] == "RunStarted" and types[-1] == "RunFinished"
    assert types.count("RunFinished") == 1
    assert_contiguous(store, result.run_id)


async def test_sequence_reads_previous_outputs(store: Store) -> None:
    result = await run_workflow(
        load_workflow(EXAMPLES / "sequence.py"), input={"start": 5}, store=store
    )
    assert result.status == "finished"
    assert [result.outputs[n]["value"] for n in ("one", "two", "three")] == [5, 6, 7]
    starts = [t for t in event_types(store, result.run_id) if t == "NodeStarted"]
    assert len(starts) == 3


async def test_parallel_respects_max_concurrency(store: Store) -> None:
    result = await run_workflow(load_workflow(EXAMPLES / "parallel.py"), store=store)
    assert result.status == "finished"
    assert result.outputs["sum"] == {"total": len("alpha") + len("beta") + len("gamma")}
    running = peak = 0
    for kind in event_types(store, result.run_id):
        if kind == "NodeStarted":
            running += 1
            peak = max(peak, running)
        elif kind in ("NodeFinished", "NodeFailed"):
            running -= 1
    assert peak == 2


async def test_approval_parks_then_approve_resumes(store: Store) -> None:
    wf = load_workflow(EXAMPLES / "approval.py")
    mine: set[str] = set()
    async with Runtime(store, resolve=lambda run: wf if run.run_id in mine else None) as rt:
        run_id = await rt.start(wf, input={"msg": "ship"})
        mine.add(run_id)
        parked = await rt.wait(run_id)
        assert parked.status == "waiting-approval"
        assert not rt.is_live(run_id)
        await approve(store, run_id, "review", decided_by="alice", note="ok")
        # the runtime adopts the released run by itself
        await eventually(lambda: rt.result(run_id).status == "finished")
        result = rt.result(run_id)
    assert result.outputs["ship"] == {"text": "SHIP", "approved_by": "alice"}
    types = event_types(store, run_id)
    assert "ApprovalRequested" in types and "ApprovalGranted" in types
    assert_contiguous(store, run_id)


async def test_approval_denied_fails_the_run(store: Store) -> None:
    wf = load_workflow(EXAMPLES / "approval.py")
    parked = await run_workflow(wf, store=store)
    await deny(store, parked.run_id, "review", note="no")
    async with Runtime(store) as rt:
        await rt.resume(parked.run_id, wf)
        result = await rt.wait(parked.run_id)
    assert result.status == "failed"
    assert result.error["code"] == "APPROVAL_DENIED"
    assert "ship" not in result.outputs


async def test_signal_resumes_with_its_data(store: Store) -> None:
    wf = load_workflow(EXAMPLES / "signal.py")
    parked = await run_workflow(wf, store=store)
    assert parked.status == "waiting-event"
    sent = await signal(store, parked.run_id, "payment", {"amount": 42})
    assert sent["signalName"] == "payment" and sent["seq"] == 0
    async with Runtime(store) as rt:
        await rt.resume(parked.run_id, wf)
        result = await rt.wait(parked.run_id)
    assert result.status == "finished"
    assert result.outputs["receipt"] == {"text": "paid 42"}


async def test_loop_iterates_until_done(store: Store) -> None:
    result = await run_workflow(
        load_workflow(EXAMPLES / "loop.py"), input={"length": 3}, store=store
    )
    assert result.status == "finished"
    assert result.outputs["refine"] == {"text": "xxx"}
    starts = [t for t in event_types(store, result.run_id) if t == "NodeStarted"]
    assert len(starts) == 3


async def test_retry_fails_twice_then_succeeds(store: Store, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    result = await run_workflow(
        load_workflow(EXAMPLES / "retry.py"), input={"counter": str(counter)}, store=store
    )
    assert result.status == "finished"
    assert result.outputs["flaky"] == {"attempts": 3}
    types = [t for t in event_types(store, result.run_id)]
    assert types.count("NodeRetrying") == 2 and types.count("NodeFailed") == 2


async def test_failing_fails_with_the_task_error(store: Store) -> None:
    result = await run_workflow(load_workflow(EXAMPLES / "failing.py"), store=store)
    assert result.status == "failed"
    assert "this task always fails" in result.error["message"]
    assert result.error["nodeId"] == "explode"
    types = [t for t in event_types(store, result.run_id)]
    assert types[-1] == "RunFailed" and "NodeFailed" in types
