"""Hostile input against a real server: never a 5xx, nothing escapes the root, still up.

The server runs with `--headers-timeout 1500 --request-timeout 1500`. After every test
(except ones marked xfail for a known bug) the server must be alive, answer /health, have
counted no new 5xx and logged no traceback.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from .conftest import (
    ServerProcess,
    assert_error,
    start_run,
    start_runs,
    stays_healthy,
    wait_status,
)

MIB = 1_048_576
JSON_TYPE = {"content-type": "application/json"}
TIMEOUT_S = 1.5

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def srv(spawn: Callable[..., ServerProcess]) -> ServerProcess:
    server = spawn(args=("--headers-timeout", "1500", "--request-timeout", "1500"))
    outside = server.root.parent / "outside"
    outside.mkdir()
    # Importing this file leaves a mark: it must never be loaded through the server.
    (outside / "evil.py").write_text(
        "from pathlib import Path\n"
        "Path(__file__).resolve().with_name('EXECUTED').touch()\n"
        + (server.root / "hello.py").read_text()
    )
    (server.root / "escape.py").symlink_to(outside / "evil.py")
    (server.root / "escdir").symlink_to(outside, target_is_directory=True)
    (server.root / "hello_link.py").symlink_to(server.root / "hello.py")
    (server.root / "sub").mkdir()
    return server


@pytest.fixture(autouse=True)
def still_healthy(srv: ServerProcess, request: pytest.FixtureRequest) -> Iterator[None]:
    known_bug = request.node.get_closest_marker("xfail") is not None
    with stays_healthy(srv, check_errors=not known_bug):
        yield


@pytest.fixture
def client(srv: ServerProcess) -> Iterator[httpx.Client]:
    with srv.client() as made:
        yield made


@pytest.fixture(scope="module")
def runs(srv: ServerProcess) -> dict[str, str]:
    """A parked approval run, a run waiting for a signal and a finished run."""
    with srv.client() as c:
        return start_runs(
            c,
            {
                "approval": ("approval.py", "waiting-approval"),
                "signal": ("signal.py", "waiting-event"),
                "done": ("hello.py", "finished"),
            },
        )


def run_count(srv: ServerProcess) -> int:
    con = srv.db()
    try:
        count: int = con.execute("SELECT count(*) FROM _smithers_runs").fetchone()[0]
        return count
    finally:
        con.close()


def raw_request(port: int, data: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    """Send raw bytes; the status code and everything read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
            if b"\r\n\r\n" in received and b"connection: close" not in received.lower():
                head, _, body = received.partition(b"\r\n\r\n")
                length = re.search(rb"content-length: (\d+)", head, re.I)
                if length and len(body) >= int(length.group(1)):
                    break
    status = int(received.split(b" ", 2)[1]) if received.startswith(b"HTTP/1.1 ") else 0
    return status, received


# -- paths -----------------------------------------------------------------------------------


def test_workflow_paths_cannot_leave_the_root(srv: ServerProcess, client: httpx.Client) -> None:
    outside = srv.root.parent / "outside"
    before = run_count(srv)
    refused = [
        "../hello.py",
        "../outside/evil.py",
        "../../../../../../etc/passwd",
        "/etc/passwd",
        "/",
        str(outside / "evil.py"),
        "sub/../../outside/evil.py",
        "escape.py",  # a symlink inside the root to a file outside it
        "escdir/evil.py",  # through a symlinked directory
        "./escdir/../escape.py",
    ]
    for path in refused:
        err = assert_error(
            client.post("/v1/runs", json={"workflowPath": path}), 400, "WORKFLOW_PATH_OUTSIDE_ROOT"
        )
        assert "evil" not in json.dumps(err.get("details", {})).replace(path, ""), err
    # Not decoded, not expanded: these are just names of files that do not exist.
    for path in (
        "%2e%2e/outside/evil.py",
        "..%2Foutside%2Fevil.py",
        "%2E%2E%2Fhello.py",
        "~/evil.py",
        "..\\outside\\evil.py",
        "$HOME/x.py",
        "héllo.py",
        "a/" * 3000 + "x.py",
        "x" * 300 + ".py",
        ".",
        "sub",
    ):
        res = client.post("/v1/runs", json={"workflowPath": path})
        assert_error(res, 400, res.json()["error"]["code"])
        assert res.json()["error"]["code"] in ("WORKFLOW_LOAD_FAILED", "WORKFLOW_PATH_OUTSIDE_ROOT")
    for path in ("hello.py\x00", "hello.py\x00../../etc/passwd", "\x00", "escape.py\x00.txt"):
        res = client.post("/v1/runs", json={"workflowPath": path})
        assert res.status_code == 400, res.text
        assert res.json()["error"]["code"] in (
            "WORKFLOW_PATH_OUTSIDE_ROOT",
            "WORKFLOW_LOAD_FAILED",
            "INVALID_REQUEST",
        )
    assert run_count(srv) == before
    assert not (outside / "EXECUTED").exists(), "a file outside the root was imported"
    # A symlink inside the root to a file inside it is fine.
    run_id = start_run(client, "hello_link.py")
    assert wait_status(client, run_id, ("finished", "failed"))["status"] == "finished"


