"""approve, deny, signal, cancel, pause, rewind and fork on real runs."""

from __future__ import annotations

import time

import anyio
import pytest
from pydantic import BaseModel

from smithers import (
    Approval,
    Parallel,
    Runtime,
    Signal,
    SmithersError,
    Store,
    Task,
    Workflow,
    approve,
    cancel,
    create_smithers,
    deny,
    fork,
    load_workflow,
    pause,
    rewind,
    run_workflow,
    signal,
)
from smithers.principal import Principal
from smithers.queries import list_frames, run_view
from smithers.timetravel import Rewound, rewind_run
from tests.helpers import EXAMPLES, assert_contiguous, event_types, eventually

pytestmark = pytest.mark.anyio


class Note(BaseModel):
    text: str


class Paid(BaseModel):
    amount: int


smithers, outputs = create_smithers(note=Note, paid=Paid)


@smithers
def early_signal(ctx):
    return Workflow(
        "early",
        [
            Approval("gate", request={"title": "go?"}),
            Signal("paid", output=outputs.paid),
            Task("done", output=outputs.note, run=lambda: {"text": "done"}),
        ],
    )


async def test_signal_sent_before_its_node_is_consumed_when_reached(store: Store) -> None:
    parked = await run_workflow(early_signal, store=store)
    assert parked.status == "waiting-approval"
    sent = await signal(store, parked.run_id, "paid", {"amount": 7}, correlation_id=None)
    assert sent["seq"] == 0
    # the signal did not wake the run: nothing waits for it yet
    view = run_view(store, parked.run_id)
    assert view is not None and view["status"] == "waiting-approval"
    await approve(store, parked.run_id, "gate")
    async with Runtime(store) as rt:
        await rt.resume(parked.run_id, early_signal)
        result = await rt.wait(parked.run_id)
    assert result.status == "finished"
    assert result.outputs["paid"] == {"amount": 7}
    assert "NodeWaitingEvent" not in event_types(store, parked.run_id)


async def test_deciding_twice_is_refused(store: Store) -> None:
    parked = await run_workflow(early_signal, store=store)
    decision = await approve(store, parked.run_id, "gate", decided_by="ann")
    assert decision.to_json() == {
        "runId": parked.run_id,
        "nodeId": "gate",
        "iteration": 0,
        "approved": True,
    }
    for again in (approve, deny):
        with pytest.raises(SmithersError) as info:
            await again(store, parked.run_id, "gate")
        assert info.value.code == "ALREADY_DECIDED"
        assert info.value.status == 409


async def test_approving_a_node_that_is_not_waiting(store: Store) -> None:
    parked = await run_workflow(early_signal, store=store)
    for node in ("paid", "done", "nope"):
        with pytest.raises(SmithersError) as info:
            await approve(store, parked.run_id, node)
        assert info.value.code == "NODE_NOT_WAITING"
    with pytest.raises(SmithersError) as info:
        await approve(store, "no-such-run", "gate")
    assert info.value.code == "RUN_NOT_FOUND"


async def test_signal_to_an_ended_run_is_refused(store: Store) -> None:
    result = await run_workflow(load_workflow(EXAMPLES / "hello.py"), store=store)
    with pytest.raises(SmithersError) as info:
        await signal(store, result.run_id, "late", {})
    assert info.value.code == "RUN_NOT_ACTIVE"
    with pytest.raises(SmithersError) as info:
        await signal(store, result.run_id, "  ", {})
    assert info.value.code == "INVALID_REQUEST"


async def test_cancel_stops_the_in_flight_task_within_a_second(store: Store) -> None:
    wf = load_workflow(EXAMPLES / "slow.py")
    async with Runtime(store) as rt:
        run_id = await rt.start(wf, input={"seconds": 60})
        await eventually(lambda: "NodeStarted" in event_types(store, run_id))
        started = time.monotonic()
        assert await cancel(store, run_id) == "cancelled"
        with anyio.fail_after(5):
            result = await rt.wait(run_id)
        elapsed = time.monotonic() - started
        assert not rt.is_live(run_id)
        assert rt.live_run_ids() == []
    assert elapsed < 1.0
    assert result.status == "cancelled"
    types = event_types(store, run_id)
    assert types[-1] == "RunCancelled" and "NodeCancelled" in types
    assert "NodeFinished" not in types
    view = run_view(store, run_id)
    assert view is not None and view["summary"] == {"cancelled": 1}
    assert await cancel(store, run_id) == "already-terminal"
    assert_contiguous(store, run_id)


async def test_pause_parks_after_in_flight_tasks_and_resume_continues(store: Store) -> None:
    gate = anyio.Event()

    async def first() -> dict[str, str]:
        await gate.wait()
        return {"text": "first"}

    @smithers
    def wf(ctx):
        return Workflow(
            "pausing",
            [
                Task("first", output=outputs.note, run=first),
                Task("second", output=outputs.note, run={"text": "second"}),
            ],
        )

    async with Runtime(store) as rt:
        run_id = await rt.start(wf)
        await eventually(lambda: "NodeStarted" in event_types(store, run_id))
        assert await pause(store, run_id) == "pause-requested"
        gate.set()
        paused = await rt.wait(run_id)
        assert paused.status == "paused"
        assert paused.outputs == {"first": {"text": "first"}}
        await rt.resume(run_id, wf)
        result = await rt.wait(run_id)
    assert result.status == "finished"
    assert result.outputs["second"] == {"text": "second"}


