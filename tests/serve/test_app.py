"""The serve app against a real run driven by a real runtime (through ASGITransport)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from smithers import Runtime, Store, load_workflow
from smithers.queries import get_run
from smithers_serve import create_serve_app
from tests.helpers import EXAMPLES, eventually

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def serving(
    store: Store,
    example: str,
    input: dict[str, Any] | None = None,
    *,
    adopting: bool = True,
    **options: Any,
) -> AsyncIterator[tuple[httpx.AsyncClient, str, Runtime]]:
    """The app over a run of `example`; its runtime adopts runs by itself (`resolve=`)
    unless not `adopting` (the serve app alone then sets a released run going again)."""
    wf = load_workflow(EXAMPLES / example)
    mine: set[str] = set()  # other tests' runs share the schema: adopt only ours
    resolve = (lambda run: wf if run.run_id in mine else None) if adopting else None
    async with Runtime(store, resolve=resolve) as rt:
        run_id = await rt.start(wf, input=input or {})
        mine.add(run_id)
        app = create_serve_app(workflow=wf, store=store, run_id=run_id, runtime=rt, **options)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
            ) as client,
        ):
            yield client, run_id, rt


def status_of(store: Store, run_id: str) -> str | None:
    run = get_run(store, run_id)
    return None if run is None else run.status


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


async def test_root_while_running_and_after_finishing(store: Store) -> None:
    async with serving(store, "slow.py", {"seconds": 0.3}) as (client, run_id, rt):
        running = (await client.get("/")).json()
        assert running["runId"] == run_id and running["status"] == "running"
        assert running["workflowName"] == "slow"
        assert set(running) >= {"startedAtMs", "finishedAtMs", "summary", "runState"}
        await rt.wait(run_id)
        done = await client.get("/")
        assert done.status_code == 200 and done.json()["status"] == "finished"
        assert done.json()["runState"]["state"] == "succeeded"
        assert done.headers["content-type"] == "application/json"
        assert done.headers["cache-control"] == "no-store"
        assert done.headers["x-content-type-options"] == "nosniff"


async def test_auth(store: Store) -> None:
    async with serving(store, "hello.py", auth_token="tok") as (client, _, _):
        assert (await client.get("/health")).json() == {"ok": True}
        refused = await client.get("/")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "UNAUTHORIZED"
        assert (await client.get("/", headers={"x-smithers-key": "nope"})).status_code == 401
        assert (await client.get("/", headers={"authorization": "Bearer tok"})).status_code == 200
        assert (await client.get("/", headers={"authorization": "bearer tok"})).status_code == 200
        assert (await client.get("/", headers={"x-smithers-key": "tok"})).status_code == 200
        assert (await client.post("/cancel")).status_code == 401


async def test_everything_open_without_a_token(store: Store) -> None:
    async with serving(store, "hello.py") as (client, run_id, rt):
        await rt.wait(run_id)
        for path in ("/", "/frames", "/metrics", "/health"):
            assert (await client.get(path)).status_code == 200, path


async def test_approve_a_waiting_task(store: Store) -> None:
    async with serving(store, "approval.py", {"msg": "go"}) as (client, run_id, rt):
        await rt.wait(run_id)
        assert status_of(store, run_id) == "waiting-approval"
        answer = await client.post("/approve/review", json={"decidedBy": "ann", "note": "ok"})
        assert answer.json() == {
            "runId": run_id,
            "nodeId": "review",
            "iteration": 0,
            "approved": True,
        }
        await eventually(lambda: status_of(store, run_id) == "finished")
        again = await client.post("/approve/review")
        assert again.status_code == 409 and again.json()["error"]["code"] == "ALREADY_DECIDED"
        metrics = (await client.get("/metrics")).text
        assert value(metrics, "smithers_approvals_requested_total") == 1
        assert value(metrics, "smithers_approvals_granted_total") == 1
        assert value(metrics, "smithers_approvals_denied_total") == 0
        assert value(metrics, "smithers_runs_finished_total") == 1
        assert value(metrics, "smithers_runs_failed_total") == 0
        assert value(metrics, "smithers_nodes_failed_total") == 0
        assert value(metrics, "smithers_nodes_finished_total") >= 3


async def test_deny_a_waiting_task(store: Store) -> None:
    async with serving(store, "approval.py") as (client, run_id, rt):
        await rt.wait(run_id)
        denied = await client.post("/deny/review", json={"note": "no"})
        assert denied.status_code == 200 and denied.json()["approved"] is False
        await eventually(lambda: status_of(store, run_id) == "failed")
        metrics = (await client.get("/metrics")).text
        assert value(metrics, "smithers_approvals_denied_total") == 1
        assert value(metrics, "smithers_runs_failed_total") == 1
        missing = await client.post("/approve/nope")
        assert missing.status_code == 409
        assert missing.json()["error"]["code"] in ("NODE_NOT_WAITING", "ALREADY_DECIDED")


@pytest.mark.parametrize(
    ("verb", "status"), [("approve", "finished"), ("deny", "failed")], ids=["approve", "deny"]
)
async def test_a_decision_resumes_the_run_of_a_runtime_without_resolve(
    store: Store, verb: str, status: str
) -> None:
    async with serving(store, "approval.py", {"msg": "go"}, adopting=False) as (client, run_id, rt):
        await rt.wait(run_id)
        assert status_of(store, run_id) == "waiting-approval"
        answer = await client.post(f"/{verb}/review", json={"decidedBy": "ann"})
        assert answer.status_code == 200, answer.text
        with anyio.fail_after(10):
            assert (await rt.wait(run_id)).status == status
        assert (await client.get("/")).json()["status"] == status


async def test_a_signal_resumes_the_run_of_a_runtime_without_resolve(store: Store) -> None:
    async with serving(store, "signal.py", adopting=False) as (client, run_id, rt):
        await rt.wait(run_id)
        assert status_of(store, run_id) == "waiting-event"
        early = await client.post("/signals/other", json={"data": {}})
        assert early.status_code == 200 and status_of(store, run_id) == "waiting-event"
        answer = await client.post("/signals/payment", json={"data": {"amount": 7}})
        assert answer.status_code == 200, answer.text
        with anyio.fail_after(10):
            done = await rt.wait(run_id)
        assert done.status == "finished"
        assert done.outputs["receipt"]["text"] == "paid 7"


async def test_cancel_a_running_run_and_409_once_finished(store: Store) -> None:
    async with serving(store, "slow.py", {"seconds": 30}) as (client, run_id, rt):
        await eventually(lambda: rt.is_live(run_id))
        answer = await client.post("/cancel")
        assert answer.json() == {"runId": run_id, "status": "cancelled"}
        with anyio.fail_after(5):
            await rt.wait(run_id)
        assert status_of(store, run_id) == "cancelled"
        again = await client.post("/cancel")
        assert again.status_code == 409 and again.json()["error"]["code"] == "RUN_NOT_ACTIVE"
        metrics = (await client.get("/metrics")).text
        assert value(metrics, "smithers_runs_cancelled_total") == 1


async def test_cancel_hook_is_told(store: Store) -> None:
    told = anyio.Event()
    async with serving(store, "slow.py", {"seconds": 30}, cancel=told) as (client, _, _):
        await client.post("/cancel")
    assert told.is_set()


async def test_events_stream(store: Store) -> None:
    async with serving(store, "sequence.py") as (client, run_id, rt):
        await rt.wait(run_id)
        async with client.stream("GET", "/events") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            body = (await response.aread()).decode()
        assert body.startswith("retry: 1000\n\n")
        ids = [int(line[4:]) for line in body.splitlines() if line.startswith("id: ")]
        assert ids == list(range(len(ids))) and len(ids) > 5
        assert '"type":"RunFinished"' in body
        async with client.stream("GET", "/events?afterSeq=3") as response:
            later = (await response.aread()).decode()
        assert [int(x[4:]) for x in later.splitlines() if x.startswith("id: ")] == ids[4:]
        bad = await client.get("/events?afterSeq=x")
        assert bad.status_code == 400


async def test_frames_and_limit(store: Store) -> None:
    async with serving(store, "loop.py", {"length": 3}) as (client, run_id, rt):
        await rt.wait(run_id)
        frames = (await client.get("/frames")).json()
        assert len(frames) >= 2
        assert [f["frameNo"] for f in frames] == sorted(
            (f["frameNo"] for f in frames), reverse=True
        )
        assert frames[0]["runId"] == run_id and "xmlJson" in frames[0]
        one = (await client.get("/frames?limit=1")).json()
        assert [f["frameNo"] for f in one] == [frames[0]["frameNo"]]
        assert (await client.get("/frames?limit=0")).status_code == 400


async def test_metrics_text_and_404_when_disabled(store: Store) -> None:
    async with serving(store, "hello.py") as (client, run_id, rt):
        await rt.wait(run_id)
        await client.get("/")
        response = await client.get("/metrics")
        assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = response.text
        assert value(text, "smithers_runs_total") == 1
        assert value(text, "smithers_runs_finished_total") == 1
        assert value(text, "smithers_runs_failed_total") == 0
        assert value(text, "smithers_nodes_started_total") == 1
        assert (
            value(
                text,
                "smithers_http_requests_total",
                method="GET",
                route="/",
                status_code="200",
                status_class="2xx",
            )
            == 1
        )
    async with serving(store, "hello.py", metrics=False) as (client, _, _):
        missing = await client.get("/metrics")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"


async def test_unauthorized_requests_are_counted(store: Store) -> None:
    async with serving(store, "hello.py", auth_token="tok") as (client, _, _):
        await client.get("/")
        text = (await client.get("/metrics", headers={"x-smithers-key": "tok"})).text
        assert (
            value(
                text,
                "smithers_http_requests_total",
                method="GET",
                route="unmatched",
                status_code="401",
                status_class="4xx",
            )
            == 1
        )


async def test_unknown_route(store: Store) -> None:
    async with serving(store, "hello.py") as (client, _, _):
        response = await client.get("/v1/runs")
        assert response.status_code == 404
        assert response.json() == {"error": {"code": "NOT_FOUND", "message": "Route not found"}}