def test_resume_paths_cannot_leave_the_root(
    srv: ServerProcess, client: httpx.Client, runs: dict[str, str]
) -> None:
    outside = srv.root.parent / "outside"
    for path in ("../outside/evil.py", "escape.py", str(outside / "evil.py")):
        assert_error(
            client.post(f"/v1/runs/{runs['approval']}/resume", json={"workflowPath": path}),
            400,
            "WORKFLOW_PATH_OUTSIDE_ROOT",
        )
        body = {"workflowPath": path, "resume": True, "runId": runs["approval"]}
        assert_error(client.post("/v1/runs", json=body), 400, "WORKFLOW_PATH_OUTSIDE_ROOT")
    assert not (outside / "EXECUTED").exists()
    assert client.get(f"/v1/runs/{runs['approval']}").json()["status"] == "waiting-approval"


def test_hostile_url_paths_are_plain_404s(srv: ServerProcess, client: httpx.Client) -> None:
    for path in (
        "/v1/runs/%2e%2e",
        "/v1/runs/%2e%2e/frames",
        "/v1/runs/..%2F..%2Fetc%2Fpasswd",
        "/v1/runs/a%00b",
        "/v1/runs/%00",
        "/v1/runs/%ff%fe",
        "/v1/runs/%25",
        "/v1/runs/" + "r" * 300,
        "/v1/runs/" + "r" * 300 + "/events",
    ):
        res = client.get(path)
        assert res.status_code == 404, (path, res.text)
        assert res.json()["error"]["code"] == "NOT_FOUND"
    # Raw request targets, not normalised by a client library.
    for target in (
        b"/v1/runs/../../etc/passwd",
        b"/../../../../etc/passwd",
        b"/v1/runs/x/../../../health/../etc/passwd",
        b"//v1//runs",
        b"/v1/runs/a/b",
        b"/%2e%2e/%2e%2e/etc/passwd",
    ):
        status, data = raw_request(
            srv.port,
            b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        )
        assert status == 404, (target, data)
        assert b'"NOT_FOUND"' in data and b"root:" not in data


def test_run_ids_with_slash_or_300_characters(client: httpx.Client, runs: dict[str, str]) -> None:
    long_id = "r" * 300
    for bad in ("a/b", "../x", long_id, "a\x00b", "a b", "a\nb", "é"):
        err = assert_error(
            client.post("/v1/runs", json={"workflowPath": "hello.py", "runId": bad}),
            400,
            "INVALID_REQUEST",
        )
        assert err["details"]["field"] == "runId"
        err = assert_error(
            client.post(
                "/v1/runs", json={"workflowPath": "hello.py", "runId": bad, "resume": True}
            ),
            400,
            "INVALID_REQUEST",
        )
    # A slash in the path: no route matches.
    for path in ("/v1/runs/a/b", "/v1/runs/a%2Fb", "/v1/runs/a%2Fb/events"):
        err = assert_error(client.get(path), 404, "NOT_FOUND")
        assert err["message"] == "Route not found"
    assert_error(client.post("/v1/runs/a%2Fb/cancel"), 404, "NOT_FOUND")
    # 300 characters: the route matches and the run is not found, on every run route.
    for method, template in [
        ("GET", "/v1/runs/{}"),
        ("GET", "/v1/runs/{}/events"),
        ("GET", "/v1/runs/{}/frames"),
        ("POST", "/v1/runs/{}/cancel"),
        ("POST", "/v1/runs/{}/resume"),
        ("POST", "/v1/runs/{}/nodes/review/approve"),
        ("POST", "/v1/runs/{}/nodes/review/deny"),
        ("POST", "/v1/runs/{}/signals/s"),
        ("POST", "/signal/{}/s"),
    ]:
        res = client.request(method, template.format(long_id))
        assert res.status_code == 404, (template, res.text)
        assert res.json()["error"]["code"] in ("NOT_FOUND", "RUN_NOT_FOUND")


