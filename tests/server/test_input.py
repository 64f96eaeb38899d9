"""What a request may carry, on SQLite and on PostgreSQL: NUL anywhere, numbers JSON or int64
cannot hold, a resume naming another workflow, host paths on the wire, and human input
(signal payloads, select/rank decisions) checked when it arrives.

A refused request is a 400/404/409 in the error envelope that records nothing: no run, no
signal row, no event, no seq used. After every test the server is up, answered no 5xx and
logged no traceback.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
import sqlalchemy as sa

from smithers import Runtime, Store, load_workflow
from smithers.queries import get_run
from smithers_serve import create_serve_app
from tests.helpers import EXAMPLES, eventually

from .conftest import (
    ServerProcess,
    SSEStream,
    assert_error,
    read_sse,
    start_run,
    start_runs,
    stays_healthy,
    wait_status,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def srv(spawn: Callable[..., ServerProcess], server_db: bool | str) -> ServerProcess:
    server = spawn(db=server_db)
    (server.root / "sub").mkdir()
    (server.root / "sub" / "nested.py").write_text((server.root / "hello.py").read_text())
    (server.root / "approval_link.py").symlink_to(server.root / "approval.py")
    return server


@pytest.fixture(scope="module")
def db(srv: ServerProcess) -> Iterator[sa.Engine]:
    assert srv.db_url is not None
    engine = sa.create_engine(srv.db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def still_healthy(srv: ServerProcess) -> Iterator[None]:
    with stays_healthy(srv):
        yield


@pytest.fixture
def client(srv: ServerProcess, still_healthy: None) -> Iterator[httpx.Client]:
    with srv.client() as made:
        yield made


@pytest.fixture(scope="module")
def runs(srv: ServerProcess) -> dict[str, str]:
    """Parked runs to aim at: an approval, a signal, all kinds of human input; a finished one."""
    with srv.client() as c:
        return start_runs(
            c,
            {
                "approval": ("approval.py", "waiting-approval"),
                "signal": ("signal.py", "waiting-event"),
                "human": ("srv_human.py", ("waiting-approval", "waiting-event")),
                "done": ("hello.py", "finished"),
            },
        )


def recorded(db: sa.Engine) -> dict[str, int]:
    """Row counts of what a refused request must not add to."""
    with db.connect() as conn:
        return {
            table: conn.execute(sa.text(f"SELECT count(*) FROM _smithers_{table}")).scalar_one()
            for table in ("runs", "events", "signals", "approvals")
        }


def statuses(client: httpx.Client, runs: dict[str, str]) -> dict[str, str]:
    return {k: client.get(f"/v1/runs/{v}").json()["status"] for k, v in runs.items()}


# -- NUL ---------------------------------------------------------------------------------------


RUN_ROUTES = [
    ("GET", "/v1/runs/{}"),
    ("GET", "/v1/runs/{}/events"),
    ("GET", "/v1/runs/{}/frames"),
    ("POST", "/v1/runs/{}/cancel"),
    ("POST", "/v1/runs/{}/resume"),
    ("POST", "/v1/runs/{}/nodes/review/approve"),
    ("POST", "/v1/runs/{}/nodes/review/deny"),
    ("POST", "/v1/runs/{}/signals/payment"),
    ("POST", "/signal/{}/payment"),
]


def test_nul_in_a_path_is_404_for_a_run_and_400_for_a_name(
    client: httpx.Client, db: sa.Engine, runs: dict[str, str]
) -> None:
    before, was = recorded(db), statuses(client, runs)
    for bad in ("%00", "a%00b", runs["approval"] + "%00"):
        for method, template in RUN_ROUTES:
            res = client.request(method, template.format(bad))
            assert res.status_code == 404, (template, bad, res.text)
            assert res.json()["error"]["code"] in ("NOT_FOUND", "RUN_NOT_FOUND")
    for verb in ("approve", "deny"):
        for node in ("%00", "re%00view"):
            err = assert_error(
                client.post(f"/v1/runs/{runs['approval']}/nodes/{node}/{verb}"),
                400,
                "INVALID_REQUEST",
            )
            assert err["details"]["field"] == "nodeId"
    for route in ("/v1/runs/{}/signals/{}", "/signal/{}/{}"):
        for name in ("%00", "pay%00ment"):
            res = client.post(route.format(runs["signal"], name), json={"data": {"amount": 1}})
            err = assert_error(res, 400, "INVALID_REQUEST")
            assert err["details"]["field"] == "signalName"
    assert recorded(db) == before and statuses(client, runs) == was


def test_nul_or_an_unknown_status_in_a_query_is_400(
    client: httpx.Client, runs: dict[str, str]
) -> None:
    for query, field in [
        ("?status=%00", "status"),
        ("?status=running%00", "status"),
        ("?status=no-such-status", "status"),
        ("?workflow=%00", "workflow"),
        ("?workflow=hello.py%00", "workflow"),
    ]:
        err = assert_error(client.get("/v1/runs" + query), 400, "INVALID_REQUEST")
        assert err["details"]["field"] == field
    for path in (
        f"/v1/runs/{runs['done']}/events?afterSeq=%00",
        f"/v1/runs/{runs['done']}/frames?afterFrameNo=%00",
        f"/v1/runs/{runs['done']}/frames?limit=1%00",
    ):
        assert_error(client.get(path), 400, "INVALID_REQUEST")


NUL = "\u0000"
NUL_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("/v1/runs", {"workflowPath": "hello.py", "input": {"name": f"a{NUL}b"}}, "input.name"),
    ("/v1/runs", {"workflowPath": "hello.py", "input": {f"k{NUL}": 1}}, "input.k\\u0000"),
    ("/v1/runs", {"workflowPath": "hello.py", "input": {"xs": [1, {"y": NUL}]}}, "input.xs.1.y"),
    ("/v1/runs", {"workflowPath": "hello.py", "runId": f"r{NUL}"}, "runId"),
    ("/v1/runs", {"workflowPath": f"hello.py{NUL}"}, "workflowPath"),
    ("{done}/resume", {"workflowPath": f"hello.py{NUL}"}, "workflowPath"),
    ("{approval}/nodes/review/approve", {"note": f"ok{NUL}"}, "note"),
    ("{approval}/nodes/review/approve", {"decidedBy": NUL}, "decidedBy"),
    ("{approval}/nodes/review/approve", {"decision": {"why": [NUL]}}, "decision.why.0"),
    ("{approval}/nodes/review/deny", {"note": NUL}, "note"),
    ("{signal}/signals/payment", {"correlationId": NUL, "data": {"amount": 1}}, "correlationId"),
    ("{signal}/signals/payment", {"receivedBy": NUL, "data": {"amount": 1}}, "receivedBy"),
    ("{signal}/signals/payment", {"data": {"amount": 1, "memo": NUL}}, "data.memo"),
    ("{signal}/signals/other", {"data": {NUL: NUL}}, "data.\\u0000"),
    ("/signal/{signal}/payment", {"data": NUL}, "data"),
]


def _route(template: str, runs: dict[str, str]) -> str:
    path = template.format(**runs)
    return path if path.startswith("/") else "/v1/runs/" + path


def test_nul_anywhere_in_a_body_is_400_naming_where(
    client: httpx.Client, db: sa.Engine, runs: dict[str, str]
) -> None:
    before, was = recorded(db), statuses(client, runs)
    for template, body, field in NUL_BODIES:
        res = client.post(_route(template, runs), json=body)
        err = assert_error(res, 400, "INVALID_REQUEST")
        assert err["details"] == {"field": field}, (template, body, err)
    assert recorded(db) == before and statuses(client, runs) == was


# -- numbers -----------------------------------------------------------------------------------


NUMBER_BODIES: list[tuple[str, bytes, str]] = [
    ("/v1/runs", b'{"workflowPath": "hello.py", "input": {"x": 1e999}}', "input.x"),
    ("/v1/runs", b'{"workflowPath": "hello.py", "input": {"x": [-1E400]}}', "input.x.0"),
    ("/v1/runs", b'{"workflowPath": "hello.py", "input": {"n": ' + b"9" * 30 + b"}}", "input.n"),
    ("/v1/runs", b'{"workflowPath": "hello.py", "input": {"n": -9223372036854775809}}', "input.n"),
    (
        "/v1/runs",
        b'{"workflowPath": "hello.py", "config": {"maxConcurrency": %d}}' % 2**70,
        "config.maxConcurrency",
    ),
    ("{signal}/signals/payment", b'{"data": {"amount": 1e999}}', "data.amount"),
    ("{signal}/signals/payment", b'{"data": {"amount": %d}}' % 2**64, "data.amount"),
    ("{approval}/nodes/review/approve", b'{"decision": {"n": 1e309}}', "decision.n"),
]


def test_numbers_json_or_int64_cannot_hold_are_400_naming_where(
    client: httpx.Client, db: sa.Engine, runs: dict[str, str]
) -> None:
    before, was = recorded(db), statuses(client, runs)
    for template, raw, field in NUMBER_BODIES:
        res = client.post(
            _route(template, runs), content=raw, headers={"content-type": "application/json"}
        )
        err = assert_error(res, 400, "INVALID_REQUEST")
        assert err["details"] == {"field": field}, (template, raw, err)
    assert recorded(db) == before and statuses(client, runs) == was
    # The int64 bounds themselves are fine, and come back as they went in.
    edge = {"big": 2**63 - 1, "small": -(2**63), "tiny": 5e-324, "large": 1.7e308}
    run_id = start_run(client, "hello.py", input=edge, config={"maxConcurrency": 2**63 - 1})
    assert wait_status(client, run_id, ("finished", "failed"))["status"] == "finished"
    with db.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT input_json FROM _smithers_runs WHERE run_id = :r"), {"r": run_id}
        ).scalar_one()
    assert json.loads(stored) == edge


# -- resume ------------------------------------------------------------------------------------


def test_a_resume_loads_only_the_workflow_the_run_recorded(
    client: httpx.Client, db: sa.Engine
) -> None:
    run_id = start_run(client, "approval.py")
    wait_status(client, run_id, "waiting-approval")
    before = recorded(db)
    for other in ("hello.py", "sub/nested.py", "srv_human.py"):
        for res in (
            client.post(f"/v1/runs/{run_id}/resume", json={"workflowPath": other}),
            client.post("/v1/runs", json={"workflowPath": other, "resume": True, "runId": run_id}),
        ):
            err = assert_error(res, 409, "WORKFLOW_MISMATCH")
            assert err["details"] == {
                "runId": run_id,
                "workflowPath": "approval.py",
                "requested": other,
            }
    assert recorded(db) == before
    assert client.get(f"/v1/runs/{run_id}").json()["status"] == "waiting-approval"
    # The same file, however it is named, is the run's own workflow.
    for same in ("approval.py", "./approval.py", "sub/../approval.py", "approval_link.py"):
        res = client.post(f"/v1/runs/{run_id}/resume", json={"workflowPath": same})
        assert res.status_code == 200, (same, res.text)
        wait_status(client, run_id, "waiting-approval")
    assert client.post(f"/v1/runs/{run_id}/nodes/review/approve").status_code == 200
    assert wait_status(client, run_id, ("finished", "failed"))["status"] == "finished"


# -- paths on the wire -------------------------------------------------------------------------


def test_workflow_paths_on_the_wire_are_relative_to_the_root(
    srv: ServerProcess, client: httpx.Client, runs: dict[str, str]
) -> None:
    nested = start_run(client, "sub/nested.py")
    wait_status(client, nested, "finished")
    listed = client.get("/v1/runs", params={"limit": 1000}).json()
    paths = {r["runId"]: r["workflowPath"] for r in listed}
    assert paths[nested] == "sub/nested.py"
    assert paths[runs["approval"]] == "approval.py"
    assert paths[runs["human"]] == "srv_human.py"
    only = client.get("/v1/runs", params={"workflow": "sub/nested.py"}).json()
    assert [r["runId"] for r in only] == [nested]
    # Nothing a client reads names the host's directories.
    texts = [json.dumps(listed), client.get("/v1/approvals").text]
    for run_id in (nested, runs["approval"], runs["human"]):
        texts += [
            client.get(f"/v1/runs/{run_id}").text,
            client.get(f"/v1/runs/{run_id}/frames").text,
        ]
    with client.stream("GET", f"/v1/runs/{nested}/events") as res:
        texts.append("\n".join(read_sse(res, SSEStream()).blocks))
    for root in {str(srv.root), os.path.realpath(srv.root)}:
        assert not [t for t in texts if root in t]


# -- human input -------------------------------------------------------------------------------


def _signal_rows(db: sa.Engine, run_id: str) -> list[tuple[int, str]]:
    with db.connect() as conn:
        return [
            (int(r[0]), r[1])
            for r in conn.execute(
                sa.text(
                    "SELECT seq, signal_name FROM _smithers_signals WHERE run_id = :r ORDER BY seq"
                ),
                {"r": run_id},
            )
        ]


def test_a_signal_payload_is_checked_against_its_nodes_model_when_it_arrives(
    client: httpx.Client, db: sa.Engine
) -> None:
    run_id = start_run(client, "srv_human.py")
    wait_status(client, run_id, ("waiting-approval", "waiting-event"))
    before = recorded(db)
    # `paid` waits (declared model: amount: int); `shipped` is rendered, not reached yet.
    for route, data, loc in [
        (f"/v1/runs/{run_id}/signals/paid", {"amount": "lots"}, ["amount"]),
        (f"/signal/{run_id}/paid", {}, ["amount"]),
        (f"/v1/runs/{run_id}/signals/paid", "5", []),
        (f"/v1/runs/{run_id}/signals/shipped", {"carrier": 7}, ["carrier"]),
        (f"/signal/{run_id}/shipped", {"amount": 5}, ["carrier"]),
    ]:
        err = assert_error(client.post(route, json={"data": data}), 400, "INVALID_REQUEST")
        assert err["details"]["field"] == "data"
        assert err["details"]["errors"][0]["loc"] == loc, err
    assert recorded(db) == before and _signal_rows(db, run_id) == []
    # Valid ones are taken, with the first seqs; a name no node declares takes anything.
    sent = [
        client.post(f"/v1/runs/{run_id}/signals/shipped", json={"data": {"carrier": "ups"}}),
        client.post(f"/v1/runs/{run_id}/signals/unheard", json={"data": ["any", 1]}),
        client.post(f"/v1/runs/{run_id}/signals/paid", json={"data": {"amount": 5}}),
    ]
    assert [r.status_code for r in sent] == [200, 200, 200], [r.text for r in sent]
    assert [r.json()["seq"] for r in sent] == [0, 1, 2]
    assert _signal_rows(db, run_id) == [(0, "shipped"), (1, "unheard"), (2, "paid")]


def test_select_and_rank_decisions_are_checked_when_they_arrive(
    client: httpx.Client, db: sa.Engine
) -> None:
    run_id = start_run(client, "srv_human.py")
    wait_status(client, run_id, ("waiting-approval", "waiting-event"))
    before = recorded(db)
    pick, order = (f"/v1/runs/{run_id}/nodes/{n}" for n in ("pick", "order"))
    refused = [
        (f"{pick}/approve", {}),
        (f"{pick}/approve", {"decision": {"selected": "z"}}),
        (f"{pick}/approve", {"decision": {"selected": ["a"]}}),
        (f"{pick}/deny", {"decision": {"selected": "z"}}),
        (f"{order}/approve", {"decision": {"ranked": []}}),
        (f"{order}/approve", {"decision": {"ranked": "abc"}}),
        (f"{order}/approve", {"decision": {"ranked": ["a", "a"]}}),
        (f"{order}/approve", {"decision": {"ranked": ["a", "z"]}}),
        (f"{order}/approve", {"decision": {"ranked": ["a", "b", "c", "a"]}}),
        (f"{order}/deny", {"decision": {"ranked": ["z"]}}),
    ]
    for route, body in refused:
        err = assert_error(client.post(route, json=body), 400, "INVALID_REQUEST")
        assert err["details"]["field"] in ("decision.selected", "decision.ranked"), err
        assert err["details"]["options"] == ["a", "b", "c"]
    assert recorded(db) == before
    pending = {a["nodeId"] for a in client.get("/v1/approvals").json()["approvals"]}
    assert {"pick", "order"} <= pending
    # A choice among the options, a ranking of some of them; a plain denial needs none.
    for route, body in [
        (f"{pick}/approve", {"decision": {"selected": "b"}}),
        (f"{order}/approve", {"decision": {"ranked": ["c", "a"]}}),
        # The REST server knows no caller, so allowed_users / allowed_scopes are not checked.
        (f"/v1/runs/{run_id}/nodes/owner/approve", {}),
    ]:
        res = client.post(route, json=body)
        assert res.status_code == 200, (route, res.text)


# -- the serve app -----------------------------------------------------------------------------


@asynccontextmanager
async def _serving(store: Store, example: str) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    wf = load_workflow(EXAMPLES / example)
    mine: set[str] = set()  # other tests' runs share the schema: adopt only ours
    async with Runtime(store, resolve=lambda run: wf if run.run_id in mine else None) as rt:
        run_id = await rt.start(wf, input={})
        mine.add(run_id)
        app = create_serve_app(workflow=wf, store=store, run_id=run_id, runtime=rt)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
            ) as http,
        ):
            yield http, run_id


def _status(store: Store, run_id: str) -> str | None:
    run = get_run(store, run_id)
    return None if run is None else run.status


@pytest.mark.anyio
async def test_serve_app_refuses_nul_numbers_and_bad_payloads(store: Store) -> None:
    async with _serving(store, "signal.py") as (http, run_id):
        await eventually(lambda: _status(store, run_id) == "waiting-event")
        for path, raw, field in [
            ("/signals/%00", b"{}", "signalName"),
            ("/signals/pay%00ment", b"{}", "signalName"),
            ("/approve/%00", b"{}", "nodeId"),
            ("/deny/x%00", b"{}", "nodeId"),
            ("/signals/payment", b'{"data": {"amount": "\\u0000"}}', "data.amount"),
            ("/signals/payment", b'{"data": {"amount": 1e999}}', "data.amount"),
            ("/signals/payment", b'{"data": {"amount": "lots"}}', "data"),
            ("/deny/payment", b'{"note": "\\u0000"}', "note"),
        ]:
            res = await http.post(path, content=raw, headers={"content-type": "application/json"})
            assert res.status_code == 400, (path, raw, res.text)
            assert res.json()["error"]["code"] == "INVALID_REQUEST"
            assert res.json()["error"]["details"]["field"] == field, (path, res.text)
        with store.read() as conn:
            query = sa.text("SELECT count(*) FROM _smithers_signals WHERE run_id = :r")
            assert conn.execute(query, {"r": run_id}).scalar_one() == 0
        res = await http.post("/signals/payment", json={"data": {"amount": 3}})
        assert res.status_code == 200 and res.json()["seq"] == 0, res.text
        with anyio.fail_after(15):
            await eventually(lambda: _status(store, run_id) == "finished")
