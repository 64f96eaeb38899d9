"""`/openapi.json`: generated from the routes and the models, valid OpenAPI 3.1, the mount
prefix in `servers`; and schemathesis run against the real server finds no 5xx and no
answer outside the document.

Every JSON answer of the other end-to-end tests is checked against the document too (the
response hook of `ServerProcess.client()`, see `openapi_check.py`).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from smithers_server import create_app

from .conftest import ServerProcess, assert_error, start_runs, stays_healthy
from .openapi_check import ResponseCheck
from .test_mount import serve, starlette_host, wait_status

TOKEN = "openapi-token-0123456789"


@pytest.fixture(scope="module")
def srv(spawn: Callable[..., ServerProcess]) -> ServerProcess:
    # Listing workflows waits up to the load timeout for srv_slow_import.py (blocked for
    # a minute): keep that within the fuzzer's timeout of a case.
    return spawn(token=TOKEN, args=("--load-timeout", "2000"))


@pytest.fixture(scope="module")
def document(srv: ServerProcess) -> dict[str, Any]:
    with srv.client() as c:
        res = c.get("/openapi.json")
    assert res.status_code == 200, res.text
    found: dict[str, Any] = res.json()
    return found


def test_the_document_is_valid_openapi_with_typed_answers(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"] == "3.1.0" and "servers" not in document
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            ok = op["responses"]["200"]["content"]
            if "application/json" not in ok:
                assert path in ("/metrics", "/v1/runs/{runId}/events"), path
                continue
            schema = ok["application/json"]["schema"]
            # Each answer is a model, not a bare {"type": "object"}.
            assert "$ref" in schema or "$ref" in schema.get("items", {}), (method, path)
            if method == "post" and not path.endswith("/cancel"):
                body = op["requestBody"]["content"]["application/json"]["schema"]
                assert body["$ref"].startswith("#/components/schemas/"), path
            if path != "/health":
                assert "401" in op["responses"], path
    schemas = document["components"]["schemas"]
    start = schemas["StartRun"]
    assert start["required"] == ["workflowPath"]
    assert start["properties"]["runId"]["anyOf"][0]["pattern"].startswith("^[A-Za-z0-9]")
    assert schemas["ErrorEnvelope"]["additionalProperties"] is False
    assert set(schemas["RunView"]["required"]) >= {"runId", "status", "summary", "runState"}
    listed = {p["name"] for p in document["paths"]["/v1/runs"]["get"]["parameters"]}
    assert listed == {"limit", "status", "workflow"}
    runs = document["paths"]["/v1/runs"]["get"]["responses"]["200"]["content"]
    assert runs["application/json"]["schema"]["type"] == "array"  # a bare array
    workflows = document["paths"]["/v1/workflows"]["get"]["responses"]["200"]["content"]
    items = workflows["application/json"]["schema"]
    assert items["type"] == "array" and items["items"]["$ref"].endswith("/WorkflowItem")
    assert set(schemas["WorkflowItem"]["required"]) == {"path", "name", "inputSchema"}


@pytest.mark.anyio
async def test_mounted_document_names_the_prefix_in_servers(tmp_path: Path) -> None:
    """A client of the mounted app resolves the document's paths under the prefix."""
    from tests.server.conftest import make_root

    inner = create_app(db=f"sqlite:///{tmp_path / 'm.db'}", root_dir=make_root(tmp_path / "r"))
    async with serve(starlette_host(api=inner)) as c:
        doc = (await c.get("/api/openapi.json")).json()
        assert doc["servers"] == [{"url": "/api"}]
        validate(doc)
        check = ResponseCheck(doc)
        res = await c.post("/api/v1/runs", json={"workflowPath": "hello.py"})
        check.check(res)
        run_id = res.json()["runId"]
        await wait_status(c, "/api", run_id, ("finished",))
        for path in ("/api/v1/runs", f"/api/v1/runs/{run_id}", f"/api/v1/runs/{run_id}/frames"):
            check.check(await c.get(path))
        check.check(await c.get("/api/v1/runs/nope"))
        assert check.checked == 5