# -- bodies ----------------------------------------------------------------------------------


def body_routes(runs: dict[str, str]) -> list[str]:
    return [
        "/v1/runs",
        f"/v1/runs/{runs['done']}/resume",
        f"/v1/runs/{runs['approval']}/nodes/review/approve",
        f"/v1/runs/{runs['approval']}/nodes/review/deny",
        f"/v1/runs/{runs['signal']}/signals/payment",
        f"/signal/{runs['signal']}/payment",
    ]


def assert_untouched(client: httpx.Client, runs: dict[str, str]) -> None:
    assert client.get(f"/v1/runs/{runs['approval']}").json()["status"] == "waiting-approval"
    assert client.get(f"/v1/runs/{runs['signal']}").json()["status"] == "waiting-event"
    assert client.get(f"/v1/runs/{runs['done']}").json()["status"] == "finished"


def test_json_nested_10000_deep(
    srv: ServerProcess, client: httpx.Client, runs: dict[str, str]
) -> None:
    before = run_count(srv)
    deep_list = b"[" * 10_000 + b"]" * 10_000
    deep_obj = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
    deep_inside = b'{"workflowPath": "hello.py", "input": ' + deep_obj + b"}"
    deep_data = b'{"data": ' + deep_list + b"}"
    for route in body_routes(runs):
        for raw in (deep_list, deep_obj, deep_inside, deep_data):
            res = client.post(route, content=raw, headers=JSON_TYPE)
            err = assert_error(res, 400, "INVALID_REQUEST")
            assert err["details"] == {"maxDepth": 32}, (route, err)
    assert run_count(srv) == before
    assert_untouched(client, runs)

    def nested(levels: int) -> Any:
        value: Any = 1
        for _ in range(levels):
            value = {"a": value}
        return value

    # The body object is level 1: 31 more levels are allowed, 32 more are not.
    ok = client.post("/v1/runs", json={"workflowPath": "hello.py", "input": nested(31)})
    assert ok.status_code == 200, ok.text
    err = assert_error(
        client.post("/v1/runs", json={"workflowPath": "hello.py", "input": nested(32)}),
        400,
        "INVALID_REQUEST",
    )
    assert err["details"]["maxDepth"] == 32


START_WRONG = {
    "workflowPath": [1, 1.5, True, False, [], {}, ["hello.py"]],
    "input": [[], "x", 1, 1.5, True, ["a"]],
    "runId": [1, 1.5, True, [], {}],
    "resume": ["true", "false", 1, 0, [], {}],
    "config": ["x", 1, [], True],
    "config.maxConcurrency": [0, -1, "2", 1.5, True, [], {}],
}
RESUME_WRONG = {"workflowPath": [1, 1.5, True, [], {}]}
DECISION_WRONG = {
    "iteration": ["0", 1.5, True, [], {}, -1],
    "note": [1, True, [], {}],
    "decidedBy": [1, False, [], {}],
    "decision": ["x", 1, [], True],
}
SIGNAL_WRONG = {
    "correlationId": [1, True, [], {}],
    "receivedBy": [1, 1.5, [], {}],
}
NOT_OBJECTS = [b"[]", b'"x"', b"1", b"true", b"null", b"[{}]"]


def _start_body(field: str, value: Any) -> dict[str, Any]:
    if field == "workflowPath":
        return {"workflowPath": value}
    if field == "config.maxConcurrency":
        return {"workflowPath": "hello.py", "config": {"maxConcurrency": value}}
    return {"workflowPath": "hello.py", field: value}


def test_wrong_types_in_every_field_of_every_body(
    srv: ServerProcess, client: httpx.Client, runs: dict[str, str]
) -> None:
    before = run_count(srv)
    cases: list[tuple[str, dict[str, Any], str]] = []
    for field, values in START_WRONG.items():
        cases += [("/v1/runs", _start_body(field, v), field) for v in values]
    for field, values in RESUME_WRONG.items():
        cases += [(f"/v1/runs/{runs['done']}/resume", {field: v}, field) for v in values]
    for verb in ("approve", "deny"):
        route = f"/v1/runs/{runs['approval']}/nodes/review/{verb}"
        for field, values in DECISION_WRONG.items():
            cases += [(route, {field: v}, field) for v in values]
    for route in (
        f"/v1/runs/{runs['signal']}/signals/payment",
        f"/signal/{runs['signal']}/payment",
    ):
        for field, values in SIGNAL_WRONG.items():
            cases += [(route, {field: v, "data": {"amount": 1}}, field) for v in values]
    for route, body, field in cases:
        err = assert_error(client.post(route, json=body), 400, "INVALID_REQUEST")
        assert err["details"]["field"] == field, (route, body, err)
    for route in body_routes(runs):
        for raw in NOT_OBJECTS:
            res = client.post(route, content=raw, headers=JSON_TYPE)
            err = assert_error(res, 400, "INVALID_REQUEST")
            assert err["details"]["field"] == "body", (route, raw, err)
    assert run_count(srv) == before
    assert_untouched(client, runs)


