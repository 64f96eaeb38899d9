"""`SmithersClient.wait` and `AsyncSmithersClient.wait` against a real server: they return
once the run is parked or terminal (or in the statuses asked for), never on a status the
run has left, and give up after `timeout`."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from smithers_server import (
    AsyncSmithersClient,
    ServerHandle,
    SmithersAPIError,
    SmithersClient,
    start_server,
)
from smithers_server.waiting import Until
from tests.helpers import EXAMPLES

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("root")
    for example in EXAMPLES.glob("[!.]*.py"):
        shutil.copy(example, path / example.name)
    return path


@pytest.fixture(scope="module")
def server(root: Path) -> Iterator[ServerHandle]:
    # Keep-alives once a minute: a wait must honour its timeout without them.
    handle = start_server(
        port=0, db=f"sqlite:///{root / 'w.db'}", root_dir=root, sse_keepalive_ms=60_000
    )
    yield handle
    handle.close()


@pytest.fixture
def client(server: ServerHandle) -> Iterator[SmithersClient]:
    with SmithersClient(server.url) as c:
        yield c


def test_wait_returns_when_parked_then_when_finished(client: SmithersClient) -> None:
    for _ in range(5):  # approving right after `wait` is never early
        run_id = client.start_run("approval.py", {"msg": "hi"})
        parked = client.wait(run_id)
        assert parked["status"] == "waiting-approval"
        blocked = parked["runState"]["blocked"]
        assert blocked["kind"] == "approval" and blocked["nodeId"] == "review"
        client.approve(run_id, "review", decided_by="me")
        # The log holds the earlier parking: the view, read again, says it has moved on.
        done = client.wait(run_id)
        assert done["status"] == "finished" and done["runId"] == run_id


def test_until_names_the_statuses_and_a_terminal_run_ends_any_wait(
    client: SmithersClient,
) -> None:
    run_id = client.start_run("signal.py")
    assert client.wait(run_id, until="waiting-event")["status"] == "waiting-event"
    with pytest.raises(TimeoutError) as exc:
        client.wait(run_id, until=["finished"], timeout=1)
    assert f"run {run_id!r} reached none of cancelled, failed, finished within 1 s" in str(
        exc.value
    )
    client.signal(run_id, "payment", {"amount": 3})
    assert client.wait(run_id, until={"finished"}, timeout=30)["status"] == "finished"

    failing = client.start_run("failing.py")
    assert client.wait(failing, until="waiting-approval")["status"] == "failed"
    assert client.wait(failing)["status"] == "failed"  # already terminal: at once


def test_wait_refuses_an_unknown_status_or_run(client: SmithersClient) -> None:
    with pytest.raises(ValueError, match="unknown run status waiting"):
        client.wait("any", until="waiting")
    with pytest.raises(SmithersAPIError) as exc:
        client.wait("wait-none")
    assert exc.value.code == "NOT_FOUND"


def test_until_reads_only_run_events() -> None:
    default = Until.of(None)
    assert default.worth_a_look({"type": "RunStatusChanged", "status": "waiting-timer"})
    assert not default.worth_a_look({"type": "RunStatusChanged", "status": "running"})
    assert not default.worth_a_look({"type": "NodeFinished", "status": "finished"})
    assert default.worth_a_look({"type": "RunFailed"})
    assert default.worth_a_look({"type": "RunSomethingNew"})  # unknown: look
    assert Until.of("running").worth_a_look({"type": "RunStarted"})


async def test_async_wait(server: ServerHandle) -> None:
    # A real server: httpx.ASGITransport hands over a response only once it has ended,
    # so no stream of a live run can be followed through it.
    async with AsyncSmithersClient(server.url) as c:
        run_id = await c.start_run("approval.py")
        parked = await c.wait(run_id)
        assert parked["runState"]["blocked"]["nodeId"] == "review"
        with pytest.raises(TimeoutError, match=r"within 0\.5 s"):
            await c.wait(run_id, "finished", timeout=0.5)
        await c.approve(run_id, "review")
        assert (await c.wait(run_id, "finished"))["status"] == "finished"
        with pytest.raises(ValueError):
            await c.wait(run_id, ["done"])
