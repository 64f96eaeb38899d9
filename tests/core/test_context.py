"""What a render function reads through `ctx`, and the output tables users query with SQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import BaseModel

from smithers import (
    Approval,
    Loop,
    Runtime,
    SmithersError,
    SmithersWorkflow,
    Store,
    Task,
    Workflow,
    approve,
    create_smithers,
    deny,
    run_workflow,
)
from smithers.store import runs as runs_q

pytestmark = pytest.mark.anyio


class Text(BaseModel):
    text: str


class Num(BaseModel):
    n: int


class Greeting(BaseModel):
    name: str
    times: int = 2
    shout: bool = False


class Inner(BaseModel):
    path: str
    depth: int


class Report(BaseModel):
    title: str
    count: int
    score: float
    ok: bool
    tags: list[str]
    detail: Inner
    extra: dict[str, Any]
    maybe: int | None = None


# One key -> model mapping for the whole module (PostgreSQL shares a schema per module).
smithers, outputs = create_smithers(text=Text, num=Num, report=Report)
greeter, greeter_outputs = create_smithers(input=Greeting, text=Text)


async def resume(store: Store, run_id: str, wf: SmithersWorkflow) -> Any:
    async with Runtime(store) as rt:
        await rt.resume(run_id, wf)
        return await rt.wait(run_id)


# -- input -------------------------------------------------------------------------------------


@greeter
def greet(ctx: Any) -> Workflow:
    message = ctx.input["name"] * ctx.input["times"]
    return Workflow(
        "greet",
        [
            Task(
                "greet",
                output=greeter_outputs.text,
                run={"text": message.upper() if ctx.input["shout"] else message},
            )
        ],
    )


async def test_input_is_validated_and_defaults_applied(store: Store) -> None:
    result = await run_workflow(greet, input={"name": "ab"}, store=store)
    assert result.status == "finished"
    assert result.outputs == {"greet": {"text": "abab"}}
    with store.read() as conn:
        run = runs_q.get_run(conn, result.run_id)
    assert run is not None
    assert run.input == {"name": "ab", "times": 2, "shout": False}

    shouted = await run_workflow(greet, input={"name": "x", "times": 3, "shout": True}, store=store)
    assert shouted.outputs == {"greet": {"text": "XXX"}}


@pytest.mark.parametrize(
    ("bad", "field"),
    [({"times": 2}, "name"), ({"name": "a", "times": "many"}, "times"), (None, "name")],
)
async def test_invalid_input_is_refused(store: Store, bad: Any, field: str) -> None:
    with store.read() as conn:
        before = len(runs_q.list_runs(conn, limit=10_000))
    with pytest.raises(SmithersError) as info:
        await run_workflow(greet, input=bad, store=store)
    assert info.value.code == "INVALID_REQUEST"
    errors = info.value.details["errors"]
    assert any(err["loc"] == [field] for err in errors), errors
    assert all({"loc", "msg", "type"} <= set(err) for err in errors)
    with store.read() as conn:
        assert len(runs_q.list_runs(conn, limit=10_000)) == before  # no run was created


# -- run identity, auth ------------------------------------------------------------------------


async def test_run_id_and_auth(store: Store) -> None:
    seen: list[tuple[str, Any]] = []

    @smithers
    def wf(ctx: Any) -> Workflow:
        seen.append((ctx.run_id, ctx.auth))
        return Workflow("who", [Task("who", output=outputs.text, run={"text": ctx.run_id})])

    result = await run_workflow(wf, store=store, run_id="ctx_run_1")
    assert result.run_id == "ctx_run_1"
    assert result.outputs == {"who": {"text": "ctx_run_1"}}
    assert seen and all(item == ("ctx_run_1", None) for item in seen)

    # a run started with an auth context (as the Gateway does) exposes it
    seen.clear()
    auth = {"triggeredBy": "alice", "role": "operator", "scopes": ["run"], "createdAt": 1}
    async with Runtime(store) as rt:
        run_id = await rt.start(wf, auth=auth)
        other = await rt.wait(run_id)
    assert other.status == "finished"
    assert seen and all(item == (run_id, auth) for item in seen)


# -- outputs -----------------------------------------------------------------------------------


async def test_output_accessors(store: Store) -> None:
    probes: list[dict[str, Any]] = []

    @smithers
    def wf(ctx: Any) -> Workflow:
        try:
            ctx.output(outputs.text, "missing")
        except SmithersError as exc:
            missing_code: str | None = exc.code
        else:
            missing_code = None
        probes.append(
            {
                "missing": missing_code,
                "maybe": ctx.output_maybe(outputs.text, "missing"),
                "first": ctx.output_maybe(outputs.text, "first"),
            }
        )
        return Workflow(
            "accessors",
            [
                Task("first", output=outputs.text, run={"text": "one"}),
                Task(
                    "second",
                    output=outputs.text,
                    run=lambda: {"text": ctx.output(outputs.text, "first").text + "+two"},
                ),
            ],
        )

    result = await run_workflow(wf, store=store)
    assert result.status == "finished"
    assert result.outputs == {"first": {"text": "one"}, "second": {"text": "one+two"}}
    assert all(p["missing"] == "OUTPUT_NOT_FOUND" and p["maybe"] is None for p in probes)
    # absent before `first` finished, a validated model after
    assert probes[0]["first"] is None
    assert probes[-1]["first"] == Text(text="one")


async def test_loop_iteration_and_output_history(store: Store) -> None:
    iterations: list[int] = []

    @smithers
    def wf(ctx: Any) -> Workflow:
        iterations.append(ctx.iteration)
        rows = ctx.outputs(outputs.num)
        return Workflow(
            "history",
            [
                Loop(
                    "count",
                    until=len(rows) >= 3,
                    max_iterations=5,
                    children=[Task("step", output=outputs.num, run={"n": ctx.iteration * 10})],
                ),
                Task(
                    "summary",
                    output=outputs.text,
                    run=lambda: {
                        "text": "|".join(
                            [
                                ",".join(str(r.n) for r in ctx.outputs(outputs.num)),
                                str(ctx.latest(outputs.num, "step").n),
                                str(ctx.output(outputs.num, "step").n),
                                str(ctx.output(outputs.num, "step", iteration=1).n),
                                str(ctx.output_maybe(outputs.num, "step", iteration=7)),
                            ]
                        )
                    },
                ),
            ],
        )

    result = await run_workflow(wf, store=store)
    assert result.status == "finished"
    assert result.outputs["summary"] == {"text": "0,10,20|20|20|10|None"}
    assert result.outputs["step"] == {"n": 20}
    assert sorted(set(iterations)) == [0, 1, 2]
    assert iterations == sorted(iterations)


# -- approvals ---------------------------------------------------------------------------------


def approval_workflow(seen: list[Any]) -> SmithersWorkflow:
    @smithers
    def wf(ctx: Any) -> Workflow:
        decision = ctx.approval("gate")
        seen.append(decision)
        return Workflow(
            "decided",
            [
                Approval("gate", request={"title": "ok?"}, on_deny="continue"),
                Task(
                    "after",
                    output=outputs.text,
                    run=lambda: {"text": json.dumps(ctx.approval("gate").to_json())},
                ),
            ],
        )

    return wf


async def test_approval_decision_is_readable(store: Store) -> None:
    seen: list[Any] = []
    wf = approval_workflow(seen)
    parked = await run_workflow(wf, store=store)
    assert parked.status == "waiting-approval"
    assert seen and all(d is None for d in seen)

    seen.clear()
    await approve(
        store, parked.run_id, "gate", note="fine", decided_by="alice", decision={"level": 2}
    )
    result = await resume(store, parked.run_id, wf)
    assert result.status == "finished"
    decision = seen[-1]
    assert decision.approved is True
    assert (decision.note, decision.decided_by, decision.decision) == (
        "fine",
        "alice",
        {"level": 2},
    )
    assert json.loads(result.outputs["after"]["text"]) == {
        "approved": True,
        "note": "fine",
        "decidedBy": "alice",
        "decision": {"level": 2},
    }


async def test_denied_approval_is_readable(store: Store) -> None:
    seen: list[Any] = []
    wf = approval_workflow(seen)
    parked = await run_workflow(wf, store=store)
    await deny(store, parked.run_id, "gate", note="nope", decided_by="bob")
    result = await resume(store, parked.run_id, wf)
    assert result.status == "finished"
    assert seen[-1].approved is False
    assert (seen[-1].note, seen[-1].decided_by) == ("nope", "bob")
    assert json.loads(result.outputs["after"]["text"])["approved"] is False


# -- output tables -----------------------------------------------------------------------------


async def test_output_table_has_a_column_per_field(store: Store) -> None:
    value = {
        "title": "nightly",
        "count": 3,
        "score": 0.5,
        "ok": True,
        "tags": ["a", "b"],
        "detail": {"path": "/x", "depth": 2},
        "extra": {"k": [1, {"z": None}]},
    }

    @smithers
    def wf(ctx: Any) -> Workflow:
        return Workflow("report", [Task("build", output=outputs.report, run=value)])

    result = await run_workflow(wf, store=store)
    assert result.status == "finished"
    assert result.outputs["build"] == {**value, "maybe": None}

    with store.read() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("report")}
        row = (
            conn.execute(
                sa.text(
                    "SELECT title, count, score, ok, tags, detail, extra, maybe FROM report "
                    "WHERE run_id = :run_id AND node_id = 'build' AND iteration = 0"
                ),
                {"run_id": result.run_id},
            )
            .mappings()
            .one()
        )
        by_sql = conn.execute(
            sa.text("SELECT node_id FROM report WHERE run_id = :run_id AND count > 2"),
            {"run_id": result.run_id},
        ).all()
    assert columns == {
        "run_id",
        "node_id",
        "iteration",
        "title",
        "count",
        "score",
        "ok",
        "tags",
        "detail",
        "extra",
        "maybe",
    }
    assert (row["title"], row["count"], row["score"]) == ("nightly", 3, 0.5)
    assert bool(row["ok"]) is True
    assert row["maybe"] is None
    for name in ("tags", "detail", "extra"):
        assert isinstance(row[name], str), name
        assert json.loads(row[name]) == value[name]
    assert [r[0] for r in by_sql] == ["build"]