def test_invalid_utf8_is_invalid_json(client: httpx.Client, runs: dict[str, str]) -> None:
    bodies = [
        b"\xff",
        b'{"workflowPath": "\xff.py"}',
        b'{"workflowPath": "hello.py", "input": {"a": "\xc3\x28"}}',
        b'{"note": "\xc0\xaf"}',  # overlong encoding of "/"
        b'{"note": "\xe2\x82"}',  # truncated sequence
        b'{"data": "\xed\xa0\x80"}',  # an encoded surrogate
        b"\xff\xfe{\x00}\x00",  # UTF-16
    ]
    for route in body_routes(runs):
        for raw in bodies:
            res = client.post(route, content=raw, headers=JSON_TYPE)
            assert_error(res, 400, "INVALID_JSON")
    for route in body_routes(runs):
        for raw in (b"{", b"{'a': 1}", b'{"a": 1,}', b"\xef\xbb\xbf{}", b"{}x", b"nul"):
            assert_error(client.post(route, content=raw, headers=JSON_TYPE), 400, "INVALID_JSON")
    assert_untouched(client, runs)


@pytest.mark.parametrize(
    "method, where, body",
    [
        ("POST", "/v1/runs/{approval}/nodes/review/approve", {"iteration": 2**63}),
        ("POST", "/v1/runs/{approval}/nodes/review/deny", {"iteration": 10**30}),
        ("GET", "/v1/runs/{done}/events?afterSeq=" + str(2**64), None),
        ("GET", "/v1/runs/{done}/frames?afterFrameNo=" + str(10**30), None),
        ("GET", "/v1/runs/{done}/frames?afterFrameNo=-" + str(10**30), None),
    ],
    ids=["approve-iteration", "deny-iteration", "afterSeq", "afterFrameNo", "afterFrameNo-neg"],
)
def test_huge_integers_are_400(
    srv: ServerProcess, runs: dict[str, str], method: str, where: str, body: Any
) -> None:
    """Wider than 64 bits: refused, not handed to the database (it was a 500)."""
    with srv.client(headers={"connection": "close"}) as c:
        res = c.request(method, where.format(**runs), json=body)
        assert res.status_code == 400, res.text
        assert res.json()["error"]["code"] == "INVALID_REQUEST"
        assert_untouched(c, runs)


@pytest.mark.parametrize(
    "where, raw",
    [
        ("/v1/runs", b'{"workflowPath": "\\ud800.py"}'),
        ("/v1/runs", b'{"workflowPath": "hello.py", "input": {"name": "\\ud800"}}'),
        ("/v1/runs/{signal}/signals/other", b'{"data": {"x": "\\ud800"}}'),
        ("/v1/runs/{signal}/signals/other", b'{"correlationId": "\\udfff"}'),
        ("/v1/runs/{approval}/nodes/review/deny", b'{"note": "\\ud800"}'),
    ],
    ids=["workflowPath", "input", "signal-data", "correlationId", "note"],
)
def test_lone_surrogates_are_400(
    srv: ServerProcess, runs: dict[str, str], where: str, raw: bytes
) -> None:
    """`\\ud800` parses but cannot be stored or encoded: refused (it was a 500)."""
    with srv.client(headers={"connection": "close"}) as c:
        res = c.post(where.format(**runs), content=raw, headers=JSON_TYPE)
        assert res.status_code == 400, res.text
        assert res.json()["error"]["code"] in ("INVALID_JSON", "INVALID_REQUEST")


# -- size and time limits --------------------------------------------------------------------


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        step = min(size, total - sent)
        sent += step
        yield b" " * step