def test_a_refusal_names_the_field_the_model_refused(srv: ServerProcess) -> None:
    """The 400 comes from the model's validation, with the nested field as a dot path."""
    with srv.client() as c:
        for body, field in [
            ({}, "workflowPath"),
            ({"workflowPath": ""}, "workflowPath"),
            (
                {"workflowPath": "hello.py", "config": {"maxConcurrency": "2"}},
                "config.maxConcurrency",
            ),
            ({"workflowPath": "hello.py", "runId": "ab\n"}, "runId"),
        ]:
            err = assert_error(c.post("/v1/runs", json=body), 400, "INVALID_REQUEST")
            assert err["details"] == {"field": field}, (body, err)
            assert err["message"].startswith(field), err
        for query, field in [("limit=0", "limit"), ("limit=1001", "limit"), ("status=x", "status")]:
            err = assert_error(c.get(f"/v1/runs?{query}"), 400, "INVALID_REQUEST")
            assert err["details"] == {"field": field}


# -- schemathesis ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeded(srv: ServerProcess) -> dict[str, str]:
    """Runs for path parameters to land on: parked on an approval, on a signal, finished."""
    with srv.client() as c:
        return start_runs(
            c,
            {
                "approval": ("approval.py", "waiting-approval"),
                "signal": ("signal.py", "waiting-event"),
                "done": ("hello.py", "finished"),
            },
        )


@pytest.fixture(scope="module")
def api_schema(srv: ServerProcess, seeded: dict[str, str], document: dict[str, Any]) -> Any:
    config = schemathesis.Config.from_dict(
        {"base-url": srv.url, "headers": {"authorization": f"Bearer {TOKEN}"}}
    )
    schema = schemathesis.openapi.from_dict(document, config=config)
    # Path parameters are mostly real names, so cases reach runs, nodes and signals.
    real = {
        "runId": [*seeded.values()],
        "nodeId": ["review"],
        "signalName": ["payment"],
    }

    @schema.hook
    def map_path_parameters(context: Any, path_parameters: Any) -> Any:
        if not isinstance(path_parameters, dict):
            return path_parameters
        mapped = dict(path_parameters)
        # A stream on a live run stays open: events are read from finished runs only.
        live = context.operation.path.endswith("/events")
        for name, names in real.items():
            if live and name == "runId":
                names = [seeded["done"]]
            if name in mapped:
                pick = zlib.crc32(str(mapped[name]).encode()) % (len(names) + 1)
                if pick < len(names):
                    mapped[name] = names[pick]
        return mapped

    return schema


CASES_PER_OPERATION = 20
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def fuzz(api_schema: Any, operation: Any, mode: GenerationMode) -> int:
    """Send one operation's cases (derandomized, so CI sends the same ones); how many."""
    sent = 0

    @hypothesis.settings(
        max_examples=CASES_PER_OPERATION,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @hypothesis.given(case=operation.as_strategy(mode, hooks=api_schema.hooks))
    def run(case: Any) -> None:
        nonlocal sent
        case.call_and_validate(checks=CHECKS, timeout=15)
        sent += 1

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        # A path of free text has no invalid value: only valid cases exist.
        assert mode is GenerationMode.NEGATIVE, operation.label
    return sent


def test_schemathesis_finds_no_5xx_and_no_answer_outside_the_document(
    srv: ServerProcess, api_schema: Any
) -> None:
    """Every operation, with valid and invalid cases, a bounded number of each."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == sum(len(ops) for ops in api_schema.raw_schema["paths"].values())
    with stays_healthy(srv):
        for operation in operations:
            assert fuzz(api_schema, operation, GenerationMode.POSITIVE) > 0, operation.label
            if operation.body or operation.path_parameters or operation.query:
                fuzz(api_schema, operation, GenerationMode.NEGATIVE)
