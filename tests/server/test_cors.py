"""CORS on a real `smithers server --cors-origin ...` with a token: a page on a listed
origin gets its preflight granted and reads the answers (errors included); any other
origin is refused with the envelope, before and after a preflight."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest

from .conftest import ServerProcess, assert_error, stays_healthy, wait_status

PAGE = "http://localhost:5173"
OTHER_PAGE = "https://app.example.com"
EVIL = "http://evil.example"
TOKEN = "cors-token"

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def srv(spawn: Callable[..., ServerProcess]) -> ServerProcess:
    return spawn(token=TOKEN, args=("--cors-origin", PAGE, "--cors-origin", OTHER_PAGE + "/"))


def preflight(
    client: httpx.Client, path: str, origin: str, method: str = "POST", headers: str = ""
) -> httpx.Response:
    asked = {"origin": origin, "access-control-request-method": method}
    if headers:
        asked["access-control-request-headers"] = headers
    return client.options(path, headers=asked)


def test_a_listed_origin_is_granted_a_preflight_then_reads_the_answer(
    srv: ServerProcess,
) -> None:
    with stays_healthy(srv), srv.client(auth=False) as browser:
        for origin in (PAGE, OTHER_PAGE):
            granted = preflight(browser, "/v1/runs", origin, headers="authorization, content-type")
            assert granted.status_code == 200, granted.text
            assert granted.headers["access-control-allow-origin"] == origin
            assert "POST" in granted.headers["access-control-allow-methods"]
            allowed = granted.headers["access-control-allow-headers"].lower()
            assert "authorization" in allowed and "x-smithers-key" in allowed
            assert "origin" in granted.headers["vary"].lower()

        page = {"origin": PAGE, "authorization": f"Bearer {TOKEN}"}
        started = browser.post("/v1/runs", json={"workflowPath": "hello.py"}, headers=page)
        assert started.status_code == 200, started.text
        assert started.headers["access-control-allow-origin"] == PAGE
        run_id = started.json()["runId"]
        with srv.client() as plain:
            wait_status(plain, run_id, "finished")
        view = browser.get(f"/v1/runs/{run_id}", headers=page)
        assert view.json()["status"] == "finished"
        assert view.headers["access-control-allow-origin"] == PAGE
        with browser.stream("GET", f"/v1/runs/{run_id}/events", headers=page) as events:
            assert events.status_code == 200
            assert events.headers["access-control-allow-origin"] == PAGE
            assert "RunFinished" in events.read().decode()

        # Without the token the page is refused, and can read why.
        refused = browser.get("/v1/runs", headers={"origin": PAGE})
        assert_error(refused, 401, "UNAUTHORIZED")
        assert refused.headers["access-control-allow-origin"] == PAGE


def test_an_unlisted_origin_is_refused_before_and_after_a_preflight(srv: ServerProcess) -> None:
    with stays_healthy(srv), srv.client(auth=False) as browser:
        for origin in (EVIL, "http://localhost:5174", "null"):
            refused = preflight(browser, "/v1/runs", origin, headers="authorization")
            assert_error(refused, 403, "FORBIDDEN")
            assert "access-control-allow-origin" not in refused.headers
            with_token = browser.post(
                "/v1/runs",
                json={"workflowPath": "hello.py"},
                headers={"origin": origin, "authorization": f"Bearer {TOKEN}"},
            )
            assert_error(with_token, 403, "FORBIDDEN")
            assert "access-control-allow-origin" not in with_token.headers


def test_a_preflight_asking_more_than_is_allowed_is_refused(srv: ServerProcess) -> None:
    with stays_healthy(srv), srv.client(auth=False) as browser:
        method = preflight(browser, "/v1/runs", PAGE, method="DELETE")
        err = assert_error(method, 403, "FORBIDDEN")
        assert "method" in err["message"] and err["details"]["allowedMethods"] == ["GET", "POST"]
        header = preflight(browser, "/v1/runs", PAGE, headers="x-custom")
        assert "headers" in assert_error(header, 403, "FORBIDDEN")["message"]
        # An OPTIONS that is no preflight is a request like any other: it needs the token.
        bare = browser.options("/v1/runs", headers={"origin": PAGE})
        assert_error(bare, 401, "UNAUTHORIZED")


def test_without_cors_origins_no_preflight_is_granted(
    spawn: Callable[..., ServerProcess],
) -> None:
    srv = spawn(token=TOKEN, args=("--allowed-origin", PAGE))
    with srv.client(auth=False) as browser:
        refused = preflight(browser, "/v1/runs", PAGE, headers="authorization")
        assert_error(refused, 401, "UNAUTHORIZED")
        assert "access-control-allow-origin" not in refused.headers


def test_a_malformed_cors_origin_is_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "smithers_cli", "server", "--port", "0", "--cors-origin", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert done.stderr.strip() == (
        "smithers: CORS origin 'nope' is not scheme://host[:port] (http or https)"
    )
    assert done.stdout == ""