def test_body_of_one_mib_plus_one(
    srv: ServerProcess, client: httpx.Client, runs: dict[str, str]
) -> None:
    for route in body_routes(runs):
        res = client.post(route, content=b" " * (MIB + 1))
        assert res.request.headers["content-length"] == str(MIB + 1)
        assert assert_error(res, 413, "PAYLOAD_TOO_LARGE")["details"] == {"maxBytes": MIB}
        res = client.post(route, content=_chunks(MIB + 1))
        assert res.request.headers["transfer-encoding"] == "chunked"
        assert assert_error(res, 413, "PAYLOAD_TOO_LARGE")["details"] == {"maxBytes": MIB}
    # Exactly 1 MiB is not too large: it is read and parsed (here: a missing file).
    head = b'{"workflowPath": "no-such-file.py"}'
    exact = head + b" " * (MIB - len(head))
    for body in (exact, iter([head, *_chunks(MIB - len(head))])):
        res = client.post("/v1/runs", content=body, headers=JSON_TYPE)
        assert_error(res, 400, "WORKFLOW_LOAD_FAILED")
    assert_untouched(client, runs)
    # And a normal request still works.
    run_id = start_run(client, "hello.py")
    assert wait_status(client, run_id, ("finished", "failed"))["status"] == "finished"


def test_too_large_is_refused_without_reading_the_rest(srv: ServerProcess) -> None:
    # Content-Length above the limit: refused before any body byte is sent.
    started = time.monotonic()
    status, data = raw_request(
        srv.port,
        b"POST /v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % (MIB + 1),
    )
    assert status == 413, data
    assert time.monotonic() - started < TIMEOUT_S * 0.8
    assert b'"maxBytes":1048576' in data
    # Chunked: refused the moment the limit is passed, while the body is still unfinished.
    started = time.monotonic()
    chunk = b" " * (MIB + 1)
    status, data = raw_request(
        srv.port,
        b"POST /v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n" % len(chunk)
        + chunk
        + b"\r\n",
    )
    assert status == 413, data[:300]
    assert time.monotonic() - started < TIMEOUT_S * 0.8


def test_body_that_never_arrives_is_408(srv: ServerProcess) -> None:
    for request in (
        b'POST /v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{"wor',
        b"POST /v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5\r\n{"wor\r\n',
    ):
        started = time.monotonic()
        status, data = raw_request(srv.port, request)
        elapsed = time.monotonic() - started
        assert status == 408, data
        assert b'"REQUEST_TIMEOUT"' in data
        assert TIMEOUT_S * 0.8 <= elapsed < TIMEOUT_S + 2.5, elapsed