async def test_a_pause_outlives_the_process_that_stops_mid_task(store: Store) -> None:
    """`smithers up` on Ctrl-C: pause, then stop without waiting for the task."""
    started = anyio.Event()
    runs = 0

    async def slow() -> dict[str, str]:
        nonlocal runs
        runs += 1
        if runs == 1:
            started.set()
            await anyio.sleep_forever()
        return {"text": "done"}

    @smithers
    def wf(ctx):
        return Workflow("stopping", [Task("slow", output=outputs.note, run=slow)])

    async with Runtime(store) as rt:
        run_id = await rt.start(wf)
        await started.wait()
        assert await pause(store, run_id) == "pause-requested"
    assert run_view(store, run_id)["status"] == "paused"
    async with Runtime(store) as rt:
        await rt.resume(run_id, wf)
        result = await rt.wait(run_id)
    assert result.status == "finished" and result.outputs == {"slow": {"text": "done"}}
    assert_contiguous(store, run_id)


async def test_rewind_forgets_later_nodes_and_runs_them_again(store: Store) -> None:
    wf = load_workflow(EXAMPLES / "approval.py")
    parked = await run_workflow(wf, store=store, input={"msg": "a"})
    await approve(store, parked.run_id, "review", decided_by="bob")
    async with Runtime(store) as rt:
        await rt.resume(parked.run_id, wf)
        done = await rt.wait(parked.run_id)
        assert done.status == "finished"
        frames = list_frames(store, parked.run_id)
        assert [f["frameNo"] for f in frames] == [0]
        result = await rewind(store, parked.run_id, 0, wf, runtime=rt, caller="test")
    assert result is not None and result.status == "finished"
    assert "TimeTravelJumped" in event_types(store, parked.run_id)
    assert_contiguous(store, parked.run_id)


async def test_fork_copies_finished_work_into_a_new_run(store: Store) -> None:
    wf = load_workflow(EXAMPLES / "approval.py")
    parked = await run_workflow(wf, store=store, input={"msg": "f"})
    async with Runtime(store) as rt:
        new_id = await fork(store, parked.run_id, 0, "forked-1", wf, runtime=rt)
        assert new_id == "forked-1"
        child = await rt.wait(new_id)
    assert child.status == "waiting-approval"
    assert child.outputs["draft"] == {"text": "F"}
    types = event_types(store, new_id)
    assert types[:2] == ["RunStarted", "RunForked"]
    assert types.count("NodeStarted") == 0  # the draft was copied, not run again
    with pytest.raises(SmithersError) as info:
        await fork(store, parked.run_id, 0, "forked-1")
    assert info.value.code == "RUN_ALREADY_EXISTS"


@smithers
def three_steps(ctx):
    """One frame per step: each task appears once the one before it has an output."""
    nodes = [Task("one", output=outputs.note, run={"text": "one"})]
    for before, name in (("one", "two"), ("two", "three")):
        if ctx.output_maybe(outputs.note, before) is not None:
            nodes.append(Task(name, output=outputs.note, run={"text": name}))
    return Workflow("three", nodes)


async def test_rewind_counts_what_it_forgets_and_checks_the_caller(store: Store) -> None:
    async with Runtime(store) as rt:
        done = await rt.wait(await rt.start(three_steps, auth={"triggeredBy": "ann"}))
    assert done.status == "finished"
    assert [f["frameNo"] for f in list_frames(store, done.run_id)] == [2, 1, 0]
    with pytest.raises(SmithersError) as info:
        await store.run(rewind_run, store, done.run_id, 0, "eve", Principal(user_id="eve"))
    assert info.value.code == "FORBIDDEN"
    with pytest.raises(SmithersError) as info:
        await store.run(rewind_run, store, done.run_id, 3, "ann", Principal(user_id="ann"))
    assert info.value.code == "INVALID_REQUEST"
    assert len(list_frames(store, done.run_id)) == 3  # nothing was forgotten
    rewound = await store.run(rewind_run, store, done.run_id, 1, "root", Principal(role="admin"))
    assert rewound == Rewound(frame_no=1, deleted_frames=1, deleted_attempts=1)
    view = run_view(store, done.run_id)
    assert view is not None and view["status"] == "running"
    rewound = await store.run(rewind_run, store, done.run_id, 0, "ann", Principal(user_id="ann"))
    assert rewound == Rewound(frame_no=0, deleted_frames=1, deleted_attempts=1)
    with pytest.raises(SmithersError) as info:
        await fork(store, done.run_id, 4)
    assert info.value.code == "INVALID_REQUEST"
    assert_contiguous(store, done.run_id)


