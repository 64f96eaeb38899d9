"""The Runtime's own lifecycle: what it leaves behind when its block ends."""

from __future__ import annotations

import inspect
import time

import anyio
import pytest
import sqlalchemy as sa

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


async def test_a_task_sees_the_output_of_the_task_before_it_however_late_its_thread_runs(
    store: Store,
) -> None:
    """On PostgreSQL a task's result commits in a worker thread while a render of the run
    (woken by commands sent meanwhile) waits in another thread on the run's row. However
    long the first thread then takes to go on (here it is held up as it hands its connection
    back to the pool), the task that render starts reads the output before it: each of
    sequence.py's tasks reads the one before."""
    wf = load_workflow(EXAMPLES / "sequence.py")

    def late(*_: object) -> None:  # the thread that committed a task's result is slow
        if any(frame.function == "_render_step" for frame in inspect.stack(0)):
            time.sleep(0.05)

    def command(run_ids: list[str]) -> None:
        with store.write() as tx:
            for run_id in run_ids:
                tx.touch(run_id)

    sa.event.listen(store.engine, "checkin", late)
    try:
        async with Runtime(store) as rt, anyio.create_task_group() as tg:
            run_ids = [await rt.start(wf, input={"start": i}) for i in range(4)]

            async def commands() -> None:
                while True:
                    await store.run(command, run_ids)
                    await anyio.sleep(0.005)

            tg.start_soon(commands)
            with anyio.fail_after(60):
                ended = [await rt.wait(run_id) for run_id in run_ids]
            tg.cancel_scope.cancel()
    finally:
        sa.event.remove(store.engine, "checkin", late)
    assert [run.status for run in ended] == ["finished"] * 4


async def test_a_task_that_ends_as_the_runtime_stops_keeps_its_result(store: Store) -> None:
    """A task's end is committed with the render that follows it; when the runtime stops
    in between, the result is still recorded, and a resume does not run the task again."""
    from pydantic import BaseModel

    from smithers import Task, Workflow, create_smithers
    from smithers.store import nodes as nodes_q

    class Out(BaseModel):
        value: int

    smithers, outputs = create_smithers(out=Out)
    runs: list[str] = []
    ended = anyio.Event()

    async def first() -> dict[str, int]:
        runs.append("first")
        ended.set()  # the block below ends, maybe before the driver renders again
        return {"value": 1}

    gate = anyio.Event()

    async def second() -> dict[str, int]:
        await gate.wait()
        return {"value": 2}

    @smithers
    def wf(ctx):
        return Workflow(
            "two", [Task("first", output=outputs.out, run=first), Task("second", run=second)]
        )

    async with Runtime(store) as rt:
        run_id = await rt.start(wf)
        await ended.wait()
    with store.read() as conn:
        node = nodes_q.load_node_tables(conn, run_id).nodes[("first", 0)]
    assert node.state == "finished"
    assert event_types(store, run_id).count("NodeFinished") == 1
    gate.set()
    async with Runtime(store) as rt:
        await rt.resume(run_id, wf)
        result = await rt.wait(run_id)
    assert result.status == "finished" and result.outputs["first"] == {"value": 1}
    assert runs == ["first"]
