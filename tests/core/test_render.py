"""Render as the pure function it is: a tree and a run's persisted state -> a typed plan.

Each row is a small tree, the node rows, approvals, signals and loop iterations the run has
persisted, and the plan the engine must act on: the actions it commits, the tasks ready to
start, and what the run does next (`decide`: carry on, finish, fail, or park). No database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import BaseModel

from smithers import (
    Approval,
    Branch,
    Loop,
    Parallel,
    Sequence,
    Signal,
    SmithersError,
    Task,
    Timer,
    WaitForEvent,
    Workflow,
    create_smithers,
)
from smithers.context import OutputCache
from smithers.engine import Failure, Wait, decide
from smithers.engine.actions import (
    Action,
    AdvanceLoop,
    ApprovalOutput,
    ConsumeSignal,
    FireTimer,
    Pending,
    RequestApproval,
    SignalTimeout,
    Skip,
    StartTimer,
    WaitEvent,
)
from smithers.engine.render import Rendered, render
from smithers.nodes import Node
from smithers.store.nodes import NodeTables
from smithers.store.records import ApprovalRecord, NodeRecord, RunRecord, SignalRecord

NOW = 1_000_000


class Text(BaseModel):
    text: str


smithers, outputs = create_smithers(text=Text)
WORKFLOW = smithers(lambda ctx: Workflow("t"))
TEXT = outputs.text


# -- the persisted state of a run ------------------------------------------------------------


def node(
    node_id: str,
    state: str,
    iteration: int = 0,
    *,
    attempt: int = 0,
    fires_at: int | None = None,
    wait: dict[str, Any] | None = None,
    error: Any = None,
) -> NodeRecord:
    return NodeRecord(
        node_id=node_id,
        iteration=iteration,
        state=state,
        last_attempt=attempt,
        updated_at_ms=NOW - 1,
        output_table=None,
        label=None,
        first_frame_no=0,
        fires_at_ms=fires_at,
        wait=wait,
        error=error,
    )


def approval(node_id: str, status: str, iteration: int = 0) -> ApprovalRecord:
    return ApprovalRecord(
        run_id="r",
        node_id=node_id,
        iteration=iteration,
        status=status,
        requested_at_ms=NOW - 10,
        decided_at_ms=None if status == "requested" else NOW - 5,
        note=None,
        decided_by=None,
        request={},
        decision=None,
        auto_approved=False,
    )


def signal(
    seq: int, name: str, data: Any = None, correlation_id: str | None = None
) -> SignalRecord:
    return SignalRecord(
        run_id="r",
        seq=seq,
        signal_name=name,
        correlation_id=correlation_id,
        data=data,
        received_at_ms=NOW - 1,
        received_by=None,
        consumed_by_node_id=None,
        consumed_iteration=None,
    )


def state(
    *nodes: NodeRecord,
    approvals: tuple[ApprovalRecord, ...] = (),
    signals: tuple[SignalRecord, ...] = (),
    loops: dict[str, int] | None = None,
) -> NodeTables:
    return NodeTables(
        nodes={(n.node_id, n.iteration): n for n in nodes},
        approvals={(a.node_id, a.iteration): a for a in approvals},
        loop_iterations=loops or {},
        open_signals=list(signals),
    )


def run(*, paused: bool = False, max_concurrency: int | None = None) -> RunRecord:
    return RunRecord(
        run_id="r",
        parent_run_id=None,
        workflow_name="t",
        workflow_path=None,
        workflow_hash=None,
        status="running",
        created_at_ms=NOW - 100,
        started_at_ms=NOW - 100,
        finished_at_ms=None,
        heartbeat_at_ms=None,
        runtime_owner_id="me",
        cancel_requested_at_ms=None,
        pause_requested_at_ms=NOW - 1 if paused else None,
        input={},
        error=None,
        config={} if max_concurrency is None else {"maxConcurrency": max_concurrency},
        auth=None,
        last_seq=0,
        command_seq=0,
    )


def do_render(tree: Node, tables: NodeTables, cache: OutputCache | None = None) -> Rendered:
    return render(WORKFLOW, lambda: tree, tables, cache or {}, NOW)


# -- the table ---------------------------------------------------------------------------------


@dataclass
class Case:
    id: str
    tree: Node
    state: NodeTables = field(default_factory=NodeTables)
    actions: list[Action] = field(default_factory=list)
    ready: list[tuple[str, int, int]] = field(default_factory=list)  # (task, iteration, attempt)
    outcome: str | None = None  # what `decide` makes of the plan; None: carry on
    failure: Failure | None = None
    waiting: list[Wait] = field(default_factory=list)
    next_fire_ms: int | None = None
    running: int = 0
    starts: list[str] | None = None  # the tasks `decide` starts, when not all those ready
    cache: OutputCache = field(default_factory=dict)
    run: RunRecord = field(default_factory=run)


def wf(*children: Node | None) -> Workflow:
    return Workflow("t", list(children))


def done(*ids: str) -> tuple[NodeRecord, ...]:
    return tuple(node(i, "finished") for i in ids)


SELECT_OPTIONS = [{"key": "a"}, {"key": "b"}]
DENIED = {"code": "APPROVAL_DENIED", "message": "approval 'ok' was denied"}
LOOP_MAX = {"code": "LOOP_MAX_ITERATIONS", "message": "loop 'l' reached 3 iterations"}
NO_PROGRESS = {"code": "NO_PROGRESS", "message": "no node can progress"}
TIMEOUT = {"code": "SIGNAL_TIMEOUT", "message": "no signal for 's' in time"}
EARLY = signal(7, "s", {"text": "early"})
APPROVAL_REQUEST = {"mode": "approve", "options": [], "allowedScopes": [], "allowedUsers": []}

CASES = [
    # -- tasks
    Case(
        "task: first render, pending and ready",
        wf(Task("a", output=TEXT, label="A")),
        actions=[Pending("a", 0, "A", "text")],
        ready=[("a", 0, 1)],
    ),
    Case(
        "task: running",
        wf(Task("a")),
        state(node("a", "in-progress", attempt=1)),
        running=1,
    ),
    Case("task: finished, run finishes", wf(Task("a")), state(*done("a")), outcome="finished"),
    Case(
        "task: failed, run fails with its error",
        wf(Task("a"), Task("b")),
        state(node("a", "failed", attempt=1, error={"code": "BOOM"})),
        outcome="failed",
        failure=Failure("a", 0, {"code": "BOOM"}),
    ),
    Case(
        "task: failed with continue_on_fail, the next one is reached",
        wf(Task("a", continue_on_fail=True), Task("b")),
        state(node("a", "failed", attempt=1, error={"code": "BOOM"})),
        actions=[Pending("b", 0)],
        ready=[("b", 0, 1)],
    ),
    Case(
        "task: an abandoned attempt is retried as the next attempt, its row kept",
        wf(Task("a")),
        state(node("a", "pending", attempt=2)),
        ready=[("a", 0, 3)],
    ),
    Case("task: skip_if", wf(Task("a", skip_if=True)), actions=[Skip("a", 0)]),
    Case(
        "task: skipped is done",
        wf(Task("a", skip_if=True)),
        state(node("a", "skipped")),
        outcome="finished",
    ),
    Case(
        "task: needs_approval asks first",
        wf(Task("a", needs_approval=True)),
        actions=[RequestApproval("a", 0, {"title": "Approve a?"}, gate=True, on_deny="fail")],
    ),
    Case(
        "task: needs_approval waits",
        wf(Task("a", needs_approval=True)),
        state(node("a", "waiting-approval"), approvals=(approval("a", "requested"),)),
        outcome="waiting-approval",
        waiting=[Wait("approval", "a", 0)],
    ),
    Case(
        "task: needs_approval approved, ready",
        wf(Task("a", needs_approval=True)),
        state(node("a", "pending"), approvals=(approval("a", "approved"),)),
        ready=[("a", 0, 1)],
    ),
    Case(
        "task: cancelled blocks the run, which cannot progress",
        wf(Task("a")),
        state(node("a", "cancelled")),
        outcome="failed",
        failure=Failure("", 0, NO_PROGRESS),
    ),
    Case(
        "task: a paused run starts nothing and parks",
        wf(Task("a")),
        state(node("a", "pending")),
        ready=[("a", 0, 1)],
        outcome="paused",
        starts=[],
        run=run(paused=True),
    ),
    Case(
        "task: the run's maxConcurrency counts running tasks",
        wf(Parallel([Task("a"), Task("b"), Task("c")])),
        state(node("a", "in-progress", attempt=1), node("b", "pending"), node("c", "pending")),
        ready=[("b", 0, 1), ("c", 0, 1)],
        running=1,
        starts=["b"],
        run=run(max_concurrency=2),
    ),
    # -- sequence, parallel, branch
    Case(
        "sequence: only the first is reached",
        wf(Sequence([Task("a"), Task("b")])),
        actions=[Pending("a", 0)],
        ready=[("a", 0, 1)],
    ),
    Case(
        "sequence: the next once the first is done",
        wf(Sequence([Task("a"), Task("b")])),
        state(*done("a")),
        actions=[Pending("b", 0)],
        ready=[("b", 0, 1)],
    ),
    Case(
        "parallel: all at once",
        wf(Parallel([Task("a"), Task("b")])),
        actions=[Pending("a", 0), Pending("b", 0)],
        ready=[("a", 0, 1), ("b", 0, 1)],
    ),
    Case(
        "parallel: max_concurrency keeps the first ready",
        wf(Parallel([Task("a"), Task("b"), Task("c")], max_concurrency=2)),
        actions=[Pending("a", 0), Pending("b", 0), Pending("c", 0)],
        ready=[("a", 0, 1), ("b", 0, 1)],
    ),
    Case(
        "parallel: max_concurrency counts its running tasks",
        wf(Parallel([Task("a"), Task("b"), Task("c")], max_concurrency=2)),
        state(node("a", "in-progress", attempt=1)),
        actions=[Pending("b", 0), Pending("c", 0)],
        ready=[("b", 0, 1)],
        running=1,
    ),
    Case(
        "branch: then",
        wf(Branch(True, then=Task("a"), else_=Task("b"))),
        actions=[Pending("a", 0)],
        ready=[("a", 0, 1)],
    ),
    Case(
        "branch: else",
        wf(Branch(False, then=Task("a"), else_=Task("b"))),
        actions=[Pending("b", 0)],
        ready=[("b", 0, 1)],
    ),
    # -- loops
    Case(
        "loop: first iteration",
        wf(Loop("l", Task("a"))),
        actions=[Pending("a", 0)],
        ready=[("a", 0, 1)],
    ),
    Case(
        "loop: the body done, the next iteration",
        wf(Loop("l", Task("a"))),
        state(node("a", "finished", 1), loops={"l": 1}),
        actions=[AdvanceLoop("l", 2)],
    ),
    Case(
        "loop: the next iteration's tasks",
        wf(Loop("l", Task("a"))),
        state(node("a", "finished", 1), loops={"l": 2}),
        actions=[Pending("a", 2)],
        ready=[("a", 2, 1)],
    ),
    Case(
        "loop: until ends it",
        wf(Loop("l", Task("a"), until=True), Task("b")),
        state(node("a", "finished", 1), loops={"l": 1}),
        actions=[Pending("b", 0)],
        ready=[("b", 0, 1)],
    ),
    Case(
        "loop: max_iterations reached returns the last",
        wf(Loop("l", Task("a"), max_iterations=3)),
        state(node("a", "finished", 2), loops={"l": 2}),
        outcome="finished",
    ),
    Case(
        "loop: max_iterations reached with on_max_reached='fail'",
        wf(Loop("l", Task("a"), max_iterations=3, on_max_reached="fail")),
        state(node("a", "finished", 2), loops={"l": 2}),
        outcome="failed",
        failure=Failure("l", 2, LOOP_MAX),
    ),
    # -- approvals
    Case(
        "approval: asks",
        wf(Approval("ok", request={"title": "Ship?"}, label="Ship")),
        actions=[
            RequestApproval(
                "ok",
                0,
                {"title": "Ship?", **APPROVAL_REQUEST},
                gate=False,
                on_deny="fail",
                label="Ship",
            )
        ],
    ),
    Case(
        "approval: auto-approved",
        wf(Approval("ok", auto_approve=lambda: True)),
        actions=[RequestApproval("ok", 0, APPROVAL_REQUEST, gate=False, on_deny="fail", auto=True)],
    ),
    Case(
        "approval: select mode, its options, users and on_deny in the request",
        wf(
            Approval(
                "ok", mode="select", options=SELECT_OPTIONS, allowed_users=["u"], on_deny="skip"
            )
        ),
        actions=[
            RequestApproval(
                "ok",
                0,
                {
                    **APPROVAL_REQUEST,
                    "mode": "select",
                    "options": SELECT_OPTIONS,
                    "allowedUsers": ["u"],
                },
                gate=False,
                on_deny="skip",
            )
        ],
    ),
    Case(
        "approval: waits",
        wf(Approval("ok"), Task("after")),
        state(node("ok", "waiting-approval"), approvals=(approval("ok", "requested"),)),
        outcome="waiting-approval",
        waiting=[Wait("approval", "ok", 0)],
    ),
    Case(
        "approval: approved, its decision written to its output first",
        wf(Approval("ok", output=TEXT, children=Task("a"))),
        state(node("ok", "finished"), approvals=(approval("ok", "approved"),)),
        actions=[ApprovalOutput("ok", 0, TEXT)],
    ),
    Case(
        "approval: approved, its children run",
        wf(Approval("ok", output=TEXT, children=Task("a"))),
        state(node("ok", "finished"), approvals=(approval("ok", "approved"),)),
        cache={"text": {("ok", 0): Text(text="yes")}},
        actions=[Pending("a", 0)],
        ready=[("a", 0, 1)],
    ),
    Case(
        "approval: denied, on_deny='fail'",
        wf(Approval("ok", children=Task("a")), Task("after")),
        state(node("ok", "failed", error=DENIED), approvals=(approval("ok", "denied"),)),
        outcome="failed",
        failure=Failure("ok", 0, DENIED),
    ),
    Case(
        "approval: denied, on_deny='skip' goes on without its children",
        wf(Approval("ok", on_deny="skip", children=Task("a")), Task("after")),
        state(node("ok", "skipped"), approvals=(approval("ok", "denied"),)),
        actions=[Pending("after", 0)],
        ready=[("after", 0, 1)],
    ),
    Case(
        "approval: denied, on_deny='continue' goes on without its children",
        wf(Approval("ok", on_deny="continue", children=Task("a")), Task("after")),
        state(node("ok", "finished"), approvals=(approval("ok", "denied"),)),
        actions=[Pending("after", 0)],
        ready=[("after", 0, 1)],
    ),
    # -- signals
    Case(
        "signal: starts waiting",
        wf(Signal("s", label="S")),
        actions=[WaitEvent("s", 0, "s", label="S")],
    ),
    Case(
        "signal: its timeout sets when it fires",
        wf(Signal("s", correlation_id="c", timeout_ms=500)),
        actions=[WaitEvent("s", 0, "s", "c", NOW + 500)],
    ),
    Case(
        "signal: waits until its timeout",
        wf(Signal("s", timeout_ms=500)),
        state(node("s", "waiting-event", fires_at=NOW + 300)),
        outcome="waiting-event",
        waiting=[Wait("event", "s", 0)],
        next_fire_ms=NOW + 300,
    ),
    Case(
        "signal: a signal sent before the node was reached is taken",
        wf(Signal("s", output=TEXT)),
        state(signals=(EARLY,)),
        actions=[ConsumeSignal("s", 0, EARLY, TEXT)],
    ),
    Case(
        "signal: a waiting node takes its signal",
        wf(Signal("s")),
        state(node("s", "waiting-event"), signals=(EARLY,)),
        actions=[ConsumeSignal("s", 0, EARLY)],
    ),
    Case(
        "signal: one signal for two nodes goes to the first",
        wf(Parallel([Signal("s"), WaitForEvent("w", event="s")])),
        state(signals=(EARLY,)),
        actions=[ConsumeSignal("s", 0, EARLY), WaitEvent("w", 0, "s")],
    ),
    Case(
        "signal: another correlation id is not this node's",
        wf(Signal("s", correlation_id="mine")),
        state(node("s", "waiting-event"), signals=(signal(8, "s", correlation_id="other"),)),
        outcome="waiting-event",
        waiting=[Wait("event", "s", 0)],
    ),
    Case(
        "signal: timed out, on_timeout='fail'",
        wf(Signal("s", timeout_ms=500)),
        state(node("s", "waiting-event", fires_at=NOW)),
        actions=[SignalTimeout("s", 0, "fail")],
    ),
    Case(
        "signal: timed out, on_timeout='skip'",
        wf(Signal("s", timeout_ms=500, on_timeout="skip")),
        state(node("s", "waiting-event", fires_at=NOW - 1)),
        actions=[SignalTimeout("s", 0, "skip")],
    ),
    Case(
        "signal: failed on timeout fails the run",
        wf(Signal("s", timeout_ms=500)),
        state(node("s", "failed", error=TIMEOUT)),
        outcome="failed",
        failure=Failure("s", 0, TIMEOUT),
    ),
    Case(
        "signal: children built from its data",
        wf(Signal("s", children=lambda data: Task(data["task"]))),
        state(node("s", "finished", wait={"signal": "s", "seq": 1, "data": {"task": "t1"}})),
        actions=[Pending("t1", 0)],
        ready=[("t1", 0, 1)],
    ),
    Case(
        "signal: children built from its validated output",
        wf(Signal("s", output=TEXT, children=lambda data: Task(data.text))),
        state(node("s", "finished", wait={"signal": "s", "seq": 1, "data": {"text": "raw"}})),
        cache={"text": {("s", 0): Text(text="t2")}},
        actions=[Pending("t2", 0)],
        ready=[("t2", 0, 1)],
    ),
    Case(
        "signal: timed out with on_timeout='continue', its children are not run",
        wf(Signal("s", children=Task("a"))),
        state(node("s", "finished", wait={"timedOut": True})),
        outcome="finished",
    ),
    Case(
        "wait-for-event: waits for its event's name",
        wf(WaitForEvent("w", event="order.paid")),
        actions=[WaitEvent("w", 0, "order.paid")],
    ),
    # -- timers
    Case(
        "timer: duration starts it",
        wf(Timer("t", duration_ms=500, label="T")),
        actions=[StartTimer("t", 0, NOW + 500, "T")],
    ),
    Case(
        "timer: until_ms starts it",
        wf(Timer("t", until_ms=NOW + 9)),
        actions=[StartTimer("t", 0, NOW + 9)],
    ),
    Case(
        "timer: waits until it is due",
        wf(Timer("t", duration_ms=500)),
        state(node("t", "waiting-timer", fires_at=NOW + 200)),
        outcome="waiting-timer",
        waiting=[Wait("timer", "t", 0)],
        next_fire_ms=NOW + 200,
    ),
    Case(
        "timer: fires when due",
        wf(Timer("t", duration_ms=500)),
        state(node("t", "waiting-timer", fires_at=NOW)),
        actions=[FireTimer("t", 0, NOW)],
    ),
    Case(
        "timer: fired is done",
        wf(Timer("t", duration_ms=500), Task("a")),
        state(node("t", "finished")),
        actions=[Pending("a", 0)],
        ready=[("a", 0, 1)],
    ),
    # -- parking
    Case(
        "park: an approval comes before events and timers",
        wf(Parallel([Timer("t", duration_ms=5), Signal("s"), Approval("ok")])),
        state(
            node("t", "waiting-timer", fires_at=NOW + 50),
            node("s", "waiting-event"),
            node("ok", "waiting-approval"),
            approvals=(approval("ok", "requested"),),
        ),
        outcome="waiting-approval",
        waiting=[Wait("timer", "t", 0), Wait("event", "s", 0), Wait("approval", "ok", 0)],
        next_fire_ms=NOW + 50,
    ),
    Case(
        "park: an event comes before timers; the nearest time is the wake-up",
        wf(Parallel([Timer("t", duration_ms=5), Signal("s", timeout_ms=9)])),
        state(
            node("t", "waiting-timer", fires_at=NOW + 50),
            node("s", "waiting-event", fires_at=NOW + 9),
        ),
        outcome="waiting-event",
        waiting=[Wait("timer", "t", 0), Wait("event", "s", 0)],
        next_fire_ms=NOW + 9,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_render_plans(case: Case) -> None:
    plan = do_render(case.tree, case.state, case.cache).plan
    assert plan.actions == case.actions
    assert [(r.task.id, r.iteration, r.attempt) for r in plan.ready] == case.ready
    assert plan.waiting == case.waiting
    assert plan.next_fire_ms == case.next_fire_ms
    assert plan.running == case.running
    decision = decide(case.run, plan)
    assert (decision.outcome, decision.failure) == (case.outcome, case.failure)
    starts = [r.task.id for r in plan.ready] if case.starts is None else case.starts
    assert [r.task.id for r in decision.starts] == starts


def test_render_reads_nothing_but_its_arguments() -> None:
    """The same tree and state render the same frame and plan, every time."""
    tree = wf(Sequence([Task("a"), Loop("l", Task("b"))]))
    tables = state(*done("a"), loops={"l": 1})
    first, second = do_render(tree, tables), do_render(tree, tables)
    assert first.frame_text == second.frame_text and first.frame_hash == second.frame_hash
    assert first.plan == second.plan


def test_frame_of_a_tree() -> None:
    rendered = do_render(
        wf(Loop("l", Task("a", output=TEXT, retries=2)), Branch(False, then=Task("b"))),
        state(*done("a"), loops={"l": 0}),
    )
    task_props = {"id": "a", "output": "text", "retries": "2", "iteration": "0"}
    loop_props = {"id": "l", "iteration": "0", "maxIterations": "5"}
    assert rendered.frame == {
        "kind": "element",
        "tag": "workflow",
        "props": {"name": "t"},
        "children": [
            {
                "kind": "element",
                "tag": "loop",
                "props": {**loop_props, "onMaxReached": "return-last", "until": "false"},
                "children": [
                    {"kind": "element", "tag": "task", "props": task_props, "children": []}
                ],
            },
            {"kind": "element", "tag": "branch", "props": {"cond": "false"}, "children": []},
        ],
    }
    assert rendered.name == "t"
    assert rendered.task_index == [
        {"nodeId": "a", "iteration": 0, "ordinal": 0, "outputTable": "text"}
    ]
    assert rendered.mounted_task_ids == []  # done tasks are not mounted
    assert rendered.uses == {"loops"}


ERRORS = [
    ("duplicate ids", wf(Task("a"), Timer("a", duration_ms=1)), "duplicate node id 'a'"),
    ("an empty id", wf(Task("")), "non-empty string id"),
    ("a nested loop", wf(Loop("outer", Loop("inner", Task("a")))), "'inner' is nested"),
    ("a timer without a time", wf(Timer("t")), "needs duration_ms or until_ms"),
    ("an unknown output", wf(Task("a", output="nope")), "unknown output 'nope'"),
    ("a root that is no node", "not a node", "expected a Workflow node"),
    ("a child that is no node", wf(Node()), "Node, which is not a node"),
]


@pytest.mark.parametrize(("tree", "message"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_render_refuses(tree: Any, message: str) -> None:
    with pytest.raises(SmithersError) as caught:
        render(WORKFLOW, lambda: tree, state(), {}, NOW)
    assert caught.value.code == "WORKFLOW_INVALID"
    assert message in str(caught.value)
