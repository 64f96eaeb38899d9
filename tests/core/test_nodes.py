"""Every node kind on real runs: ordering, concurrency, branches, loops, task options,
approvals, signals, timers, and the errors a render can make."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from pydantic import BaseModel

from smithers import (
    Approval,
    Branch,
    Loop,
    Parallel,
    RunResult,
    Runtime,
    Sequence,
    Signal,
    SmithersError,
    SmithersWorkflow,
    Store,
    Task,
    Timer,
    WaitForEvent,
    Workflow,
    approve,
    create_smithers,
    deny,
    run_workflow,
    signal,
)
from smithers.store import log as log_q
from smithers.store import nodes as nodes_q
from tests.helpers import assert_contiguous, event_types, eventually

pytestmark = pytest.mark.anyio


class Text(BaseModel):
    text: str


class Num(BaseModel):
    n: int


class Review(BaseModel):
    approved: bool
    note: str | None = None
    decidedBy: str | None = None  # the decision's own key
    decision: dict[str, Any] | None = None


class Payment(BaseModel):
    amount: int


# One key -> model mapping for the whole module: on PostgreSQL every test of a module
# shares a schema, so an output table must keep its shape from test to test.
smithers, outputs = create_smithers(text=Text, num=Num, review=Review, payment=Payment)

TERMINAL = ("finished", "failed", "cancelled")


# -- helpers ---------------------------------------------------------------------------------


def new_run_id() -> str:
    return "nodes_" + secrets.token_hex(6)


def events(store: Store, run_id: str, type_: str | None = None) -> list[dict[str, Any]]:
    with store.read() as conn:
        found = [e.payload for e in log_q.events_after(conn, run_id, -1, limit=100_000)]
    return [e for e in found if type_ is None or e["type"] == type_]


def node_state(store: Store, run_id: str, node_id: str, iteration: int = 0) -> str | None:
    with store.read() as conn:
        rec = nodes_q.get_node(conn, run_id, node_id, iteration)
    return None if rec is None else rec.state


def text_task(node_id: str, text: str | None = None, calls: list[str] | None = None) -> Task:
    """A task that records that it ran (in `calls`) and outputs `text` (its id by default)."""

    def run() -> dict[str, str]:
        if calls is not None:
            calls.append(node_id)
        return {"text": text or node_id}

    return Task(node_id, output=outputs.text, run=run)


async def resume(store: Store, run_id: str, wf: SmithersWorkflow) -> RunResult:
    """Claim a released or parked run in a fresh runtime and drive it until it stops."""
    async with Runtime(store) as rt:
        await rt.resume(run_id, wf)
        return await rt.wait(run_id)


async def adopt_until_done(store: Store, run_id: str, wf: SmithersWorkflow) -> RunResult:
    """A runtime with a resolver (for this run only) that adopts the run when it is due."""

    def resolve(run: Any) -> SmithersWorkflow | None:
        return wf if run.run_id == run_id else None

    async with Runtime(store, resolve=resolve, poll_interval=0.05) as rt:
        await eventually(lambda: rt.result(run_id).status in TERMINAL, timeout=5)
        return rt.result(run_id)


async def assert_engine_still_works(store: Store) -> None:
    @smithers
    def healthy(ctx: Any) -> Workflow:
        return Workflow("healthy", [Task("ok", output=outputs.text, run={"text": "fine"})])

    result = await run_workflow(healthy, store=store)
    assert result.status == "finished"
    assert result.outputs == {"ok": {"text": "fine"}}


# -- Sequence, Parallel, Branch --------------------------------------------------------------


async def test_sequence_runs_children_in_order(store: Store) -> None:
    calls: list[str] = []

    @smithers
    def wf(ctx: Any) -> Workflow:
        return Workflow(
            "seq",
            [
                text_task("first", calls=calls),
                Sequence([text_task("second", calls=calls), text_task("third", calls=calls)]),
                text_task("fourth", calls=calls),
            ],
        )

    result = await run_workflow(wf, store=store)
    assert result.status == "finished"
    assert calls == ["first", "second", "third", "fourth"]
    lifecycle = [
        (e["type"], e["nodeId"])
        for e in events(store, result.run_id)
        if e["type"] in ("NodeStarted", "NodeFinished")
    ]
    # each task starts only after the previous one finished
    assert lifecycle == [
        (kind, node)
        for node in ("first", "second", "third", "fourth")
        for kind in ("NodeStarted", "NodeFinished")
    ]
    assert_contiguous(store, result.run_id)


async def test_parallel_runs_children_concurrently(store: Store) -> None:
    a_started, b_started = anyio.Event(), anyio.Event()

    async def a() -> dict[str, str]:
        a_started.set()
        await b_started.wait()  # only returns if b runs at the same time
        return {"text": "a"}

    async def b() -> dict[str, str]:
        b_started.set()
        await a_started.wait()
        return {"text": "b"}

    @smithers
    def wf(ctx: Any) -> Workflow:
        return Workflow(
            "par",
            [
                Parallel(
                    [
                        Task("a", output=outputs.text, run=a, timeout_ms=1000),
                        Task("b", output=outputs.text, run=b, timeout_ms=1000),
                    ]
                ),
                Task("after", output=outputs.text, run={"text": "after"}),
            ],
        )

    result = await run_workflow(wf, store=store)
    assert result.status == "finished", result.error
    assert result.outputs == {"a": {"text": "a"}, "b": {"text": "b"}, "after": {"text": "after"}}


async def test_parallel_max_concurrency_one_serialises(store: Store) -> None:
    active = 0
    peak = 0
    order: list[str] = []

    def make(name: str) -> Callable[[], Any]:
        async def run() -> dict[str, str]:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            order.append(name)
            await anyio.sleep(0.03)
            active -= 1
            return {"text": name}

        return run

    @smithers
    def wf(ctx: Any) -> Workflow:
        return Workflow(
            "serial",
            [
                Parallel(
                    [Task(n, output=outputs.text, run=make(n)) for n in ("a", "b", "c")],
                    max_concurrency=1,
                )
            ],
        )

    result = await run_workflow(wf, store=store)
    assert result.status == "finished"
    assert peak == 1
    assert sorted(order) == ["a", "b", "c"]
    kinds = [e for e in event_types(store, result.run_id) if e in ("NodeStarted", "NodeFinished")]
    assert kinds == ["NodeStarted", "NodeFinished"] * 3


@pytest.mark.parametrize(("go", "taken", "not_taken"), [(True, "yes", "no"), (False, "no", "yes")])
async def test_branch_picks_then_or_else(
    store: Store, go: bool, taken: str, not_taken: str
) -> None:
    calls: list[str] = []

    @smithers
    def wf(ctx: Any) -> Workflow:
        return Workflow(
            "branch",
            [
                Branch(
                    ctx.input["go"],
                    then=text_task("yes", calls=calls),
                    else_=[text_task("no", calls=calls)],
                ),
                text_task("after", calls=calls),
            ],
        )

    result = await run_workflow(wf, input={"go": go}, store=store)
    assert result.status == "finished"
    assert calls == [taken, "after"]
    assert set(result.outputs) == {taken, "after"}
    assert node_state(store, result.run_id, not_taken) is None


# -- Loop --------------------------------------------------------------------------------------


async def test_loop_runs_until_condition(store: Store) -> None:
    @smithers
    def wf(ctx: Any) -> Workflow:
        done = len(ctx.outputs(outputs.num)) >= 3
        return Workflow(
            "loop",
            [
                Loop(
                    "grow",
                    until=done,
                    max_iterations=10,
                    children=[Task("step", output=outputs.num, run={"n": ctx.iteration})],
                ),
                Task("after", output=outputs.text, run={"text": "after"}),
            ],
        )

    result = await run_workflow(wf, store=store)
    assert result.status == "finished"
    assert result.outputs["step"] == {"n": 2}
    started = events(store, result.run_id, "NodeStarted")
    assert [(e["nodeId"], e["iteration"]) for e in started] == [
        ("step", 0),
        ("step", 1),
        ("step", 2),
        ("after", 0),
    ]


async def test_loop_max_iterations_fail(store: Store) -> None:
    @smithers
    def wf(ctx: Any) -> Workflow:
        return Workflow(
            "forever",
            [
                Loop(
                    "spin",
                    until=False,
                    max_iterations=3,
                    on_max_reached="fail",
                    children=[Task("step", output=outputs.num, run={"n": ctx.iteration})],
                ),
                Task("after", output=outputs.text, run={"text": "never"}),
            ],
        )

    result = await run_workflow(wf, store=store)
    assert result.status == "failed"
    assert result.error["code"] == "LOOP_MAX_ITERATIONS"
    assert result.error["nodeId"] == "spin"
    assert "after" not in result.outputs
    started = events(store, result.run_id, "NodeStarted")
    assert [e["iteration"] for e in started] == [0, 1, 2]
    assert event_types(store, result.run_id)[-1] == "RunFailed"


async def test_loop_max_iterations_return_last(store: Store) -> None:
    @smithers
    def wf(ctx: Any) -> Workflow:
        return Workflow(
            "bounded",
            [
                Loop(
                    "spin",
                    until=False,
                    max_iterations=2,
                    children=[Task("step", output=outputs.num, run={"n": ctx.iteration})],
                ),
                Task("after", output=outputs.text, run={"text": "after"}),
            ],
        )

    result = await run_workflow(wf, store=store)
    assert result.status == "finished"
    assert result.outputs == {"step": {"n": 1}, "after": {"text": "after"}}


# -- Task options ------------------------------------------------------------------------------


async def test_task_skip_if(store: Store) -> None:
    calls: list[str] = []

    @smithers
    def wf(ctx: Any) -> Workflow:
        skipped = text_task("maybe", calls=calls)
        skipped.skip_if = True
        return Workflow("skip", [skipped, text_task("after", calls=calls)])

    result = await run_workflow(wf, store=store)
    assert result.status == "finished"
    assert calls == ["after"]
    assert "maybe" not in result.outputs
    assert node_state(store, result.run_id, "maybe") == "skipped"
    assert [e["nodeId"] for e in events(store, result.run_id, "NodeSkipped")] == ["maybe"]
    assert all(e["nodeId"] != "maybe" for e in events(store, result.run_id, "NodeStarted"))


@pytest.mark.parametrize("tolerate", [True, False])
async def test_task_continue_on_fail(store: Store, tolerate: bool) -> None:
    def explode() -> None:
        raise RuntimeError("kaboom")

    @smithers
    def wf(ctx: Any) -> Workflow:
        return Workflow(
            "tolerant",
            [
                Task("bad", output=outputs.text, run=explode, continue_on_fail=tolerate),
                Task("after", output=outputs.text, run={"text": "after"}),
            ],
        )

    result = await run_workflow(wf, store=store)
    assert node_state(store, result.run_id, "bad") == "failed"
    assert len(events(store, result.run_id, "NodeFailed")) == 1
    if tolerate:
        assert result.status == "finished"
        assert result.outputs == {"after": {"text": "after"}}
    else:
        assert result.status == "failed"
        assert "kaboom" in result.error["message"]
        assert "after" not in result.outputs


async def test_task_timeout(store: Store) -> None:
    async def slow() -> dict[str, str]:
        await anyio.sleep(10)
        return {"text": "late"}

    @smithers
    def wf(ctx: Any) -> Workflow:
        return Workflow("slow", [Task("slow", output=outputs.text, run=slow, timeout_ms=50)])

    started = time.monotonic()
    result = await run_workflow(wf, store=store)
    assert time.monotonic() - started < 2
    assert result.status == "failed"
    assert result.error["code"] == "TASK_TIMEOUT"
    assert result.error["nodeId"] == "slow"
    failed = events(store, result.run_id, "NodeFailed")
    assert [e["error"]["code"] for e in failed] == ["TASK_TIMEOUT"]


async def test_task_retries_exhausted(store: Store) -> None:
    attempts: list[int] = []

    def flaky(tctx: Any) -> None:
        attempts.append(tctx.attempt)
        raise ValueError(f"attempt {tctx.attempt} failed")

    @smithers
    def wf(ctx: Any) -> Workflow:
        return Workflow(
            "flaky",
            [Task("flaky", output=outputs.text, run=flaky, retries=2, retry_backoff_ms=1)],
        )

    result = await run_workflow(wf, store=store)
    assert result.status == "failed"
    assert attempts == [1, 2, 3]
    assert "attempt 3 failed" in result.error["message"]
    assert [e["attempt"] for e in events(store, result.run_id, "NodeRetrying")] == [2, 3]
    assert [e["attempt"] for e in events(store, result.run_id, "NodeStarted")] == [1, 2, 3]
    assert len(events(store, result.run_id, "NodeFailed")) == 3


async def test_task_logs_become_node_output_events(store: Store) -> None:
    def chatty(tctx: Any) -> dict[str, str]:
        tctx.log("hello")
        tctx.log("oops", stream="stderr")
        return {"text": "done"}

    @smithers
    def wf(ctx: Any) -> Workflow:
        return Workflow("chatty", [Task("chatty", output=outputs.text, run=chatty)])

    result = await run_workflow(wf, store=store)
    assert result.status == "finished"
    lines = [
        (e["nodeId"], e["text"], e["stream"]) for e in events(store, result.run_id, "NodeOutput")
    ]
    assert lines == [("chatty", "hello", "stdout"), ("chatty", "oops", "stderr")]


@pytest.mark.parametrize("approved", [True, False])
async def test_task_needs_approval(store: Store, approved: bool) -> None:
    calls: list[str] = []

    @smithers
    def wf(ctx: Any) -> Workflow:
        gated = text_task("deploy", calls=calls)
        gated.needs_approval = True
        return Workflow("gated", [gated])

    parked = await run_workflow(wf, store=store)
    assert parked.status == "waiting-approval"
    assert calls == []
    assert node_state(store, parked.run_id, "deploy") == "waiting-approval"
    assert "ApprovalRequested" in event_types(store, parked.run_id)

    if approved:
        await approve(store, parked.run_id, "deploy", decided_by="alice")
    else:
        await deny(store, parked.run_id, "deploy", note="not today")
    result = await resume(store, parked.run_id, wf)
    if approved:
        assert result.status == "finished"
        assert calls == ["deploy"]
        assert result.outputs == {"deploy": {"text": "deploy"}}
    else:
        assert result.status == "failed"
        assert result.error["code"] == "APPROVAL_DENIED"
        assert calls == []
    assert_contiguous(store, parked.run_id)


# -- Approval ----------------------------------------------------------------------------------


def gate_workflow(on_deny: str, calls: list[str]) -> SmithersWorkflow:
    @smithers
    def wf(ctx: Any) -> Workflow:
        return Workflow(
            "gate",
            [
                Approval(
                    "gate",
                    request={"title": "Go on?"},
                    on_deny=on_deny,  # type: ignore[arg-type]
                    children=[text_task("inside", calls=calls)],
                ),
                text_task("after", calls=calls),
            ],
        )

    return wf


@pytest.mark.parametrize(
    ("on_deny", "status", "gate_state", "ran"),
    [
        ("continue", "finished", "finished", ["after"]),
        ("skip", "finished", "skipped", ["after"]),
        ("fail", "failed", "failed", []),
    ],
)
async def test_approval_on_deny(
    store: Store, on_deny: str, status: str, gate_state: str, ran: list[str]
) -> None:
    calls: list[str] = []
    wf = gate_workflow(on_deny, calls)
    parked = await run_workflow(wf, store=store)
    assert parked.status == "waiting-approval"
    await deny(store, parked.run_id, "gate", note="no")
    result = await resume(store, parked.run_id, wf)
    assert result.status == status
    assert calls == ran
    assert node_state(store, parked.run_id, "gate") == gate_state
    assert node_state(store, parked.run_id, "inside") is None
    assert "ApprovalDenied" in event_types(store, parked.run_id)
    if status == "failed":
        assert result.error["code"] == "APPROVAL_DENIED"
        assert result.error["nodeId"] == "gate"


async def test_approval_children_render_only_after_approval(store: Store) -> None:
    calls: list[str] = []
    wf = gate_workflow("fail", calls)
    parked = await run_workflow(wf, store=store)
    assert parked.status == "waiting-approval"
    with store.read() as conn:
        frame = log_q.list_frames(conn, parked.run_id, limit=1)[0]
    assert '"tag":"approval"' in frame.xml_json
    assert '"inside"' not in frame.xml_json
    assert node_state(store, parked.run_id, "inside") is None

    await approve(store, parked.run_id, "gate")
    result = await resume(store, parked.run_id, wf)
    assert result.status == "finished"
    assert calls == ["inside", "after"]
    with store.read() as conn:
        frame = log_q.list_frames(conn, parked.run_id, limit=1)[0]
    assert '"inside"' in frame.xml_json


async def test_approval_auto_approve(store: Store) -> None:
    calls: list[str] = []

    @smithers
    def wf(ctx: Any) -> Workflow:
        return Workflow(
            "auto",
            [
                Approval(
                    "gate",
                    request={"title": "Auto"},
                    auto_approve=True,
                    children=[text_task("inside", calls=calls)],
                )
            ],
        )

    result = await run_workflow(wf, store=store)
    assert result.status == "finished"
    assert calls == ["inside"]
    types = event_types(store, result.run_id)
    assert "ApprovalAutoApproved" in types
    statuses = [e["status"] for e in events(store, result.run_id, "RunStatusChanged")]
    assert "waiting-approval" not in statuses


def select_workflow(seen: list[Any]) -> SmithersWorkflow:
    @smithers
    def wf(ctx: Any) -> Workflow:
        decision = ctx.approval("pick")
        seen.append(decision)
        return Workflow(
            "select",
            [
                Approval(
                    "pick",
                    request={"title": "Which one?"},
                    mode="select",
                    options=[{"key": "a", "label": "A"}, {"key": "b", "label": "B"}],
                    children=[
                        Task(
                            "use",
                            output=outputs.text,
                            run=lambda: {"text": ctx.approval("pick").decision["selected"]},
                        )
                    ],
                )
            ],
        )

    return wf


async def test_approval_select_stores_decision_verbatim(store: Store) -> None:
    seen: list[Any] = []
    wf = select_workflow(seen)
    parked = await run_workflow(wf, store=store)
    assert parked.status == "waiting-approval"
    decision = {"selected": "b", "why": "cheaper"}
    await approve(store, parked.run_id, "pick", decision=decision, decided_by="bob")
    result = await resume(store, parked.run_id, wf)
    assert result.status == "finished"
    assert result.outputs == {"use": {"text": "b"}}
    assert seen[-1].approved is True
    assert seen[-1].decision == decision
    assert seen[-1].decided_by == "bob"
    granted = events(store, parked.run_id, "ApprovalGranted")
    assert granted[0]["decision"] == decision


async def test_approval_select_rejects_unknown_key(store: Store) -> None:
    wf = select_workflow([])
    parked = await run_workflow(wf, store=store)
    with pytest.raises(SmithersError) as info:
        await approve(store, parked.run_id, "pick", decision={"selected": "zzz"})
    assert info.value.code == "INVALID_REQUEST"
    # nothing was recorded: the node still waits and a valid choice is accepted
    assert node_state(store, parked.run_id, "pick") == "waiting-approval"
    assert "ApprovalGranted" not in event_types(store, parked.run_id)
    await approve(store, parked.run_id, "pick", decision={"selected": "a"})
    result = await resume(store, parked.run_id, wf)
    assert result.outputs == {"use": {"text": "a"}}


async def test_approval_output_stores_decision_row(store: Store) -> None:
    @smithers
    def wf(ctx: Any) -> Workflow:
        return Workflow(
            "reviewed",
            [
                Approval("review", request={"title": "Review"}, output=outputs.review),
                Task(
                    "after",
                    output=outputs.text,
                    run=lambda: {"text": ctx.output(outputs.review, "review").note or ""},
                ),
            ],
        )

    parked = await run_workflow(wf, store=store)
    assert parked.status == "waiting-approval"
    await approve(
        store, parked.run_id, "review", note="lgtm", decided_by="alice", decision={"k": 1}
    )
    result = await resume(store, parked.run_id, wf)
    assert result.status == "finished"
    assert result.outputs["review"] == {
        "approved": True,
        "note": "lgtm",
        "decidedBy": "alice",
        "decision": {"k": 1},
    }
    assert result.outputs["after"] == {"text": "lgtm"}


# -- Signal and WaitForEvent -------------------------------------------------------------------


def payment_workflow() -> SmithersWorkflow:
    @smithers
    def wf(ctx: Any) -> Workflow:
        return Workflow(
            "pay",
            [
                Signal("payment", output=outputs.payment),
                Task(
                    "receipt",
                    output=outputs.text,
                    run=lambda: {"text": f"paid {ctx.output(outputs.payment, 'payment').amount}"},
                ),
            ],
        )

    return wf


async def test_signal_parks_and_resolves_with_data(store: Store) -> None:
    wf = payment_workflow()
    parked = await run_workflow(wf, store=store)
    assert parked.status == "waiting-event"
    assert node_state(store, parked.run_id, "payment") == "waiting-event"
    waiting = events(store, parked.run_id, "NodeWaitingEvent")
    assert [(e["nodeId"], e["signalName"]) for e in waiting] == [("payment", "payment")]

    await signal(store, parked.run_id, "payment", {"amount": 7})
    result = await resume(store, parked.run_id, wf)
    assert result.status == "finished"
    assert result.outputs == {"payment": {"amount": 7}, "receipt": {"text": "paid 7"}}


async def test_signal_invalid_data_fails_the_node(store: Store) -> None:
    wf = payment_workflow()
    parked = await run_workflow(wf, store=store)
    await signal(store, parked.run_id, "payment", {"amount": "lots"})
    result = await resume(store, parked.run_id, wf)
    assert result.status == "failed"
    assert result.error["nodeId"] == "payment"
    assert "amount" in result.error["message"]
    assert node_state(store, parked.run_id, "payment") == "failed"
    assert "receipt" not in result.outputs
    assert [e["nodeId"] for e in events(store, parked.run_id, "NodeFailed")] == ["payment"]


async def test_signal_sent_early_is_kept(store: Store) -> None:
    @smithers
    def wf(ctx: Any) -> Workflow:
        return Workflow(
            "early",
            [
                Approval("gate", request={"title": "wait"}),
                Signal("go", output=outputs.payment),
            ],
        )

    parked = await run_workflow(wf, store=store)
    assert parked.status == "waiting-approval"
    await signal(store, parked.run_id, "go", {"amount": 3})
    await approve(store, parked.run_id, "gate")
    result = await resume(store, parked.run_id, wf)
    assert result.status == "finished"
    assert result.outputs == {"go": {"amount": 3}}


async def test_signal_children_from_data(store: Store) -> None:
    @smithers
    def wf(ctx: Any) -> Workflow:
        return Workflow(
            "dispatch",
            [
                Signal(
                    "choose",
                    children=lambda data: [
                        Task(f"do-{w}", output=outputs.text, run={"text": w}) for w in data["what"]
                    ],
                )
            ],
        )

    parked = await run_workflow(wf, store=store)
    assert parked.status == "waiting-event"
    await signal(store, parked.run_id, "choose", {"what": ["x", "y"]})
    result = await resume(store, parked.run_id, wf)
    assert result.status == "finished"
    assert result.outputs == {"do-x": {"text": "x"}, "do-y": {"text": "y"}}


async def test_signal_correlation_id_must_match(store: Store) -> None:
    @smithers
    def wf(ctx: Any) -> Workflow:
        return Workflow(
            "reply", [Signal("reply", output=outputs.payment, correlation_id="order-1")]
        )

    parked = await run_workflow(wf, store=store)
    assert parked.status == "waiting-event"
    waiting = events(store, parked.run_id, "NodeWaitingEvent")
    assert waiting[0]["correlationId"] == "order-1"

    await signal(store, parked.run_id, "reply", {"amount": 1}, correlation_id="order-2")
    await signal(store, parked.run_id, "reply", {"amount": 2})
    still = await resume(store, parked.run_id, wf)
    assert still.status == "waiting-event"
    assert node_state(store, parked.run_id, "reply") == "waiting-event"

    await signal(store, parked.run_id, "reply", {"amount": 3}, correlation_id="order-1")
    result = await resume(store, parked.run_id, wf)
    assert result.status == "finished"
    assert result.outputs == {"reply": {"amount": 3}}


@pytest.mark.parametrize(
    ("on_timeout", "status", "signal_state"),
    [
        ("fail", "failed", "failed"),
        ("skip", "finished", "skipped"),
        ("continue", "finished", "finished"),
    ],
)
async def test_signal_timeout(
    store: Store, on_timeout: str, status: str, signal_state: str
) -> None:
    calls: list[str] = []

    @smithers
    def wf(ctx: Any) -> Workflow:
        return Workflow(
            "timeout",
            [
                Signal(
                    "late",
                    timeout_ms=100,
                    on_timeout=on_timeout,  # type: ignore[arg-type]
                    children=[text_task("child", calls=calls)],
                ),
                text_task("after", calls=calls),
            ],
        )

    run_id = new_run_id()
    parked = await run_workflow(wf, store=store, run_id=run_id)
    assert parked.status == "waiting-event"
    result = await adopt_until_done(store, run_id, wf)
    assert result.status == status
    assert node_state(store, run_id, "late") == signal_state
    assert node_state(store, run_id, "child") is None
    if status == "failed":
        assert result.error["code"] == "SIGNAL_TIMEOUT"
        assert calls == []
    else:
        assert calls == ["after"]


async def test_wait_for_event_uses_event_name(store: Store) -> None:
    @smithers
    def wf(ctx: Any) -> Workflow:
        return Workflow("deploy", [WaitForEvent("wait", event="deploy.done", output=outputs.text)])

    parked = await run_workflow(wf, store=store)
    assert parked.status == "waiting-event"
    waiting = events(store, parked.run_id, "NodeWaitingEvent")
    assert [(e["nodeId"], e["signalName"]) for e in waiting] == [("wait", "deploy.done")]

    await signal(store, parked.run_id, "wait", {"text": "wrong name"})
    still = await resume(store, parked.run_id, wf)
    assert still.status == "waiting-event"

    await signal(store, parked.run_id, "deploy.done", {"text": "shipped"})
    result = await resume(store, parked.run_id, wf)
    assert result.status == "finished"
    assert result.outputs == {"wait": {"text": "shipped"}}


# -- Timer -------------------------------------------------------------------------------------


async def test_timer_parks_and_fires(store: Store) -> None:
    @smithers
    def wf(ctx: Any) -> Workflow:
        return Workflow(
            "timer",
            [
                Timer("pause", duration_ms=1000),
                Task("after", output=outputs.text, run={"text": "a"}),
            ],
        )

    run_id = new_run_id()
    started = time.monotonic()
    parked = await run_workflow(wf, store=store, run_id=run_id)
    assert parked.status == "waiting-timer"
    assert node_state(store, run_id, "pause") == "waiting-timer"
    assert "after" not in parked.outputs
    result = await adopt_until_done(store, run_id, wf)
    assert result.status == "finished"
    assert time.monotonic() - started >= 1.0
    assert result.outputs == {"after": {"text": "a"}}
    fired = events(store, run_id, "TimerFired")
    waiting = events(store, run_id, "NodeWaitingTimer")
    assert len(fired) == 1 and fired[0]["nodeId"] == "pause"
    assert fired[0]["firesAtMs"] == waiting[0]["firesAtMs"]
    assert fired[0]["firedAtMs"] >= fired[0]["firesAtMs"]
    assert_contiguous(store, run_id)


# -- render errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["sequence", "parallel-approval"])
async def test_duplicate_node_ids_fail_the_run(store: Store, shape: str) -> None:
    @smithers
    def wf(ctx: Any) -> Workflow:
        if shape == "sequence":
            return Workflow("dup", [text_task("twin"), text_task("twin")])
        return Workflow("dup", [Parallel([text_task("twin")]), Approval("twin")])

    result = await run_workflow(wf, store=store)
    assert result.status == "failed"
    assert result.error["code"] == "WORKFLOW_INVALID"
    assert "twin" in result.error["message"]
    assert event_types(store, result.run_id)[-1] == "RunFailed"
    assert result.outputs == {}
    await assert_engine_still_works(store)


async def test_output_not_matching_model_fails_the_run(store: Store) -> None:
    @smithers
    def wf(ctx: Any) -> Workflow:
        return Workflow("bad-output", [Task("count", output=outputs.num, run={"n": "many"})])

    result = await run_workflow(wf, store=store)
    assert result.status == "failed"
    assert result.error["nodeId"] == "count"
    message = result.error["message"]
    assert "Num" in message and "n" in message and "integer" in message
    assert result.outputs == {}
    assert event_types(store, result.run_id)[-1] == "RunFailed"
    await assert_engine_still_works(store)


async def test_render_that_raises_fails_the_run(store: Store) -> None:
    @smithers
    def wf(ctx: Any) -> Workflow:
        raise RuntimeError("render exploded")

    result = await run_workflow(wf, store=store)
    assert result.status == "failed"
    assert "render exploded" in result.error["message"]
    failed = events(store, result.run_id, "RunFailed")
    assert len(failed) == 1 and "render exploded" in failed[0]["error"]["message"]
    assert event_types(store, result.run_id)[-1] == "RunFailed"
    await assert_engine_still_works(store)


# -- engine bugs these tests found, now fixed ---------------------------------------------------


async def test_task_raising_timeout_error_keeps_its_message(store: Store) -> None:
    def call_upstream() -> None:
        raise TimeoutError("upstream api did not answer")

    @smithers
    def wf(ctx: Any) -> Workflow:
        return Workflow("upstream", [Task("call", output=outputs.text, run=call_upstream)])

    result = await run_workflow(wf, store=store)
    assert result.status == "failed"
    assert "upstream api did not answer" in result.error["message"]
    assert result.error["code"] != "TASK_TIMEOUT"


@pytest.mark.parametrize("container", ["branch", "approval", "signal"])
async def test_children_lists_run_in_order(store: Store, container: str) -> None:
    order: list[str] = []

    def step(name: str, pause: float) -> Task:
        async def run() -> dict[str, str]:
            order.append("start " + name)
            await anyio.sleep(pause)
            order.append("end " + name)
            return {"text": name}

        return Task(name, output=outputs.text, run=run)

    @smithers
    def wf(ctx: Any) -> Workflow:
        children = [step("a", 0.05), step("b", 0.0)]
        if container == "branch":
            node: Any = Branch(True, then=children)
        elif container == "approval":
            node = Approval("gate", auto_approve=True, children=children)
        else:
            node = Signal("go", children=children)
        return Workflow("ordered", [node])

    result = await run_workflow(wf, store=store)
    if container == "signal":
        await signal(store, result.run_id, "go", {})
        result = await resume(store, result.run_id, wf)
    assert result.status == "finished"
    assert order == ["start a", "end a", "start b", "end b"]