async def test_signal_names_are_bounded(store: Store) -> None:
    parked = await run_workflow(early_signal, store=store)
    with pytest.raises(SmithersError) as info:
        await signal(store, parked.run_id, "x" * 257, {})
    assert info.value.code == "INVALID_REQUEST"
    sent = await signal(store, parked.run_id, "x" * 256, {})
    assert sent["signalName"] == "x" * 256


async def test_the_run_is_named_by_its_workflow_node(store: Store) -> None:
    result = await run_workflow(
        load_workflow(EXAMPLES / "bash_echo.py"), store=store, input={"msg": "hi"}
    )
    view = run_view(store, result.run_id)
    assert view is not None and view["workflowName"] == "echo"  # Workflow("echo"), not the file


# -- human input checked when it arrives -------------------------------------------------------


@smithers
def restricted(ctx):
    return Workflow(
        "restricted",
        [
            Approval(
                "ship",
                request={"title": "ship?"},
                allowed_users=["alice"],
                allowed_scopes=["approval:submit"],
            ),
            Task("done", output=outputs.note, run=lambda: {"text": "done"}),
        ],
    )


async def test_a_known_caller_must_be_an_allowed_user_with_an_allowed_scope(
    store: Store,
) -> None:
    parked = await run_workflow(restricted, store=store)
    before = event_types(store, parked.run_id)
    for caller in (
        Principal(user_id="bob", scopes=frozenset({"approval:submit"})),
        Principal(user_id="alice", scopes=frozenset({"run:read"})),
        Principal(user_id=None, scopes=frozenset({"*"})),
    ):
        for decide in (approve, deny):
            with pytest.raises(SmithersError) as info:
                await decide(store, parked.run_id, "ship", caller=caller)
            assert info.value.code == "FORBIDDEN" and info.value.status == 403
    assert event_types(store, parked.run_id) == before  # nothing recorded
    alice = Principal(user_id="alice", role="operator", scopes=frozenset({"*"}))
    assert (await approve(store, parked.run_id, "ship", caller=alice)).approved
    # Without a caller (a surface that knows none) the restriction is not checked.
    other = await run_workflow(restricted, store=store)
    assert (await deny(store, other.run_id, "ship")).approved is False


@smithers
def choices(ctx):
    options = [{"key": "a"}, {"key": "b"}, {"key": 1}]
    return Workflow(
        "choices",
        [
            Parallel(
                [
                    Approval("pick", mode="select", options=options, on_deny="continue"),
                    Approval("order", mode="rank", options=options, on_deny="continue"),
                ]
            )
        ],
    )


async def test_select_and_rank_decisions_name_the_options(store: Store) -> None:
    parked = await run_workflow(choices, store=store)
    before = event_types(store, parked.run_id)
    refused = [
        (approve, "pick", None),
        (approve, "pick", {"selected": "z"}),
        (approve, "pick", {"selected": True}),  # not the option keyed 1
        (deny, "pick", {"selected": "z"}),
        (approve, "order", {"ranked": []}),
        (approve, "order", {"ranked": ["a", "a"]}),
        (approve, "order", {"ranked": ["a", "b", 1, "a"]}),
        (approve, "order", {"ranked": [{"key": "a"}]}),
        (deny, "order", {"ranked": "ab"}),
    ]
    for decide, node, decision in refused:
        with pytest.raises(SmithersError) as info:
            await decide(store, parked.run_id, node, decision=decision)
        assert info.value.code == "INVALID_REQUEST", (node, decision)
    assert event_types(store, parked.run_id) == before
    await approve(store, parked.run_id, "pick", decision={"selected": 1})
    await deny(store, parked.run_id, "order")  # a plain denial carries no choice
    other = await run_workflow(choices, store=store)
    await approve(store, other.run_id, "order", decision={"ranked": [1, "a"]})


async def test_a_signal_payload_is_checked_against_the_model_of_its_node(store: Store) -> None:
    parked = await run_workflow(early_signal, store=store)  # at `gate`; `paid` not reached
    before = event_types(store, parked.run_id)
    for data in ({"amount": "lots"}, {}, [1], "x"):
        with pytest.raises(SmithersError) as info:
            await signal(store, parked.run_id, "paid", data, workflow=early_signal)
        assert info.value.code == "INVALID_REQUEST"
        assert info.value.details["field"] == "data" and info.value.details["errors"]
    assert event_types(store, parked.run_id) == before
    sent = await signal(store, parked.run_id, "paid", {"amount": 2}, workflow=early_signal)
    assert sent["seq"] == 0  # the refused ones used none
    # A workflow this process loaded from its file is found without being passed.
    wf = load_workflow(EXAMPLES / "signal.py")
    waiting = await run_workflow(wf, store=store)
    assert waiting.status == "waiting-event"
    with pytest.raises(SmithersError) as info:
        await signal(store, waiting.run_id, "payment", {"amount": "lots"})
    assert info.value.details["errors"][0]["loc"] == ["amount"]
    # A name no rendered node declares is taken as it is.
    assert (await signal(store, waiting.run_id, "unheard", {"any": 1}))["seq"] == 0