def test_slow_headers_are_cut_off_while_others_are_served(
    srv: ServerProcess, client: httpx.Client
) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100 + b"\r\n\r\n"
    results: dict[int, tuple[float, bytes]] = {}

    def slow_client(index: int) -> None:
        with socket.create_connection(("127.0.0.1", srv.port)) as sock:
            opened = time.monotonic()
            sock.settimeout(1.0)
            got = b""
            for byte in request:
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    break
                try:
                    got = sock.recv(1024)
                    break  # closed (b"") or answered: either way the wait is over
                except TimeoutError:
                    continue
                except OSError:
                    break
            results[index] = (time.monotonic() - opened, got)

    threads = [threading.Thread(target=slow_client, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    served = 0
    started = time.monotonic()
    while any(t.is_alive() for t in threads) and time.monotonic() - started < 15:
        res = client.get("/health")
        assert res.status_code == 200
        served += 1
        time.sleep(0.05)
    for thread in threads:
        thread.join(5)
    assert len(results) == 5
    for elapsed, got in results.values():
        assert got == b"", got  # closed without an answer
        assert TIMEOUT_S * 0.8 <= elapsed < TIMEOUT_S + 1.5, elapsed
    assert served >= 10, served
    assert start_run(client, "hello.py")


# -- Host, Origin, Content-Type: another page on this machine cannot drive the server --------


def test_host_is_parsed_strictly(srv: ServerProcess, client: httpx.Client) -> None:
    port = srv.port
    for host in (
        f"127.0.0.1:{port}@evil.com",
        f"evil.com@127.0.0.1:{port}",
        f"127.0.0.1:{port}/x",
        f"127.0.0.1:{port}#x",
        f"127.0.0.1 :{port}",
        "127.0.0.1:",
        f"[::1]:{port}x",
        "127.1",
    ):
        err = assert_error(client.get("/v1/runs", headers={"host": host}), 400, "INVALID_REQUEST")
        assert "Host" in err["message"]
    status, data = raw_request(
        port, b"GET /v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.com\r\n\r\n"
    )
    assert status == 400 and b'"INVALID_REQUEST"' in data, data
    assert_error(client.get("/v1/runs", headers={"host": f"evil.com:{port}"}), 403, "FORBIDDEN")
    assert client.get("/v1/runs", headers={"host": f"localhost:{port}"}).status_code == 200


def test_origin_of_another_local_page_is_refused(
    srv: ServerProcess, client: httpx.Client, runs: dict[str, str]
) -> None:
    port = srv.port
    before = run_count(srv)
    for origin in (
        "http://127.0.0.1:9999",
        "http://localhost:5173",
        "http://[::1]:8080",
        f"http://localhost:{port}",  # the browser's origin differs from our Host
        f"https://127.0.0.1:{port}",
        f"http://127.0.0.1:{port}/",
        "null",
        "http://evil.example",
    ):
        headers = {"origin": origin}
        assert_error(client.get("/v1/runs", headers=headers), 403, "FORBIDDEN")
        assert_error(
            client.get(f"/v1/runs/{runs['done']}/events", headers=headers), 403, "FORBIDDEN"
        )
        for route in body_routes(runs):
            body = {"workflowPath": "hello.py", "data": {"amount": 1}}
            assert_error(client.post(route, json=body, headers=headers), 403, "FORBIDDEN")
    assert run_count(srv) == before
    assert_untouched(client, runs)
    # Our own origin, or none at all (curl, scripts), is served.
    same = {"origin": f"http://127.0.0.1:{port}"}
    assert client.get("/v1/runs", headers=same).status_code == 200
    run_id = start_run(client, "hello.py")
    res = client.post("/v1/runs", json={"workflowPath": "hello.py"}, headers=same)
    assert res.status_code == 200, res.text
    assert wait_status(client, run_id, ("finished", "failed"))["status"] == "finished"


def test_bodies_must_be_json(
    srv: ServerProcess, client: httpx.Client, runs: dict[str, str]
) -> None:
    before = run_count(srv)
    body = json.dumps({"workflowPath": "hello.py", "data": {"amount": 1}}).encode()
    for route in body_routes(runs):
        for content_type in (
            "text/plain",
            "text/plain;charset=UTF-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/json; charset=latin-1",
            None,  # a fetch() of a Blob sends no Content-Type
        ):
            headers = {"content-type": content_type} if content_type else {}
            res = client.post(route, content=body, headers=headers)
            assert_error(res, 415, "UNSUPPORTED_MEDIA_TYPE")
        assert_error(client.post(route, content=iter([body])), 415, "UNSUPPORTED_MEDIA_TYPE")
    # Refused by its Content-Type before it is read: not a 413.
    res = client.post("/v1/runs", content=b" " * (MIB + 1), headers={"content-type": "text/plain"})
    assert_error(res, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert run_count(srv) == before
    assert_untouched(client, runs)
    for content_type in ("application/json; charset=utf-8", "application/vnd.smithers+json"):
        res = client.post("/v1/runs", content=body, headers={"content-type": content_type})
        assert res.status_code == 200, res.text


def test_allowed_origin_flag(spawn: Callable[..., ServerProcess]) -> None:
    listed = ("http://localhost:5173", "https://app.example.com")
    args = (
        "--allowed-origin",
        "http://localhost:5173",
        "--allowed-origin",
        "https://App.Example.com/",
    )
    open_srv = spawn(db=False, args=args)
    token_srv = spawn(db=False, token="t0k-" + "x" * 16, args=args)
    with open_srv.client() as c:
        for origin in (*listed, f"http://127.0.0.1:{open_srv.port}"):
            assert c.get("/openapi.json", headers={"origin": origin}).status_code == 200, origin
        for origin in ("http://localhost:5174", "http://app.example.com", "null"):
            assert_error(c.get("/openapi.json", headers={"origin": origin}), 403, "FORBIDDEN")
    with token_srv.client() as c:
        assert c.get("/openapi.json").status_code == 200
        for origin in listed:
            assert c.get("/openapi.json", headers={"origin": origin}).status_code == 200, origin
        for origin in ("http://evil.example", "http://localhost:5174"):
            assert_error(c.get("/openapi.json", headers={"origin": origin}), 403, "FORBIDDEN")
    with token_srv.client(auth=False) as c:
        res = c.get("/openapi.json", headers={"origin": listed[0]})
        assert_error(res, 401, "UNAUTHORIZED")
