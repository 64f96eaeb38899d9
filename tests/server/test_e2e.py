"""The REST server end to end: `smithers server` in a subprocess, spoken to over HTTP.

Three servers for the module: `srv` (a server db, no token), `nodb` (no server db, no
token) and `authed` (a server db and a token given through `--token-env`).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from .conftest import (
    TERMINAL,
    ServerProcess,
    SSEStream,
    assert_error,
    read_sse,
    start_run,
    wait_status,
)

TOKEN = "e2e-" + secrets.token_hex(16)
MIB = 1_048_576
JSON_TYPE = {"content-type": "application/json"}
TEXT_TYPE = {"content-type": "text/plain"}

# Every row of the route table: (method, path template).
ROUTES = [
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("POST", "/v1/runs"),
    ("GET", "/v1/runs"),
    ("GET", "/v1/runs/{runId}"),
    ("POST", "/v1/runs/{runId}/resume"),
    ("POST", "/v1/runs/{runId}/cancel"),
    ("GET", "/v1/runs/{runId}/events"),
    ("GET", "/v1/runs/{runId}/frames"),
    ("GET", "/v1/runs/{runId}/outputs"),
    ("GET", "/v1/workflows"),
    ("POST", "/v1/runs/{runId}/nodes/{nodeId}/approve"),
    ("POST", "/v1/runs/{runId}/nodes/{nodeId}/deny"),
    ("POST", "/v1/runs/{runId}/signals/{signalName}"),
    ("GET", "/v1/approvals"),
    ("GET", "/v1/approval/list"),
    ("GET", "/approval/list"),
    ("GET", "/approvals"),
    ("POST", "/signal/{runId}/{signalName}"),
    ("GET", "/openapi.json"),
]
APPROVAL_ALIASES = ["/v1/approvals", "/v1/approval/list", "/approval/list", "/approvals"]


@pytest.fixture(scope="module")
def srv(spawn: Callable[..., ServerProcess]) -> ServerProcess:
    return spawn()


@pytest.fixture(scope="module")
def nodb(spawn: Callable[..., ServerProcess]) -> ServerProcess:
    return spawn(db=False)


@pytest.fixture(scope="module")
def authed(spawn: Callable[..., ServerProcess]) -> ServerProcess:
    return spawn(token=TOKEN)


@pytest.fixture
def client(srv: ServerProcess) -> Iterator[httpx.Client]:
    with srv.client() as made:
        yield made


def assert_json_headers(res: httpx.Response) -> None:
    assert res.headers["content-type"] == "application/json", res.headers
    assert res.headers["cache-control"] == "no-store"
    assert res.headers["x-content-type-options"] == "nosniff"


def read_events(client: httpx.Client, run_id: str, **params: Any) -> SSEStream:
    with client.stream("GET", f"/v1/runs/{run_id}/events", params=params) as res:
        assert res.status_code == 200, res.read()
        return read_sse(res, SSEStream())


def event_types(client: httpx.Client, run_id: str) -> list[str]:
    return read_events(client, run_id).types


# -- every route, with and without a token ---------------------------------------------------


def exercise_routes(c: httpx.Client, *, server_db: bool) -> None:
    """One good request to every row of the route table, and the effect it must have."""
    done = start_run(c, "hello.py", input={"name": "routes"})
    approve_me = start_run(c, "approval.py", input={"msg": "a"})
    deny_me = start_run(c, "approval.py", input={"msg": "d"})
    signal_me = start_run(c, "signal.py")
    alias_me = start_run(c, "signal.py")
    slow = start_run(c, "slow.py", input={"seconds": 30})
    wait_status(c, done, "finished")
    for run_id in (approve_me, deny_me):
        wait_status(c, run_id, "waiting-approval")
    for run_id in (signal_me, alias_me):
        wait_status(c, run_id, "waiting-event")

    res = c.get("/health")
    assert res.status_code == 200 and res.json() == {"ok": True}
    assert_json_headers(res)

    res = c.get("/metrics")
    assert res.status_code == 200
    assert res.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "smithers_http_requests_total" in res.text

    res = c.get("/openapi.json")
    assert res.status_code == 200 and res.json()["openapi"].startswith("3.1")
    assert_json_headers(res)

    res = c.get("/v1/runs")
    if server_db:
        assert res.status_code == 200
        assert done in [r["runId"] for r in res.json()]
        assert_json_headers(res)
    else:
        assert_error(res, 400, "DB_NOT_CONFIGURED")

    res = c.get(f"/v1/runs/{done}")
    assert res.status_code == 200 and res.json()["status"] == "finished"
    assert_json_headers(res)

    with c.stream("GET", f"/v1/runs/{done}/events") as res:
        assert res.status_code == 200
        assert res.headers["content-type"].startswith("text/event-stream")
        stream = read_sse(res, SSEStream())
    assert stream.closed and stream.ids == list(range(len(stream.ids)))

    res = c.get(f"/v1/runs/{done}/frames")
    assert res.status_code == 200 and len(res.json()) >= 1
    assert_json_headers(res)

    # An empty body is allowed on approve (it reads as {}).
    res = c.post(f"/v1/runs/{approve_me}/nodes/review/approve")
    assert res.status_code == 200, res.text
    assert res.json() == {"runId": approve_me, "nodeId": "review", "iteration": 0, "approved": True}
    assert_json_headers(res)

    res = c.post(f"/v1/runs/{deny_me}/nodes/review/deny", json={"note": "no"})
    assert res.status_code == 200, res.text
    assert res.json() == {"runId": deny_me, "nodeId": "review", "iteration": 0, "approved": False}

    res = c.post(f"/v1/runs/{signal_me}/signals/payment", json={"data": {"amount": 1}})
    assert res.status_code == 200 and res.json()["signalName"] == "payment"
    res = c.post(f"/signal/{alias_me}/payment", json={"data": {"amount": 2}})
    assert res.status_code == 200 and res.json()["runId"] == alias_me
    assert_json_headers(res)

    for path in APPROVAL_ALIASES:
        res = c.get(path)
        if server_db:
            assert res.status_code == 200 and isinstance(res.json()["approvals"], list)
            assert_json_headers(res)
        else:
            assert_error(res, 400, "DB_NOT_CONFIGURED")

    res = c.post(f"/v1/runs/{slow}/resume", json={})
    assert res.status_code == 200 and res.json() == {"runId": slow, "status": "running"}
    res = c.post(f"/v1/runs/{slow}/cancel")
    assert res.status_code == 200 and res.json() == {"runId": slow, "status": "cancelled"}

    assert wait_status(c, approve_me, TERMINAL)["status"] == "finished"
    assert wait_status(c, deny_me, TERMINAL)["status"] == "failed"
    assert wait_status(c, signal_me, TERMINAL)["status"] == "finished"
    assert wait_status(c, alias_me, TERMINAL)["status"] == "finished"
    assert wait_status(c, slow, TERMINAL)["status"] == "cancelled"


def test_every_route_without_token(srv: ServerProcess) -> None:
    with srv.client() as c:
        exercise_routes(c, server_db=True)


def test_every_route_without_server_db(nodb: ServerProcess) -> None:
    with nodb.client() as c:
        exercise_routes(c, server_db=False)


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": f"Bearer {TOKEN}"},
        {"authorization": f"bearer {TOKEN}"},
        {"x-smithers-key": TOKEN},
    ],
    ids=["Bearer", "bearer", "x-smithers-key"],
)
def test_every_route_with_token(authed: ServerProcess, headers: dict[str, str]) -> None:
    with authed.client(auth=False, headers=headers) as c:
        exercise_routes(c, server_db=True)


@pytest.mark.parametrize("which", ["srv", "nodb", "authed"])
def test_every_error_row(which: str, request: pytest.FixtureRequest) -> None:
    """Each error code of the spec, from each server (the token sent as x-smithers-key)."""
    server: ServerProcess = request.getfixturevalue(which)
    headers = {"x-smithers-key": TOKEN} if server.token else {}
    with server.client(auth=False, headers=headers) as c:
        done = start_run(c, "hello.py")
        parked = start_run(c, "approval.py")
        decided = start_run(c, "approval.py")
        live = start_run(c, "slow.py", input={"seconds": 30})
        wait_status(c, done, "finished")
        wait_status(c, parked, "waiting-approval")
        wait_status(c, decided, "waiting-approval")
        assert c.post(f"/v1/runs/{decided}/nodes/review/deny").status_code == 200
        start = "/v1/runs"
        rows: list[tuple[httpx.Response, int, str]] = [
            (c.post(start, content=b"{", headers=JSON_TYPE), 400, "INVALID_JSON"),
            (
                c.post(start, content=b'{"workflowPath": "hello.py"}', headers=TEXT_TYPE),
                415,
                "UNSUPPORTED_MEDIA_TYPE",
            ),
            (c.post(start, json={"workflowPath": 1}), 400, "INVALID_REQUEST"),
            (c.post(start, content=b" " * (MIB + 1)), 413, "PAYLOAD_TOO_LARGE"),
            (
                c.post(start, json={"workflowPath": "hello.py", "resume": True}),
                400,
                "RUN_ID_REQUIRED",
            ),
            (
                c.post(start, json={"workflowPath": "hello.py", "resume": True, "runId": "nope"}),
                404,
                "RUN_NOT_FOUND",
            ),
            (
                c.post(start, json={"workflowPath": "hello.py", "runId": done}),
                409,
                "RUN_ALREADY_EXISTS",
            ),
            (
                c.post(start, json={"workflowPath": "slow.py", "resume": True, "runId": live}),
                409,
                "RUN_IN_PROGRESS",
            ),
            (c.post(f"/v1/runs/{done}/cancel"), 409, "RUN_NOT_ACTIVE"),
            (c.post(f"/v1/runs/{done}/resume"), 409, "RUN_NOT_ACTIVE"),
            (c.post(f"/v1/runs/{parked}/nodes/draft/approve"), 409, "NODE_NOT_WAITING"),
            (c.post(f"/v1/runs/{decided}/nodes/review/approve"), 409, "ALREADY_DECIDED"),
            (c.get("/v1/runs/nope"), 404, "NOT_FOUND"),
            (c.get("/nope"), 404, "NOT_FOUND"),
            (c.put(start), 405, "METHOD_NOT_ALLOWED"),
            (c.post(start, json={"workflowPath": "../x.py"}), 400, "WORKFLOW_PATH_OUTSIDE_ROOT"),
            (c.post(start, json={"workflowPath": "missing.py"}), 400, "WORKFLOW_LOAD_FAILED"),
        ]
        if server.db_path is None:
            rows.append((c.get("/v1/runs"), 400, "DB_NOT_CONFIGURED"))
            rows.append((c.get("/v1/approvals"), 400, "DB_NOT_CONFIGURED"))
        if server.token:
            rows.append((c.get(start, headers={"x-smithers-key": "nope"}), 401, "UNAUTHORIZED"))
        else:
            rows.append((c.get(start, headers={"host": "evil.example"}), 403, "FORBIDDEN"))
        for res, status, code in rows:
            assert_error(res, status, code)
        c.post(f"/v1/runs/{live}/cancel")
        c.post(f"/v1/runs/{parked}/cancel")


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "BeArEr"])
def test_bearer_scheme_is_case_insensitive(authed: ServerProcess, scheme: str) -> None:
    with authed.client(auth=False) as c:
        res = c.get("/v1/runs", headers={"authorization": f"{scheme} {TOKEN}"})
    assert res.status_code == 200, res.text


def _snapshot(server: ServerProcess) -> dict[str, Any]:
    con = server.db()
    try:
        tables = [
            r[0]
            for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
        ]
        counts = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
        runs = con.execute(
            "SELECT run_id, status, command_seq, last_seq FROM _smithers_runs ORDER BY run_id"
        ).fetchall()
        approvals = con.execute("SELECT * FROM _smithers_approvals ORDER BY run_id").fetchall()
    finally:
        con.close()
    return {"counts": counts, "runs": runs, "approvals": approvals}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer wrong-token"},
        {"authorization": f"Basic {TOKEN}"},
        {"authorization": f"Token {TOKEN}"},
        {"authorization": "Bearer"},
        {"authorization": f"Bearer {TOKEN}x"},
        {"x-smithers-key": "wrong-token"},
        {"x-smithers-key": ""},
        {"x-smithers-key": TOKEN[:-1]},
    ],
    ids=[
        "none",
        "bearer-wrong",
        "basic",
        "token",
        "bearer-empty",
        "longer",
        "key-wrong",
        "key-empty",
        "key-prefix",
    ],
)
def test_auth_refuses_every_route_and_changes_nothing(
    authed: ServerProcess, headers: dict[str, str]
) -> None:
    with authed.client() as good:
        parked = start_run(good, "approval.py")
        waiting = start_run(good, "signal.py")
        wait_status(good, parked, "waiting-approval")
        wait_status(good, waiting, "waiting-event")
    before = _snapshot(authed)
    ids = {"runId": parked, "nodeId": "review", "signalName": "payment"}
    bodies: dict[str, Any] = {
        "/v1/runs": {"workflowPath": "hello.py", "runId": "unauthorized-" + secrets.token_hex(4)},
    }
    with authed.client(auth=False, headers=headers) as bad:
        for method, template in ROUTES:
            path = template.format(**ids)
            if "signal" in template:
                path = template.format(**{**ids, "runId": waiting})
            res = bad.request(method, path, json=bodies.get(template, {}))
            if template == "/health":
                assert res.status_code == 200
                continue
            err = assert_error(res, 401, "UNAUTHORIZED")
            assert res.headers["www-authenticate"].lower().startswith("bearer")
            assert_json_headers(res)
            assert TOKEN not in res.text and "details" not in err
        # Also refused: the start of a run by resume, and a route that does not exist.
        assert_error(
            bad.post("/v1/runs", json={"resume": True, "runId": parked}), 401, "UNAUTHORIZED"
        )
    assert _snapshot(authed) == before
    with authed.client() as good:
        assert good.get(f"/v1/runs/{parked}").json()["status"] == "waiting-approval"
        assert good.get(f"/v1/runs/{waiting}").json()["status"] == "waiting-event"
        res = good.get(f"/v1/runs/{bodies['/v1/runs']['runId']}")
        assert_error(res, 404, "NOT_FOUND")
        good.post(f"/v1/runs/{parked}/cancel")
        good.post(f"/v1/runs/{waiting}/cancel")


def test_health_is_open_with_auth_on(authed: ServerProcess) -> None:
    with authed.client(auth=False) as c:
        res = c.get("/health")
        assert res.status_code == 200 and res.json() == {"ok": True}
        assert_json_headers(res)
        # The open route is exactly /health, not a prefix of it.
        assert_error(c.get("/healthz"), 401, "UNAUTHORIZED")
        assert_error(c.get("/health/x"), 401, "UNAUTHORIZED")


def test_token_server_does_not_apply_the_loopback_guard(authed: ServerProcess) -> None:
    with authed.client() as c:
        res = c.get("/v1/runs", headers={"host": "smithers.example.com", "origin": "https://x.io"})
        assert res.status_code == 200, res.text


def test_open_server_refuses_foreign_host_and_origin(srv: ServerProcess) -> None:
    with srv.client() as c:
        for headers in (
            {"host": "evil.example.com"},
            {"host": f"evil.example.com:{srv.port}"},
            {"host": "127.0.0.1.nip.io"},
            {"origin": "http://evil.example.com"},
            {"origin": "null"},
            {"host": "localhost", "origin": "https://attacker.test:8443"},
            {"origin": "http://localhost:5173"},  # another port of this machine
        ):
            err = assert_error(c.get("/v1/runs", headers=headers), 403, "FORBIDDEN")
            assert "details" not in err or "token" not in str(err["details"])
        before = _snapshot(srv)["counts"]["_smithers_runs"]
        res = c.post(
            "/v1/runs", json={"workflowPath": "hello.py"}, headers={"origin": "http://evil.test"}
        )
        assert_error(res, 403, "FORBIDDEN")
        assert _snapshot(srv)["counts"]["_smithers_runs"] == before
        for headers in (
            {"host": f"localhost:{srv.port}"},
            {"host": f"[::1]:{srv.port}"},
            {"origin": f"http://127.0.0.1:{srv.port}"},
        ):
            assert c.get("/v1/runs", headers=headers).status_code == 200, headers


# -- starting runs ---------------------------------------------------------------------------


def test_start_returns_generated_id_and_run_is_readable_at_once(client: httpx.Client) -> None:
    res = client.post("/v1/runs", json={"workflowPath": "slow.py", "input": {"seconds": 30}})
    assert res.status_code == 200
    assert_json_headers(res)
    run_id = res.json()["runId"]
    assert set(res.json()) == {"runId"}
    assert re.fullmatch(r"smi_[0-9a-f]{24}", run_id)
    # No wait: the run row and RunStarted are committed before the answer.
    view = client.get(f"/v1/runs/{run_id}").json()
    assert view["runId"] == run_id and view["workflowName"] == "slow"
    assert view["status"] == "running" and view["runState"]["state"] == "running"
    assert isinstance(view["startedAtMs"], int) and view["finishedAtMs"] is None
    assert isinstance(view["runState"]["computedAt"], int)
    assert set(view) >= {
        "runId",
        "workflowName",
        "status",
        "startedAtMs",
        "finishedAtMs",
        "summary",
        "runState",
    }
    with client.stream("GET", f"/v1/runs/{run_id}/events") as events:
        first = read_sse(events, SSEStream(), stop=lambda s: len(s.events) >= 1)
    assert first.ids == [0] and '"RunStarted"' in first.events[0]["data"]
    client.post(f"/v1/runs/{run_id}/cancel")


def test_start_with_custom_run_id(client: httpx.Client) -> None:
    run_id = "e2e.custom:" + secrets.token_hex(4) + "-A_1"
    res = client.post(
        "/v1/runs", json={"workflowPath": "hello.py", "runId": run_id, "input": {"name": "Ada"}}
    )
    assert res.status_code == 200 and res.json() == {"runId": run_id}
    view = wait_status(client, run_id, "finished")
    assert view["runId"] == run_id and view["summary"] == {"finished": 1}
    assert view["runState"]["state"] == "succeeded" and isinstance(view["finishedAtMs"], int)
    err = assert_error(
        client.post("/v1/runs", json={"workflowPath": "hello.py", "runId": run_id}),
        409,
        "RUN_ALREADY_EXISTS",
    )
    assert err["details"]["runId"] == run_id
    # The longest id allowed (128 characters) works; bad shapes are refused.
    longest = "L" + "x" * 127
    assert client.post("/v1/runs", json={"workflowPath": "hello.py", "runId": longest}).json() == {
        "runId": longest
    }
    for bad in ("-starts-with-dash", "has space", "x" * 129, "a/b", "ü", "", "."):
        err = assert_error(
            client.post("/v1/runs", json={"workflowPath": "hello.py", "runId": bad}),
            400,
            "INVALID_REQUEST",
        )
        assert err["details"]["field"] == "runId", bad


def _peak_concurrency(types: list[str]) -> int:
    running = peak = 0
    for kind in types:
        if kind == "NodeStarted":
            running += 1
            peak = max(peak, running)
        elif kind in ("NodeFinished", "NodeFailed"):
            running -= 1
    return peak


def test_config_max_concurrency_applies(client: httpx.Client) -> None:
    capped = start_run(client, "parallel.py", config={"maxConcurrency": 1})
    free = start_run(client, "parallel.py", config={})
    for run_id in (capped, free):
        assert wait_status(client, run_id, TERMINAL)["status"] == "finished"
    assert _peak_concurrency(event_types(client, capped)) == 1
    assert _peak_concurrency(event_types(client, free)) == 2


def test_input_is_validated_by_the_workflow_model(client: httpx.Client) -> None:
    run_id = "typed-bad-" + secrets.token_hex(4)
    err = assert_error(
        client.post(
            "/v1/runs",
            json={
                "workflowPath": "srv_typed.py",
                "runId": run_id,
                "input": {"item": "x", "qty": "many"},
            },
        ),
        400,
        "INVALID_REQUEST",
    )
    assert any(e["loc"] == ["qty"] for e in err["details"]["errors"]), err
    assert_error(client.get(f"/v1/runs/{run_id}"), 404, "NOT_FOUND")
    ok = start_run(client, "srv_typed.py", input={"item": "pen", "qty": 2})
    assert wait_status(client, ok, TERMINAL)["status"] == "finished"


def test_invalid_json(client: httpx.Client) -> None:
    for raw in (b"{not json", b'{"workflowPath": "hello.py",}', b'"unterminated', b"{}}"):
        err = assert_error(
            client.post("/v1/runs", content=raw, headers={"content-type": "application/json"}),
            400,
            "INVALID_JSON",
        )
        assert "Traceback" not in err["message"]
    # Empty body reads as {}: the missing field is named, not a JSON error.
    err = assert_error(client.post("/v1/runs", content=b""), 400, "INVALID_REQUEST")
    assert err["details"]["field"] == "workflowPath"
    err = assert_error(client.post("/v1/runs", json=[1, 2]), 400, "INVALID_REQUEST")
    assert err["details"]["field"] == "body"


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        step = min(size, total - sent)
        sent += step
        yield b" " * step


def test_payload_too_large_by_content_length_and_chunked(client: httpx.Client) -> None:
    res = client.post("/v1/runs", content=b" " * (MIB + 1))
    assert res.request.headers["content-length"] == str(MIB + 1)
    err = assert_error(res, 413, "PAYLOAD_TOO_LARGE")
    assert err["details"] == {"maxBytes": MIB}
    res = client.post("/v1/runs", content=_chunks(MIB + 1))
    assert res.request.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in res.request.headers
    err = assert_error(res, 413, "PAYLOAD_TOO_LARGE")
    assert err["details"] == {"maxBytes": MIB}
    # A big chunked body to another route is refused the same way.
    run_id = start_run(client, "hello.py")
    res = client.post(f"/v1/runs/{run_id}/signals/x", content=_chunks(3 * MIB))
    assert_error(res, 413, "PAYLOAD_TOO_LARGE")
    assert client.get("/health").status_code == 200


def test_workflow_path_errors(srv: ServerProcess, client: httpx.Client) -> None:
    err = assert_error(client.post("/v1/runs", json={}), 400, "INVALID_REQUEST")
    assert err["details"]["field"] == "workflowPath"
    for outside in ("../hello.py", "../../etc/passwd", "/etc/passwd", "sub/../../x.py"):
        assert_error(
            client.post("/v1/runs", json={"workflowPath": outside}),
            400,
            "WORKFLOW_PATH_OUTSIDE_ROOT",
        )
    err = assert_error(
        client.post("/v1/runs", json={"workflowPath": "missing.py"}), 400, "WORKFLOW_LOAD_FAILED"
    )
    assert err["details"]["reason"] == "file not found"
    (srv.root / "e2e_syntax.py").write_text("def broken(:\n")
    err = assert_error(
        client.post("/v1/runs", json={"workflowPath": "e2e_syntax.py"}), 400, "WORKFLOW_LOAD_FAILED"
    )
    assert "SyntaxError" in err["details"]["reason"]
    (srv.root / "e2e_raises.py").write_text("raise ImportError('no such thing: zzz')\n")
    err = assert_error(
        client.post("/v1/runs", json={"workflowPath": "e2e_raises.py"}), 400, "WORKFLOW_LOAD_FAILED"
    )
    assert "no such thing: zzz" in err["details"]["reason"]
    (srv.root / "e2e_empty.py").write_text("x = 1\n")
    err = assert_error(
        client.post("/v1/runs", json={"workflowPath": "e2e_empty.py"}), 400, "WORKFLOW_LOAD_FAILED"
    )
    assert "no workflow" in err["details"]["reason"]
    (srv.root / "e2e_dir").mkdir(exist_ok=True)
    assert_error(
        client.post("/v1/runs", json={"workflowPath": "e2e_dir"}), 400, "WORKFLOW_LOAD_FAILED"
    )
    # An absolute path inside the root is fine.
    run_id = start_run(client, str(srv.root / "hello.py"))
    assert wait_status(client, run_id, TERMINAL)["status"] == "finished"
    assert client.get("/health").status_code == 200


def test_edited_workflow_file_takes_effect_without_restart(
    srv: ServerProcess, client: httpx.Client
) -> None:
    name = f"reload_{secrets.token_hex(3)}.py"
    path = srv.root / name
    path.write_text((srv.root / "srv_versioned.py").read_text())
    first = start_run(client, name)
    assert wait_status(client, first, TERMINAL)["summary"] == {"finished": 1}
    path.write_text(path.read_text().replace("TASKS = 1", "TASKS = 3"))
    second = start_run(client, name)
    assert wait_status(client, second, TERMINAL)["summary"] == {"finished": 3}
    assert client.get(f"/v1/runs/{first}").json()["summary"] == {"finished": 1}
    # Nothing is written beside the user's source.
    assert list(srv.root.glob(f".{path.stem}*")) == []
    path.write_text("this is not python(\n")
    assert_error(client.post("/v1/runs", json={"workflowPath": name}), 400, "WORKFLOW_LOAD_FAILED")


# -- unknown runs ----------------------------------------------------------------------------

RUN_ROUTES = [
    ("GET", "/v1/runs/{runId}", "NOT_FOUND"),
    ("POST", "/v1/runs/{runId}/resume", "RUN_NOT_FOUND"),
    ("POST", "/v1/runs/{runId}/cancel", "NOT_FOUND"),
    ("GET", "/v1/runs/{runId}/events", "NOT_FOUND"),
    ("GET", "/v1/runs/{runId}/frames", "NOT_FOUND"),
    ("GET", "/v1/runs/{runId}/outputs", "NOT_FOUND"),
    ("POST", "/v1/runs/{runId}/nodes/review/approve", "NOT_FOUND"),
    ("POST", "/v1/runs/{runId}/nodes/review/deny", "NOT_FOUND"),
    ("POST", "/v1/runs/{runId}/signals/payment", "NOT_FOUND"),
    ("POST", "/signal/{runId}/payment", "NOT_FOUND"),
]


@pytest.mark.parametrize("which", ["srv", "nodb", "authed"])
def test_unknown_run_is_404_on_every_run_route(which: str, request: pytest.FixtureRequest) -> None:
    server: ServerProcess = request.getfixturevalue(which)
    with server.client() as c:
        start_run(c, "hello.py")  # the server's stores are open and hold other runs
        for unknown in ("no-such-run", "smi_" + "0" * 24):
            for method, template, code in RUN_ROUTES:
                res = c.request(method, template.format(runId=unknown), json={})
                err = assert_error(res, 404, code)
                assert err["details"]["runId"] == unknown, (template, err)
                assert_json_headers(res)
        err = assert_error(
            c.post(
                "/v1/runs", json={"workflowPath": "hello.py", "resume": True, "runId": "no-such"}
            ),
            404,
            "RUN_NOT_FOUND",
        )


# -- cancel, resume --------------------------------------------------------------------------


def test_cancel(client: httpx.Client) -> None:
    run_id = start_run(client, "slow.py", input={"seconds": 30})
    wait_status(client, run_id, "running")
    res = client.post(f"/v1/runs/{run_id}/cancel")
    assert res.status_code == 200 and res.json() == {"runId": run_id, "status": "cancelled"}
    # Committed before the answer: no wait needed.
    view = client.get(f"/v1/runs/{run_id}").json()
    assert view["status"] == "cancelled" and view["runState"]["state"] == "cancelled"
    assert isinstance(view["finishedAtMs"], int)
    types = event_types(client, run_id)
    assert types[-1] == "RunCancelled" and "NodeCancelled" in types
    assert_error(client.post(f"/v1/runs/{run_id}/cancel"), 409, "RUN_NOT_ACTIVE")
    assert_error(client.post(f"/v1/runs/{run_id}/resume"), 409, "RUN_NOT_ACTIVE")
    assert_error(client.post(f"/v1/runs/{run_id}/signals/x"), 409, "RUN_NOT_ACTIVE")
    # A parked run can be cancelled too; a finished one cannot.
    parked = start_run(client, "approval.py")
    wait_status(client, parked, "waiting-approval")
    assert client.post(f"/v1/runs/{parked}/cancel").json()["status"] == "cancelled"
    assert_error(client.post(f"/v1/runs/{parked}/nodes/review/approve"), 409, "NODE_NOT_WAITING")
    done = start_run(client, "hello.py")
    wait_status(client, done, "finished")
    err = assert_error(client.post(f"/v1/runs/{done}/cancel"), 409, "RUN_NOT_ACTIVE")
    assert err["details"]["runId"] == done


def test_resume(srv: ServerProcess, client: httpx.Client, tmp_path: Any) -> None:
    done = start_run(client, "hello.py")
    wait_status(client, done, "finished")
    assert_error(client.post(f"/v1/runs/{done}/resume"), 409, "RUN_NOT_ACTIVE")
    assert_error(
        client.post("/v1/runs", json={"workflowPath": "hello.py", "resume": True, "runId": done}),
        409,
        "RUN_NOT_ACTIVE",
    )
    assert_error(
        client.post("/v1/runs", json={"workflowPath": "hello.py", "resume": True}),
        400,
        "RUN_ID_REQUIRED",
    )

    live = start_run(client, "slow.py", input={"seconds": 30})
    res = client.post(f"/v1/runs/{live}/resume", json={})
    assert res.status_code == 200 and res.json() == {"runId": live, "status": "running"}
    err = assert_error(
        client.post("/v1/runs", json={"workflowPath": "slow.py", "resume": True, "runId": live}),
        409,
        "RUN_IN_PROGRESS",
    )
    assert err["details"]["runId"] == live
    client.post(f"/v1/runs/{live}/cancel")

    # A failed run continues from its checkpoint: the finished task does not run again.
    folder = tmp_path / "flaky"
    folder.mkdir()
    flaky = start_run(client, "srv_flaky.py", input={"dir": str(folder)})
    view = wait_status(client, flaky, TERMINAL)
    assert view["status"] == "failed" and "gate is closed" in str(view["error"])
    res = client.post(f"/v1/runs/{flaky}/resume", json={})
    assert res.status_code == 200 and res.json() == {"runId": flaky}
    assert wait_status(client, flaky, TERMINAL)["status"] == "failed"
    (folder / "open").touch()
    res = client.post(
        "/v1/runs", json={"workflowPath": "srv_flaky.py", "resume": True, "runId": flaky}
    )
    assert res.status_code == 200 and res.json() == {"runId": flaky}
    assert wait_status(client, flaky, TERMINAL)["status"] == "finished"
    assert (folder / "log").read_text().split() == ["first", "second"]

    # A parked run: resume is valid and idempotent; it parks again on the same approval.
    parked = start_run(client, "approval.py")
    wait_status(client, parked, "waiting-approval")
    for _ in range(2):
        res = client.post(f"/v1/runs/{parked}/resume")
        assert res.status_code == 200 and res.json()["runId"] == parked
        wait_status(client, parked, "waiting-approval")
    assert client.post(f"/v1/runs/{parked}/nodes/review/approve").status_code == 200
    assert wait_status(client, parked, TERMINAL)["status"] == "finished"


# -- frames ----------------------------------------------------------------------------------

FRAME_KEYS = {
    "runId",
    "frameNo",
    "createdAtMs",
    "xmlJson",
    "xmlHash",
    "encoding",
    "mountedTaskIdsJson",
    "taskIndexJson",
    "note",
}


def test_outputs(client: httpx.Client) -> None:
    run_id = start_run(client, "sequence.py", input={"start": 5})
    wait_status(client, run_id, "finished")
    res = client.get(f"/v1/runs/{run_id}/outputs")
    assert res.status_code == 200, res.text
    items = res.json()
    assert [(i["nodeId"], i["iteration"], i["outputKey"], i["output"]) for i in items] == [
        ("one", 0, "step", {"value": 5}),
        ("two", 0, "step", {"value": 6}),
        ("three", 0, "step", {"value": 7}),
    ]
    finished = [i["finishedAtMs"] for i in items]
    assert finished == sorted(finished) and all(isinstance(t, int) for t in finished)
    only = client.get(f"/v1/runs/{run_id}/outputs", params={"nodeId": "two"}).json()
    assert [i["output"] for i in only] == [{"value": 6}]
    assert client.get(f"/v1/runs/{run_id}/outputs", params={"nodeId": "none"}).json() == []
    assert_error(client.get("/v1/runs/no-such-run/outputs"), 404, "NOT_FOUND")


def test_frames(client: httpx.Client) -> None:
    run_id = start_run(client, "loop.py", input={"length": 4})
    wait_status(client, run_id, "finished")
    res = client.get(f"/v1/runs/{run_id}/frames")
    assert res.status_code == 200
    frames = res.json()
    assert len(frames) >= 3
    assert all(set(f) == FRAME_KEYS and f["runId"] == run_id for f in frames)
    numbers = [f["frameNo"] for f in frames]
    assert numbers == sorted(numbers, reverse=True) and len(set(numbers)) == len(numbers)
    assert numbers[-1] == 0
    newest = numbers[0]
    assert [f["frameNo"] for f in client.get(f"/v1/runs/{run_id}/frames?limit=1").json()] == [
        newest
    ]
    after = client.get(f"/v1/runs/{run_id}/frames", params={"afterFrameNo": 1}).json()
    assert [f["frameNo"] for f in after] == [n for n in numbers if n > 1]
    both = client.get(f"/v1/runs/{run_id}/frames", params={"afterFrameNo": 0, "limit": 2}).json()
    assert [f["frameNo"] for f in both] == numbers[:2]
    assert client.get(f"/v1/runs/{run_id}/frames?afterFrameNo={newest}").json() == []
    assert len(client.get(f"/v1/runs/{run_id}/frames?limit=1000").json()) == len(frames)
    for query, field in [
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("limit=1001", "limit"),
        ("limit=abc", "limit"),
        ("limit=1.5", "limit"),
        ("afterFrameNo=abc", "afterFrameNo"),
        ("afterFrameNo=1e3", "afterFrameNo"),
    ]:
        err = assert_error(client.get(f"/v1/runs/{run_id}/frames?{query}"), 400, "INVALID_REQUEST")
        assert err["details"]["field"] == field, query


# -- approvals and signals ---------------------------------------------------------------------


def test_approve(client: httpx.Client) -> None:
    run_id = start_run(client, "approval.py", input={"msg": "ship"})
    view = wait_status(client, run_id, "waiting-approval")
    blocked = view["runState"]["blocked"]
    assert view["runState"]["state"] == "waiting-approval"
    assert blocked["kind"] == "approval" and blocked["nodeId"] == "review"
    assert isinstance(blocked["requestedAtMs"], int)
    assert_error(client.post(f"/v1/runs/{run_id}/nodes/draft/approve"), 409, "NODE_NOT_WAITING")
    assert_error(client.post(f"/v1/runs/{run_id}/nodes/nope/approve"), 409, "NODE_NOT_WAITING")
    assert_error(
        client.post(f"/v1/runs/{run_id}/nodes/review/approve", json={"iteration": 3}),
        409,
        "NODE_NOT_WAITING",
    )
    res = client.post(
        f"/v1/runs/{run_id}/nodes/review/approve",
        json={"iteration": 0, "note": "looks good", "decidedBy": "alice"},
    )
    assert res.status_code == 200
    assert res.json() == {"runId": run_id, "nodeId": "review", "iteration": 0, "approved": True}
    # The run resumes by itself (no /resume call).
    assert wait_status(client, run_id, TERMINAL)["status"] == "finished"
    types = event_types(client, run_id)
    assert "ApprovalGranted" in types and types[-1] == "RunFinished"
    for verb in ("approve", "deny"):
        err = assert_error(
            client.post(f"/v1/runs/{run_id}/nodes/review/{verb}"), 409, "ALREADY_DECIDED"
        )
        assert err["details"]["nodeId"] == "review"


def test_deny(client: httpx.Client) -> None:
    run_id = start_run(client, "approval.py")
    wait_status(client, run_id, "waiting-approval")
    res = client.post(f"/v1/runs/{run_id}/nodes/review/deny", json={"note": "no", "decidedBy": "b"})
    assert res.status_code == 200
    assert res.json() == {"runId": run_id, "nodeId": "review", "iteration": 0, "approved": False}
    view = wait_status(client, run_id, TERMINAL)
    assert view["status"] == "failed" and view["runState"]["state"] == "failed"
    assert "error" in view
    assert "ApprovalDenied" in event_types(client, run_id)
    assert_error(client.post(f"/v1/runs/{run_id}/nodes/review/deny"), 409, "ALREADY_DECIDED")


def test_signals_and_alias(client: httpx.Client) -> None:
    run_id = start_run(client, "signal.py")
    view = wait_status(client, run_id, "waiting-event")
    blocked = view["runState"]["blocked"]
    assert blocked["kind"] == "event" and blocked["signalName"] == "payment"
    # A signal of another name is recorded but resolves nothing.
    res = client.post(f"/v1/runs/{run_id}/signals/other", json={"data": 1})
    assert res.status_code == 200 and res.json()["signalName"] == "other"
    assert_error(client.post(f"/v1/runs/{run_id}/signals/%20"), 400, "INVALID_REQUEST")
    time.sleep(0.2)
    assert client.get(f"/v1/runs/{run_id}").json()["status"] == "waiting-event"
    before = int(time.time() * 1000)
    res = client.post(
        f"/v1/runs/{run_id}/signals/payment",
        json={"data": {"amount": 42}, "correlationId": "c-1", "receivedBy": "e2e"},
    )
    assert res.status_code == 200
    body = res.json()
    assert set(body) == {"runId", "seq", "signalName", "correlationId", "receivedAtMs"}
    assert body["runId"] == run_id and body["signalName"] == "payment"
    assert body["correlationId"] == "c-1" and isinstance(body["seq"], int)
    assert body["receivedAtMs"] >= before - 1000
    assert wait_status(client, run_id, TERMINAL)["status"] == "finished"
    assert_error(client.post(f"/v1/runs/{run_id}/signals/payment"), 409, "RUN_NOT_ACTIVE")

    aliased = start_run(client, "signal.py")
    wait_status(client, aliased, "waiting-event")
    res = client.post(f"/signal/{aliased}/payment", json={"data": {"amount": 7}})
    assert res.status_code == 200 and res.json()["runId"] == aliased
    assert res.json()["correlationId"] is None
    assert wait_status(client, aliased, TERMINAL)["status"] == "finished"
    assert_error(client.post(f"/signal/{aliased}/payment"), 409, "RUN_NOT_ACTIVE")

    # A signal sent before its node is reached waits for it.
    early = start_run(client, "signal.py")
    assert client.post(f"/signal/{early}/payment", json={"data": {"amount": 1}}).status_code == 200
    assert wait_status(client, early, TERMINAL)["status"] == "finished"


def test_approvals_oldest_first_and_aliases(client: httpx.Client) -> None:
    first = start_run(client, "approval.py", input={"msg": "first"})
    wait_status(client, first, "waiting-approval")
    time.sleep(0.05)
    second = start_run(client, "approval.py", input={"msg": "second"})
    wait_status(client, second, "waiting-approval")
    listed = {}
    for path in APPROVAL_ALIASES:
        res = client.get(path)
        assert res.status_code == 200
        assert_json_headers(res)
        items = res.json()["approvals"]
        times = [a["requestedAtMs"] for a in items]
        assert times == sorted(times)
        mine = [a for a in items if a["runId"] in (first, second)]
        assert [a["runId"] for a in mine] == [first, second]
        listed[path] = [{k: v for k, v in a.items() if k != "waitingMs"} for a in mine]
        old, new = mine
        assert old["waitingMs"] >= new["waitingMs"] >= 0
        assert set(old) == {
            "runId",
            "nodeId",
            "iteration",
            "workflowName",
            "runStatus",
            "label",
            "requestTitle",
            "requestSummary",
            "requestedAtMs",
            "waitingMs",
            "note",
            "decidedBy",
        }
        assert old["nodeId"] == "review" and old["iteration"] == 0
        assert old["workflowName"] == "approval" and old["runStatus"] == "waiting-approval"
        assert old["requestTitle"] == "Ship the draft?" and old["requestSummary"] == "first"
    assert all(v == listed["/v1/approvals"] for v in listed.values())
    # Decided approvals leave the list.
    client.post(f"/v1/runs/{first}/nodes/review/approve")
    client.post(f"/v1/runs/{second}/cancel")
    ids = [a["runId"] for a in client.get("/v1/approvals").json()["approvals"]]
    assert first not in ids and second not in ids


# -- listing ---------------------------------------------------------------------------------


def test_list_runs(client: httpx.Client) -> None:
    tag = secrets.token_hex(3)
    mine = [f"list-{tag}-{i}" for i in range(3)]
    for run_id in mine:
        start_run(client, "hello.py", runId=run_id)
        wait_status(client, run_id, "finished")
    failed = start_run(client, "failing.py")
    wait_status(client, failed, "failed")
    res = client.get("/v1/runs", params={"limit": 4})
    assert res.status_code == 200
    runs = res.json()
    assert isinstance(runs, list)  # a bare array, as the original's
    assert [r["runId"] for r in runs] == [failed, *reversed(mine)]
    created = [r["createdAtMs"] for r in runs]
    assert created == sorted(created, reverse=True)
    item = runs[1]
    assert set(item) == {
        "runId",
        "workflowName",
        "workflowPath",
        "status",
        "createdAtMs",
        "startedAtMs",
        "finishedAtMs",
        "heartbeatAtMs",
        "runState",
    }
    assert item["workflowName"] == "hello" and item["workflowPath"].endswith("hello.py")
    assert item["runState"]["state"] == "succeeded"
    assert len(client.get("/v1/runs?limit=2").json()) == 2
    only_failed = client.get("/v1/runs", params={"status": "failed"}).json()
    assert failed in [r["runId"] for r in only_failed]
    assert {r["status"] for r in only_failed} == {"failed"}
    hello = client.get("/v1/runs", params={"workflow": "hello", "limit": 1000}).json()
    assert set(mine) <= {r["runId"] for r in hello}
    assert {r["workflowName"] for r in hello} == {"hello"}
    assert_error(
        client.get("/v1/runs", params={"status": "no-such-status"}), 400, "INVALID_REQUEST"
    )
    assert len(client.get("/v1/runs?limit=1000").json()) >= 4
    for bad in ("0", "-5", "1001", "ten", "2.5"):
        err = assert_error(client.get(f"/v1/runs?limit={bad}"), 400, "INVALID_REQUEST")
        assert err["details"]["field"] == "limit"


def _insert_stale(server: ServerProcess, run_id: str, workflow: str) -> None:
    now = int(time.time() * 1000)
    con = server.db()
    try:
        con.execute(
            "INSERT INTO _smithers_runs (run_id, workflow_name, workflow_path, status,"
            " created_at_ms, started_at_ms, heartbeat_at_ms, runtime_owner_id, input_json,"
            " config_json, last_seq, command_seq) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                run_id,
                workflow.removesuffix(".py"),
                str(server.root / workflow),
                "running",
                now - 70_000,
                now - 70_000,
                now - 60_000,
                "otherhost:1:abc",
                "{}",
                "{}",
                -1,
                0,
            ),
        )
        con.commit()
    finally:
        con.close()


def test_stale_running_row(srv: ServerProcess, client: httpx.Client) -> None:
    tag = secrets.token_hex(3)
    lost = f"stale-gone-{tag}"  # its workflow file is gone: nobody can adopt it
    adoptable = f"stale-hello-{tag}"  # a crashed run of a workflow this server can load
    _insert_stale(srv, lost, f"gone_{tag}.py")
    _insert_stale(srv, adoptable, "hello.py")
    view = client.get(f"/v1/runs/{lost}").json()
    assert view["status"] == "running"
    state = view["runState"]
    assert state["state"] == "stale"
    assert state["unhealthy"]["kind"] == "stale-heartbeat"
    assert state["unhealthy"]["staleDurationMs"] >= 60_000
    # The server adopts the run it can load (a crash loses no run) ...
    assert wait_status(client, adoptable, TERMINAL)["status"] == "finished"
    assert "RunAutoResumed" in event_types(client, adoptable)
    # ... and the other keeps its status and says it is stale, in the list too.
    view = client.get(f"/v1/runs/{lost}").json()
    assert view["status"] == "running" and view["runState"]["state"] == "stale"
    running = client.get("/v1/runs", params={"status": "running", "limit": 1000}).json()
    item = next(r for r in running if r["runId"] == lost)
    assert item["runState"]["state"] == "stale" and item["status"] == "running"
    err = assert_error(client.post(f"/v1/runs/{lost}/resume"), 400, "WORKFLOW_LOAD_FAILED")
    assert err["details"]["reason"] == "file not found"
    # Another workflow may not take it over; its own file, back in place, continues it.
    err = assert_error(
        client.post(f"/v1/runs/{lost}/resume", json={"workflowPath": "hello.py"}),
        409,
        "WORKFLOW_MISMATCH",
    )
    assert err["details"]["workflowPath"] == f"gone_{tag}.py"
    (srv.root / f"gone_{tag}.py").write_text((srv.root / "hello.py").read_text())
    assert wait_status(client, lost, TERMINAL)["status"] == "finished"


def test_workflow_with_own_db_is_mirrored(client: httpx.Client, nodb: ServerProcess) -> None:
    run_id = start_run(client, "srv_owndb.py")
    assert wait_status(client, run_id, TERMINAL)["status"] == "finished"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        runs = client.get("/v1/runs", params={"workflow": "owndb"}).json()
        found = [r for r in runs if r["runId"] == run_id]
        if found and found[0]["status"] == "finished":
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"run {run_id} was not mirrored into the server db")
    assert read_events(client, run_id).ids == list(range(len(event_types(client, run_id))))
    with nodb.client() as other:
        own = start_run(other, "srv_owndb.py")
        assert wait_status(other, own, TERMINAL)["status"] == "finished"


@pytest.mark.parametrize("server_db", [True, False], ids=["server-db", "no-server-db"])
def test_runs_are_found_after_a_restart(
    spawn: Callable[..., ServerProcess], server_db: bool
) -> None:
    """Without --db the runs live in a file of the state folder named for the root (never
    inside the root); a new server on that root finds them at once."""
    first = spawn(db=server_db)
    with first.client() as c:
        run_id = start_run(c, "hello.py")
        wait_status(c, run_id, "finished")
    first.stop()
    second = spawn(db=first.db_path or False, root=first.root)
    with second.client() as c:
        res = c.get(f"/v1/runs/{run_id}")
        assert res.status_code == 200, res.text
        assert res.json()["status"] == "finished"
        assert read_events(c, run_id).closed


def test_run_in_flight_survives_a_server_restart(spawn: Callable[..., ServerProcess]) -> None:
    first = spawn()
    with first.client() as c:
        run_id = start_run(c, "slow.py", input={"seconds": 1.5})
        wait_status(c, run_id, "running")
    first.stop()  # SIGTERM: a graceful shutdown in the middle of the task
    assert first.db_path is not None
    con = first.db()
    try:
        (status,) = con.execute(
            "SELECT status FROM _smithers_runs WHERE run_id = ?", (run_id,)
        ).fetchone()
    finally:
        con.close()
    assert status == "running"
    second = spawn(db=first.db_path, root=first.root)
    with second.client() as c:
        view = wait_status(c, run_id, TERMINAL, timeout=20)
        assert view["status"] == "finished", view
        stream = read_events(c, run_id)
    assert stream.closed and stream.ids == list(range(len(stream.ids)))
    assert stream.types.count("RunFinished") == 1


# -- routing, headers, metrics, OpenAPI --------------------------------------------------------


def test_unknown_routes_are_404(client: httpx.Client) -> None:
    for method, path in [
        ("GET", "/"),
        ("GET", "/nope"),
        ("GET", "/v1"),
        ("GET", "/v1/"),
        ("POST", "/v2/runs"),
        ("GET", "/v1/runs/x/unknown"),
        ("POST", "/v1/runs/x/nodes/y"),
        ("GET", "/v1/runs/x/events/extra"),
        ("DELETE", "/nothing/here"),
        ("GET", "/openapi.yaml"),
    ]:
        res = client.request(method, path)
        err = assert_error(res, 404, "NOT_FOUND")
        assert err["message"] == "Route not found"
        assert_json_headers(res)


def test_wrong_method_is_405_with_allow(client: httpx.Client) -> None:
    for method, path, allowed in [
        ("PUT", "/v1/runs", {"GET", "POST"}),
        ("DELETE", "/v1/runs/x", {"GET"}),
        ("GET", "/v1/runs/x/cancel", {"POST"}),
        ("GET", "/v1/runs/x/resume", {"POST"}),
        ("POST", "/v1/runs/x/events", {"GET"}),
        ("PATCH", "/v1/runs/x/frames", {"GET"}),
        ("GET", "/v1/runs/x/nodes/y/approve", {"POST"}),
        ("PUT", "/v1/runs/x/signals/s", {"POST"}),
        ("GET", "/signal/x/s", {"POST"}),
        ("POST", "/health", {"GET"}),
        ("POST", "/metrics", {"GET"}),
        ("DELETE", "/v1/approvals", {"GET"}),
        ("POST", "/approvals", {"GET"}),
        ("POST", "/openapi.json", {"GET"}),
    ]:
        res = client.request(method, path)
        assert_error(res, 405, "METHOD_NOT_ALLOWED")
        assert_json_headers(res)
        allow = {m.strip() for m in res.headers["allow"].split(",")}
        assert allowed <= allow and method not in allow, (path, allow)


def test_metrics_use_route_templates(client: httpx.Client) -> None:
    run_id = start_run(client, "hello.py")
    wait_status(client, run_id, "finished")
    client.get(f"/v1/runs/{run_id}/frames")
    client.get("/v1/runs/not-a-real-run")
    client.get("/definitely/not/a/route")
    res = client.get("/metrics")
    assert res.status_code == 200
    assert res.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = res.text
    lines = [line for line in text.splitlines() if line.startswith("smithers_http_requests_total")]
    assert any(
        'route="/v1/runs/{runId}"' in line
        and 'status_code="200"' in line
        and 'method="GET"' in line
        for line in lines
    ), lines
    assert any('route="/v1/runs/{runId}"' in line and 'status_code="404"' in line for line in lines)
    assert any(
        'route="/v1/runs/{runId}/frames"' in line and 'status_class="2xx"' in line for line in lines
    )
    assert any('route="/v1/runs"' in line and 'method="POST"' in line for line in lines)
    assert run_id not in text and "not-a-real-run" not in text and "definitely" not in text
    for name in (
        "smithers_http_request_duration_ms",
        "smithers_runs_total",
        "smithers_runs_finished_total",
        "smithers_nodes_finished_total",
        "smithers_events_emitted_total",
        "smithers_sse_subscribers",
    ):
        assert re.search(rf"^{name}", text, re.M), name
    match = re.search(r"^smithers_runs_total(?:\{[^}]*\})? (\S+)$", text, re.M)
    assert match and float(match.group(1)) >= 1


def test_openapi_lists_every_route(client: httpx.Client) -> None:
    res = client.get("/openapi.json")
    assert res.status_code == 200
    assert_json_headers(res)
    doc = res.json()
    assert doc["openapi"].startswith("3.1.")
    assert doc["info"]["title"] and doc["info"]["version"]
    listed = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    listed = {(m, p) for m, p in listed if m in ("GET", "POST", "PUT", "PATCH", "DELETE")}
    assert listed == set(ROUTES)
    for path, ops in doc["paths"].items():
        for op in ops.values():
            assert "200" in op["responses"], path
            for name in re.findall(r"\{(\w+)\}", path):
                params = [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]
                assert name in params, (path, name)


def test_event_stream_of_a_finished_run(client: httpx.Client) -> None:
    run_id = start_run(client, "sequence.py")
    wait_status(client, run_id, "finished")
    with client.stream("GET", f"/v1/runs/{run_id}/events") as res:
        assert res.status_code == 200
        assert res.headers["content-type"].startswith("text/event-stream")
        assert res.headers["cache-control"] == "no-cache"
        assert res.headers["x-accel-buffering"] == "no"
        stream = read_sse(res, SSEStream())
    assert stream.closed and stream.blocks[0] == "retry: 1000"
    assert stream.ids == list(range(len(stream.ids)))
    assert '"RunStarted"' in stream.events[0]["data"]
    assert '"RunFinished"' in stream.events[-1]["data"]
    tail = read_events(client, run_id, afterSeq=2)
    assert tail.ids == stream.ids[3:] and tail.closed
    assert read_events(client, run_id, afterSeq=stream.ids[-1]).ids == []
    assert_error(client.get(f"/v1/runs/{run_id}/events?afterSeq=abc"), 400, "INVALID_REQUEST")
