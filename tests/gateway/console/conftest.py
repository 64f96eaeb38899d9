"""The console in Debian's Chromium (Playwright for Python, never a downloaded browser)
against a real Gateway under uvicorn.

The gateway runs in its own thread's event loop (Playwright's sync API holds the test's),
one per module, on a SQLite file; `restart()` closes it and listens again on the same port
and database. Without /usr/bin/chromium the tests are skipped, but fail under CI.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from smithers.loader import load_workflow
from smithers_gateway import Gateway

from .. import workflows as gateway_workflows
from . import workflows

CHROMIUM = Path(os.environ.get("SMITHERS_CHROMIUM", "/usr/bin/chromium"))
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
TOKENS: dict[str, dict[str, Any]] = {
    "op-token": {"role": "operator", "scopes": ["*"], "userId": "ops"},
    "viewer-token": {"role": "viewer", "scopes": ["run:read", "run:write"], "userId": "vic"},
}
TOKEN_AUTH: dict[str, Any] = {"mode": "token", "tokens": TOKENS}
WIDE = {"width": 1280, "height": 900}
NARROW = {"width": 390, "height": 844}
T = TypeVar("T")


def _gateway(db: Path, root: Path, auth: dict[str, Any] | None) -> Gateway:
    return (
        Gateway(
            auth=auth,
            db=f"sqlite:///{db}",
            workspace_root=root,
            operator_ui={"path": "/console"},
            heartbeat_ms=2_000,
            drain_timeout_ms=2_000,
        )
        .register(
            "approval", load_workflow(str(EXAMPLES / "approval.py")), description="ship a draft"
        )
        .register("signal", load_workflow(str(EXAMPLES / "signal.py")))
        .register("parallel", load_workflow(str(EXAMPLES / "parallel.py")))
        .register("loop", load_workflow(str(EXAMPLES / "loop.py")))
        .register("failing", load_workflow(str(EXAMPLES / "failing.py")))
        .register("retry", load_workflow(str(EXAMPLES / "retry.py")))
        .register("slow", gateway_workflows.slow)
        .register("pick", workflows.pick)
        .register("ranked", workflows.ranked)
    )


class LiveGateway:
    """A Gateway listening in a thread of its own; `rpc` calls it over HTTP."""

    def __init__(self, root: Path, auth: dict[str, Any] | None = TOKEN_AUTH) -> None:
        self.root, self.auth = root, auth
        self.db = root / "console.db"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.gateway = _gateway(self.db, root, auth)
        self.port: int = self.run(self.gateway.listen(port=0)).port or 0

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.run(self.gateway.close())

    def start_again(self) -> None:
        """A new gateway on the same port and database."""
        self.gateway = _gateway(self.db, self.root, self.auth)
        self.run(self.gateway.listen(port=self.port))

    def close(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def rpc(self, method: str, token: str = "op-token", **params: Any) -> httpx.Response:
        return httpx.post(
            f"{self.url}/v1/rpc/{method}",
            json=params,
            headers={"authorization": f"Bearer {token}"},
            timeout=15,
        )

    def call(self, method: str, **params: Any) -> Any:
        res = self.rpc(method, **params)
        assert res.status_code == 200, res.text
        return res.json()["payload"]

    def wait_status(self, run_id: str, *wanted: str, timeout: float = 15) -> dict[str, Any]:
        import time

        deadline = time.monotonic() + timeout
        while True:
            run: dict[str, Any] = self.call("getRun", runId=run_id)
            if run["status"] in wanted:
                return run
            assert time.monotonic() < deadline, run
            time.sleep(0.05)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    gateway = LiveGateway(tmp_path_factory.mktemp("console"))
    try:
        yield gateway
    finally:
        gateway.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"Debian chromium is missing at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as p:
        found = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield found
        finally:
            found.close()


def watch_errors(page: Page) -> list[str]:
    """Uncaught errors of the page's scripts, and what its Content-Security-Policy refused."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    page.on(
        "console",
        lambda message: (
            errors.append(message.text)
            if message.type == "error" and message.text.startswith("Refused")
            else None
        ),
    )
    return errors


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=WIDE)
    context.set_default_timeout(15_000)
    found = context.new_page()
    errors = watch_errors(found)
    try:
        yield found
    finally:
        context.close()
    assert errors == []


def sign_in(page: Page, live: LiveGateway, token: str = "op-token", hash: str = "") -> None:
    page.goto(f"{live.url}/console/{hash}")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who-text")).to_be_visible()


def shoot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
