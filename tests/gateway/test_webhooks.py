"""`POST /webhooks/{key}` on a real gateway: signed deliveries go as signals to the runs
waiting for them or start a run; bad signatures, stale timestamps, replays and oversized
bodies are refused and counted in `/metrics`. And the webhook config and its pure parts."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from smithers import Signal, Task, Workflow, create_smithers
from smithers.errors import SmithersError
from smithers_gateway import Gateway
from smithers_gateway.webhook_config import parse_config, pick, signature

from .conftest import TERMINAL, TOKEN_AUTH, Rpc, Running

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]

SECRET = "It's a Secret to Everybody"
MAX_BODY = 4096


class Ci(BaseModel):
    status: str


class Deployed(BaseModel):
    message: str


smithers, outputs = create_smithers(hook_ci=Ci, hook_deployed=Deployed)


@smithers
def deploy(ctx: Any) -> Workflow:
    return Workflow(
        "deploy",
        [
            Signal("ci", output=outputs.hook_ci, correlation_id=ctx.input.get("sha")),
            Task("report", output=outputs.hook_deployed, run={"message": f"{ctx.input['ref']}"}),
        ],
    )


HOOKS: dict[str, dict[str, Any]] = {
    # GitHub's shape: the signal's payload at `check`, a new run's input at `push`.
    "deploy": {
        "secret": SECRET,
        "signal": {"name": "ci", "payloadPath": "check"},
        "run": {"enabled": True, "inputPath": "push"},
    },
    # A run named by the body; no run started.
    "by-run": {"secret": SECRET, "signal": {"name": "ci", "runIdPath": "run.id"}},
    # Every run waiting for the commit the body names.
    "by-sha": {
        "secret": SECRET,
        "signal": {"name": "ci", "correlationIdPath": "sha", "payloadPath": "check"},
    },
    # A signed timestamp: `t.body`.
    "stamped": {"secret": SECRET, "timestampHeader": "x-timestamp", "run": {}},
}


@asynccontextmanager
async def webhook_gateway(db_path: Path, db: str | None = None) -> AsyncIterator[Running]:
    gateway = Gateway(
        auth=TOKEN_AUTH,
        db=db or f"sqlite:///{db_path}",
        workspace_root=db_path.parent,
        max_body_bytes=MAX_BODY,
    )
    for key, hook in HOOKS.items():
        gateway.register(key, deploy, webhook=hook)
    gateway.register("plain", deploy)  # no webhook
    server = await gateway.listen(port=0)
    try:
        yield Running(gateway, server, db_path)
    finally:
        await gateway.close()


def clients(gw: Running) -> tuple[httpx.AsyncClient, Rpc]:
    client = gw.client()
    return client, Rpc(client)


def signed(body: bytes, secret: str = SECRET, **headers: str) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"x-hub-signature-256": f"sha256={digest}", "content-type": "application/json"} | {
        name.replace("_", "-"): value for name, value in headers.items()
    }


async def post(client: httpx.AsyncClient, key: str, payload: Any, **headers: str) -> Any:
    body = json.dumps(payload).encode()
    return await client.post(f"/webhooks/{key}", content=body, headers=signed(body, **headers))


async def rejected(client: httpx.AsyncClient) -> dict[str, float]:
    text = (await client.get("/metrics")).text
    pattern = r'^smithers_gateway_webhooks_rejected_total\{reason="(\w+)"\} (\S+)$'
    return {m[1]: float(m[2]) for m in re.finditer(pattern, text, re.MULTILINE)}


@pytest.fixture
def db_path(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "hooks.db"


async def test_invalid_signatures_are_refused_and_counted(db_path: Path) -> None:
    async with webhook_gateway(db_path) as gateway:
        client, rpc = clients(gateway)
        async with client:
            body = b'{"push": {"ref": "main"}}'
            tampered = b'{"push": {"ref": "evil"}}'
            wrong_secret = signed(body, secret="guess")
            bare = signed(body)["x-hub-signature-256"].removeprefix("sha256=")
            cases: list[tuple[bytes, Any]] = [
                (body, wrong_secret),
                (tampered, signed(body)),
                (body, {"x-hub-signature-256": bare}),
                (body, {}),
                (body, {"x-hub-signature-256": ("sha256=" + "é" * 64).encode("utf-8")}),
            ]
            for content, headers in cases:
                res = await client.post("/webhooks/deploy", content=content, headers=headers)
                assert res.status_code == 401, res.text
                assert res.json()["error"]["code"] == "UNAUTHORIZED"
            for key in ("nope", "plain"):  # no such key, no webhook: one answer
                res = await client.post(f"/webhooks/{key}", content=body, headers=signed(body))
                assert res.status_code == 404 and res.json()["error"]["code"] == "NOT_FOUND"
            assert await rejected(client) == {"signature": 5, "unknown_key": 2}
            assert await rpc("listRuns") == []


async def test_no_waiting_run_starts_one_then_the_next_delivery_signals_it(db_path: Path) -> None:
    async with webhook_gateway(db_path) as gateway:
        client, rpc = clients(gateway)
        async with client:
            res = await post(client, "deploy", {"push": {"ref": "main"}})
            assert res.status_code == 200, res.text
            answer = res.json()
            assert answer["ok"] is True and answer["delivered"] == []
            run_id = answer["started"]["runId"]
            assert answer["started"] == {"runId": run_id, "workflow": "deploy"}
            await rpc.wait_status(run_id, "waiting-event")

            res = await post(client, "deploy", {"check": {"status": "green"}, "push": {}})
            assert res.status_code == 200, res.text
            answer = res.json()
            assert answer["started"] is None
            [sent] = answer["delivered"]
            assert sent["runId"] == run_id and sent["signalName"] == "ci"
            assert (await rpc.wait_status(run_id, TERMINAL))["status"] == "finished"
            ci = await rpc("getNodeOutput", runId=run_id, nodeId="ci")
            assert ci["output"] == {"status": "green"}
            report = await rpc("getNodeOutput", runId=run_id, nodeId="report")
            assert report["output"] == {"message": "main"}
            assert len(await rpc("listRuns")) == 1
            # A payload the waiting node refuses: 400, nothing sent, no run started.
            await post(client, "deploy", {"push": {"ref": "next"}})
            [waiting] = [r for r in await rpc("listRuns") if r["runId"] != run_id]
            await rpc.wait_status(waiting["runId"], "waiting-event")
            res = await post(client, "deploy", {"check": {"status": 5}})
            assert res.status_code == 400 and res.json()["error"]["code"] == "INVALID_REQUEST"
            assert len(await rpc("listRuns")) == 2


async def test_a_signal_goes_to_every_run_waiting_for_it(db_path: Path) -> None:
    async with webhook_gateway(db_path) as gateway:
        client, rpc = clients(gateway)
        async with client:
            runs = {
                sha: [
                    (await rpc("launchRun", workflow="by-sha", input={"ref": sha, "sha": sha}))[
                        "runId"
                    ]
                    for _ in range(2)
                ]
                for sha in ("a", "b")
            }
            for run_id in [*runs["a"], *runs["b"]]:
                await rpc.wait_status(run_id, "waiting-event")
            res = await post(client, "by-sha", {"sha": "a", "check": {"status": "green"}})
            assert res.status_code == 200, res.text
            delivered = res.json()["delivered"]
            assert sorted(d["runId"] for d in delivered) == sorted(runs["a"])
            assert {d["correlationId"] for d in delivered} == {"a"}
            for run_id in runs["a"]:
                await rpc.wait_status(run_id, "finished")
            for run_id in runs["b"]:
                assert (await rpc("getRun", runId=run_id))["status"] == "waiting-event"


async def test_a_run_id_path_names_the_one_run_signalled(db_path: Path) -> None:
    async with webhook_gateway(db_path) as gateway:
        client, rpc = clients(gateway)
        async with client:
            first, second = [
                (await rpc("launchRun", workflow="by-run", input={"ref": ref}))["runId"]
                for ref in ("a", "b")
            ]
            for run_id in (first, second):
                await rpc.wait_status(run_id, "waiting-event")
            res = await post(client, "by-run", {"run": {"id": second}, "status": "red"})
            assert res.status_code == 200, res.text
            assert [d["runId"] for d in res.json()["delivered"]] == [second]
            assert res.json()["started"] is None
            await rpc.wait_status(second, "finished")
            assert (await rpc("getRun", runId=first))["status"] == "waiting-event"
            # A run id that is no run of this workflow: nothing delivered, nothing started.
            res = await post(client, "by-run", {"run": {"id": "smi_nope"}, "status": "red"})
            assert res.json() == {"ok": True, "delivered": [], "started": None}
            # A body that is not JSON cannot be read by the paths.
            body = b"status=red"
            res = await client.post("/webhooks/by-run", content=body, headers=signed(body))
            assert res.status_code == 400 and res.json()["error"]["code"] == "INVALID_REQUEST"
            assert (await rejected(client)).get("invalid_request") == 1


async def test_a_replayed_delivery_id_is_refused_by_every_gateway_on_the_database(
    db_path: Path, new_db_url: Callable[[], str]
) -> None:
    db = new_db_url()  # a SQLite file or a PostgreSQL schema, for two gateways
    async with webhook_gateway(db_path, db) as one, webhook_gateway(db_path, db) as two:
        (client_one, rpc), (client_two, _) = clients(one), clients(two)
        async with client_one, client_two:
            payload = {"push": {"ref": "main"}}
            res = await post(client_one, "deploy", payload, x_github_delivery="d-1")
            assert res.status_code == 200, res.text
            assert res.json()["started"] is not None
            for client in (client_one, client_two):
                res = await post(client, "deploy", payload, x_github_delivery="d-1")
                assert res.status_code == 200
                assert res.json() == {"ok": True, "duplicate": True}
                assert await rejected(client) == {"duplicate": 1}
            assert len(await rpc("listRuns")) == 1
            # The id belongs to its webhook: another webhook's d-1 is new.
            body = b"{}"
            headers = {**stamped(body, int(time.time())), "x-github-delivery": "d-1"}
            res = await client_two.post("/webhooks/stamped", content=body, headers=headers)
            assert res.status_code == 200 and res.json()["started"] is not None
            assert len(await rpc("listRuns")) == 2


def stamped(body: bytes, timestamp: int) -> dict[str, str]:
    signed_text = f"{timestamp}.".encode() + body
    digest = hmac.new(SECRET.encode(), signed_text, hashlib.sha256).hexdigest()
    return {"x-hub-signature-256": f"sha256={digest}", "x-timestamp": str(timestamp)}


async def test_a_stale_timestamp_is_refused(db_path: Path) -> None:
    async with webhook_gateway(db_path) as gateway:
        client, rpc = clients(gateway)
        async with client:
            body = b'{"ref": "main"}'
            now = int(time.time())
            for when in (now - 301, now + 301, now - 3600):
                res = await client.post(
                    "/webhooks/stamped", content=body, headers=stamped(body, when)
                )
                assert res.status_code == 401 and res.json()["error"]["code"] == "UNAUTHORIZED"
            # Without the timestamp, or one it did not sign: refused too.
            headers = stamped(body, now)
            res = await client.post(
                "/webhooks/stamped", content=body, headers={**headers, "x-timestamp": str(now - 1)}
            )
            assert res.status_code == 401
            del headers["x-timestamp"]
            res = await client.post("/webhooks/stamped", content=body, headers=headers)
            assert res.status_code == 401
            assert await rejected(client) == {"timestamp": 4, "signature": 1}
            res = await client.post(
                "/webhooks/stamped", content=body, headers=stamped(body, now - 5)
            )
            assert res.status_code == 200, res.text
            assert res.json()["started"]["workflow"] == "stamped"
            assert len(await rpc("listRuns")) == 1


async def test_an_oversized_body_is_refused_before_its_signature_is_checked(
    db_path: Path,
) -> None:
    async with webhook_gateway(db_path) as gateway:
        client, rpc = clients(gateway)
        async with client:
            body = json.dumps({"push": {"ref": "x" * MAX_BODY}}).encode()
            # Correctly signed all the same: the size answers first, both when declared and
            # when streamed without a Content-Length.
            res = await client.post("/webhooks/deploy", content=body, headers=signed(body))
            assert res.status_code == 413 and res.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"

            async def chunks() -> AsyncIterator[bytes]:
                for start in range(0, len(body), 1024):
                    yield body[start : start + 1024]

            res = await client.post("/webhooks/deploy", content=chunks(), headers=signed(body))
            assert res.status_code == 413
            assert await rejected(client) == {"body_too_large": 2}
            assert await rpc("listRuns") == []


def test_the_config_is_checked_when_the_workflow_is_registered(tmp_path: Path) -> None:
    gateway = Gateway(db=f"sqlite:///{tmp_path / 'x.db'}", workspace_root=tmp_path)
    for bad, field in (
        ({"signal": {"name": "ci"}}, "secret"),
        ({"secret": ""}, "secret"),
        ({"secret": "s", "signal": {}}, "signal.name"),
        ({"secret": "s", "run": {}, "toleranceSeconds": 0}, "toleranceSeconds"),
        ({"secret": "s", "run": {}, "signatureHeader": "x y"}, "signatureHeader"),
        ({"secret": "s", "run": {}, "sigantureHeader": "x"}, "sigantureHeader"),
        ({"secret": "s", "run": {"enabled": "yes"}}, "run.enabled"),
    ):
        with pytest.raises(SmithersError) as caught:
            gateway.register("deploy", deploy, webhook=bad)
        assert caught.value.code == "INVALID_REQUEST" and caught.value.details["field"] == field
    for useless in ({"secret": "s"}, {"secret": "s", "run": {"enabled": False}}):
        with pytest.raises(SmithersError, match="does nothing"):
            gateway.register("deploy", deploy, webhook=useless)
    with pytest.raises(SmithersError, match="must be a dict"):
        gateway.register("deploy", deploy, webhook="secret")
    gateway.register("deploy", deploy, webhook={"secret": "s", "run": {}})


def test_signatures_and_dot_paths() -> None:
    config = parse_config("k", {"secret": SECRET, "run": {}})
    # GitHub's documented example of X-Hub-Signature-256.
    assert signature(config, b"Hello, World!") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )
    assert signature(config, b"b", "1") == signature(config, b"1.b")
    body = {"a": {"b": [{"c": 1}, None]}, "d": "x"}
    assert pick(body, "a.b.0.c") == 1
    assert pick(body, None) is body
    for nowhere in ("a.b.2", "a.b.c", "d.e", "z", "a.b.-1", "a.b.²"):
        assert pick(body, nowhere) is None
