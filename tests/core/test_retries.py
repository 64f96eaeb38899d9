"""retry_task on real runs: a failed run goes on with the failed task and the tasks its
failure cut short, each as a new attempt; a live run's owner runs the task again."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from pydantic import BaseModel

from smithers import (
    Parallel,
    Runtime,
    SmithersError,
    Store,
    Task,
    Workflow,
    create_smithers,
    pause,
    retry_task,
)
from smithers.store import node_reads
from tests.helpers import assert_contiguous, event_types, eventually

pytestmark = pytest.mark.anyio


class Note(BaseModel):
    text: str


smithers, outputs = create_smithers(retried_note=Note)


def attempts(store: Store, run_id: str) -> list[tuple[str, int, str]]:
    with store.read() as conn:
        found = node_reads.list_attempts(conn, run_id)
    return sorted((a["nodeId"], a["attempt"], a["state"]) for a in found)


async def test_a_failed_run_goes_on_with_the_tasks_its_failure_cut_short(store: Store) -> None:
    calls = {"bad": 0}
    release = anyio.Event()

    def bad() -> dict[str, str]:
        calls["bad"] += 1
        if calls["bad"] == 1:
            raise RuntimeError("first time")
        return {"text": "bad, then good"}

    async def long() -> dict[str, str]:
        await release.wait()
        return {"text": "long"}

    @smithers
    def wf(ctx):
        return Workflow(
            "cut-short",
            [
                Parallel(
                    [
                        Task("bad", output=outputs.retried_note, run=bad),
                        Task("long", output=outputs.retried_note, run=long),
                    ]
                ),
                Task("after", output=outputs.retried_note, run={"text": "after"}),
            ],
        )

    async with Runtime(store) as rt:
        run_id = await rt.start(wf)
        failed = await rt.wait(run_id)
        assert failed.status == "failed"
        assert attempts(store, run_id) == [("bad", 1, "failed"), ("long", 1, "cancelled")]

        retried = await retry_task(store, run_id, "bad")
        assert (retried.node_id, retried.iteration, retried.attempt) == ("bad", 0, 2)
        release.set()
        await rt.resume(run_id, wf, adopt=True)
        result = await rt.wait(run_id)

    assert result.status == "finished"
    assert result.outputs["bad"] == {"text": "bad, then good"}
    assert attempts(store, run_id) == [
        ("after", 1, "finished"),
        ("bad", 1, "failed"),
        ("bad", 2, "finished"),
        ("long", 1, "cancelled"),
        ("long", 2, "finished"),
    ]
    types = event_types(store, run_id)
    assert types.count("NodeRetrying") == 2 and types[-1] == "RunFinished"
    assert_contiguous(store, run_id)


def tolerant(name: str, *after: Task) -> tuple[Any, dict[str, int], anyio.Event]:
    """A run whose `soft` task fails once (tolerated), then a `wait` task held by the gate
    (then `after`): the workflow, the count of `soft`'s calls, the gate."""
    calls = {"soft": 0}
    gate = anyio.Event()

    def soft() -> dict[str, str]:
        calls["soft"] += 1
        if calls["soft"] == 1:
            raise RuntimeError("tolerated")
        return {"text": "soft"}

    async def wait() -> dict[str, str]:
        await gate.wait()
        return {"text": "waited"}

    @smithers
    def wf(ctx):
        return Workflow(
            name,
            [
                Task("soft", output=outputs.retried_note, run=soft, continue_on_fail=True),
                Task("wait", output=outputs.retried_note, run=wait),
                *after,
            ],
        )

    return wf, calls, gate


async def test_a_tolerated_failure_is_retried_by_the_live_owner(store: Store) -> None:
    wf, calls, gate = tolerant("tolerant")

    async with Runtime(store) as rt:
        run_id = await rt.start(wf)
        await eventually(lambda: event_types(store, run_id).count("NodeStarted") == 2)
        await retry_task(store, run_id, "soft")
        await eventually(lambda: calls["soft"] == 2)
        gate.set()
        result = await rt.wait(run_id)
    assert result.status == "finished"
    assert result.outputs["soft"] == {"text": "soft"}
    assert attempts(store, run_id) == [
        ("soft", 1, "failed"),
        ("soft", 2, "finished"),
        ("wait", 1, "finished"),
    ]
    assert_contiguous(store, run_id)


async def test_a_paused_run_stays_paused_until_resumed(store: Store) -> None:
    last = Task("last", output=outputs.retried_note, run={"text": "last"})
    wf, calls, gate = tolerant("paused-retry", last)

    async with Runtime(store) as rt:
        run_id = await rt.start(wf)
        await eventually(lambda: event_types(store, run_id).count("NodeStarted") == 2)
        await pause(store, run_id)
        gate.set()
        assert (await rt.wait(run_id)).status == "paused"
        await retry_task(store, run_id, "soft")
        assert (await rt.wait(run_id)).status == "paused" and calls["soft"] == 1
        await rt.resume(run_id, wf)
        result = await rt.wait(run_id)
    assert result.status == "finished" and calls["soft"] == 2
    assert_contiguous(store, run_id)


async def test_ended_runs_are_refused(store: Store) -> None:
    @smithers
    def wf(ctx):
        return Workflow(
            "refusals",
            [Task("ok", output=outputs.retried_note, run={"text": "ok"})],
        )

    async with Runtime(store) as rt:
        run_id = await rt.start(wf)
        assert (await rt.wait(run_id)).status == "finished"
    with pytest.raises(SmithersError) as refused:
        await retry_task(store, run_id, "ok")
    assert refused.value.code == "RUN_NOT_ACTIVE"
    with pytest.raises(SmithersError) as missing:
        await retry_task(store, "smi_nope", "ok")
    assert missing.value.code == "RUN_NOT_FOUND"
