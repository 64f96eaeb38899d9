"""SmithersClient and AsyncSmithersClient against the real server (and a few canned streams).

The reconnect guarantee is tested through a small TCP proxy that the test cuts (and stops
listening for a while) while the client follows a run that emits many events: the client
must deliver exactly the stored log, seq 0..N, once each.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from smithers import open_store
from smithers.errors import SmithersError
from smithers.store import log as log_q
from smithers_server import ServerHandle, create_app, start_server
from smithers_server.client import (
    AsyncSmithersClient,
    SmithersAPIError,
    SmithersClient,
    SmithersConnectionError,
)
from tests.helpers import EXAMPLES

pytestmark = pytest.mark.anyio

TERMINAL = ("finished", "failed", "cancelled")

CHATTY = '''
"""Many events over a second or so: one NodeOutput per line, a short sleep between."""

import anyio
from pydantic import BaseModel

from smithers import Task, Workflow, create_smithers


class Said(BaseModel):
    lines: int


smithers, outputs = create_smithers(said=Said)


@smithers
def workflow(ctx):
    lines = int(ctx.input.get("lines", 100))
    pause = float(ctx.input.get("pause", 0.01))

    async def talk(tctx) -> dict[str, int]:
        for i in range(lines):
            tctx.log(f"line {i}")
            await anyio.sleep(pause)
        return {"lines": lines}

    return Workflow("chatty", [Task("talk", output=outputs.said, run=talk)])
'''


STUBBORN = '''
"""A task that takes half a second to clean up when it is cancelled."""

import anyio
from pydantic import BaseModel

from smithers import Task, Workflow, create_smithers


class Done(BaseModel):
    ok: bool


smithers, outputs = create_smithers(done=Done)


@smithers
def workflow(ctx):
    async def block(tctx) -> dict[str, bool]:
        try:
            await anyio.sleep(30)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.5)
        return {"ok": True}

    return Workflow("stubborn", [Task("block", output=outputs.done, run=block)])
'''


# -- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the examples (shadow files land here, not in the repo) and two more."""
    path = tmp_path_factory.mktemp("root")
    for example in EXAMPLES.glob("[!.]*.py"):
        shutil.copy(example, path / example.name)
    (path / "chatty.py").write_text(CHATTY)
    (path / "stubborn.py").write_text(STUBBORN)
    return path


@pytest.fixture(scope="module")
def db_url(root: Path) -> str:
    return f"sqlite:///{root / 's.db'}"


@pytest.fixture(scope="module")
def server(root: Path, db_url: str) -> Iterator[ServerHandle]:
    handle = start_server(port=0, db=db_url, root_dir=root, sse_keepalive_ms=100)
    yield handle
    handle.close()


@pytest.fixture
def client(server: ServerHandle) -> Iterator[SmithersClient]:
    with SmithersClient(server.url) as c:
        yield c


def wait_for(client: SmithersClient, run_id: str, *states: str, timeout: float = 10) -> Any:
    """Poll `get_run` until its status or runState.state is one of `states`."""
    deadline = time.monotonic() + timeout
    while True:
        view = client.get_run(run_id)
        if view["status"] in states or view["runState"]["state"] in states:
            return view
        assert time.monotonic() < deadline, f"run never reached {states}: {view}"
        time.sleep(0.02)


async def await_for(client: AsyncSmithersClient, run_id: str, *states: str) -> Any:
    with anyio.fail_after(10):
        while True:
            view = await client.get_run(run_id)
            if view["status"] in states or view["runState"]["state"] in states:
                return view
            await anyio.sleep(0.02)


def stored_log(db_url: str, run_id: str) -> list[dict[str, Any]]:
    """The run's stored events as the client shows them (payload + seq)."""
    store = open_store(db_url)
    try:
        with store.read() as conn:
            events = log_q.events_after(conn, run_id, -1, limit=100_000)
    finally:
        store.close()
    return [{**e.payload, "seq": e.seq} for e in events]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Proxy:
    """A TCP proxy to 127.0.0.1:`upstream` that the test can cut, stop and restart."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.accepted = 0
        self.port = 0
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        listener.settimeout(0.02)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while self.listener is listener:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            up = socket.create_connection(("127.0.0.1", self.upstream))
            with self.lock:
                self.accepted += 1
                self.pairs.append((conn, up))
            for src, dst in ((conn, up), (up, conn)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()
        listener.close()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Drop every open connection (mid-frame, wherever the bytes are)."""
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def stop(self) -> None:
        """Stop listening (reconnects are refused) and drop every connection."""
        self.listener = None
        time.sleep(0.05)  # the accept loop notices and closes the socket
        self.cut()

    def close(self) -> None:
        self.stop()


@pytest.fixture
def proxy(server: ServerHandle) -> Iterator[Proxy]:
    p = Proxy(server.port)
    yield p
    p.close()


# -- plain calls against the real server ------------------------------------------------------


def test_outputs(client: SmithersClient) -> None:
    run_id = client.start_run("sequence.py", {"start": 2})
    wait_for(client, run_id, "finished")
    assert [i["output"] for i in client.outputs(run_id)] == [
        {"value": 2},
        {"value": 3},
        {"value": 4},
    ]
    assert [i["nodeId"] for i in client.outputs(run_id, node_id="three")] == ["three"]


def test_health_start_get_list_frames(client: SmithersClient) -> None:
    assert client.health() == {"ok": True}
    run_id = client.start_run("hello.py", {"name": "Ada"})
    assert run_id.startswith("smi_") and len(run_id) == 28
    view = wait_for(client, run_id, *TERMINAL)
    assert view["status"] == "finished" and view["workflowName"] == "hello"

    runs = client.list_runs(status="finished", workflow="hello")
    assert run_id in [r["runId"] for r in runs]
    assert all(r["status"] == "finished" for r in runs)
    assert len(client.list_runs(limit=1)) == 1

    frames = client.frames(run_id)
    assert frames and frames[0]["runId"] == run_id
    assert len(client.frames(run_id, limit=1)) == 1
    newest = frames[0]["frameNo"]
    assert client.frames(run_id, after_frame_no=newest) == []

    events = list(client.events(run_id))
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "RunStarted" and events[-1]["type"] == "RunFinished"
    tail = list(client.events(run_id, after_seq=len(events) - 3))
    assert tail == events[-2:]


def test_start_run_options_and_errors(client: SmithersClient) -> None:
    run_id = client.start_run("parallel.py", run_id="client-par-1", max_concurrency=1)
    assert run_id == "client-par-1"
    assert wait_for(client, run_id, *TERMINAL)["status"] == "finished"

    with pytest.raises(SmithersAPIError) as exc:
        client.start_run("parallel.py", run_id="client-par-1")
    assert (exc.value.status, exc.value.code) == (409, "RUN_ALREADY_EXISTS")
    assert isinstance(exc.value, SmithersError)
    with pytest.raises(SmithersAPIError) as exc:
        client.start_run("hello.py", run_id="client-none", resume=True)
    assert (exc.value.status, exc.value.code) == (404, "RUN_NOT_FOUND")
    with pytest.raises(SmithersAPIError) as exc:
        client.start_run("no_such.py")
    assert exc.value.code == "WORKFLOW_LOAD_FAILED" and exc.value.details
    with pytest.raises(SmithersAPIError) as exc:
        client.start_run("../outside.py")
    assert exc.value.code == "WORKFLOW_PATH_OUTSIDE_ROOT"
    with pytest.raises(SmithersAPIError) as exc:
        client.start_run("hello.py", run_id="bad id!")
    assert exc.value.code == "INVALID_REQUEST" and exc.value.details["field"] == "runId"
    with pytest.raises(SmithersAPIError) as exc:
        client.get_run("client-none")
    assert (exc.value.status, exc.value.code) == (404, "NOT_FOUND")
    assert "NOT_FOUND (404)" in str(exc.value)
    with pytest.raises(SmithersAPIError) as exc:
        list(client.events("client-none"))
    assert exc.value.code == "NOT_FOUND"
    with pytest.raises(SmithersAPIError) as exc:
        client.frames("client-none")
    assert exc.value.code == "NOT_FOUND"


def test_approve_resumes_the_run_by_itself(client: SmithersClient) -> None:
    run_id = client.start_run("approval.py", {"msg": "ship it"})
    wait_for(client, run_id, "waiting-approval")
    pending = [a for a in client.approvals() if a["runId"] == run_id]
    assert [(a["nodeId"], a["requestTitle"]) for a in pending] == [("review", "Ship the draft?")]

    with pytest.raises(SmithersAPIError) as exc:
        client.approve(run_id, "draft")
    assert (exc.value.status, exc.value.code) == (409, "NODE_NOT_WAITING")

    answer = client.approve(run_id, "review", note="lgtm", decided_by="ann")
    assert answer == {"runId": run_id, "nodeId": "review", "iteration": 0, "approved": True}
    assert wait_for(client, run_id, *TERMINAL)["status"] == "finished"
    assert run_id not in [a["runId"] for a in client.approvals()]

    with pytest.raises(SmithersAPIError) as exc:
        client.approve(run_id, "review")
    assert (exc.value.status, exc.value.code) == (409, "ALREADY_DECIDED")
    with pytest.raises(SmithersAPIError) as exc:
        client.approve("client-none", "review")
    assert exc.value.code == "NOT_FOUND"


def test_deny_and_resume(client: SmithersClient) -> None:
    run_id = client.start_run("approval.py")
    wait_for(client, run_id, "waiting-approval")
    answer = client.deny(run_id, "review", note="no", decided_by="bob")
    assert answer["approved"] is False
    assert wait_for(client, run_id, *TERMINAL)["status"] == "failed"

    failing = client.start_run("failing.py")
    assert wait_for(client, failing, *TERMINAL)["status"] == "failed"
    before = len(list(client.events(failing)))
    assert client.resume(failing) == {"runId": failing}
    assert client.resume(failing, "failing.py")["runId"] == failing
    assert wait_for(client, failing, *TERMINAL)["status"] == "failed"
    # events() follows until the server ends the stream: past the old RunFailed, through
    # the resumed run's events, to its new terminal event.
    everything = list(client.events(failing))
    assert [e["seq"] for e in everything] == list(range(len(everything)))
    assert len(everything) > before
    assert everything[before - 1]["type"] == "RunFailed"
    assert everything[before]["type"] != "RunFailed"
    assert everything[-1]["type"] == "RunFailed"
    more = list(client.events(failing, after_seq=before - 1))
    assert more == everything[before:]

    finished = client.start_run("hello.py")
    wait_for(client, finished, *TERMINAL)
    with pytest.raises(SmithersAPIError) as exc:
        client.resume(finished)
    assert (exc.value.status, exc.value.code) == (409, "RUN_NOT_ACTIVE")
    with pytest.raises(SmithersAPIError) as exc:
        client.resume("client-none")
    assert exc.value.code == "RUN_NOT_FOUND"


def test_signal_resumes_the_run_by_itself(client: SmithersClient) -> None:
    run_id = client.start_run("signal.py")
    wait_for(client, run_id, "waiting-event")
    sent = client.signal(run_id, "payment", {"amount": 42}, correlation_id="c-1", received_by="x")
    assert sent["runId"] == run_id and sent["signalName"] == "payment"
    assert sent["correlationId"] == "c-1"
    assert wait_for(client, run_id, *TERMINAL)["status"] == "finished"
    types = [e["type"] for e in client.events(run_id)]
    assert "SignalReceived" in types and types[-1] == "RunFinished"

    with pytest.raises(SmithersAPIError) as exc:
        client.signal(run_id, "payment", {"amount": 1})
    assert (exc.value.status, exc.value.code) == (409, "RUN_NOT_ACTIVE")
    with pytest.raises(SmithersAPIError) as exc:
        client.signal("client-none", "payment")
    assert exc.value.code == "NOT_FOUND"
    with pytest.raises(SmithersAPIError) as exc:
        client.signal(run_id, " ")
    assert exc.value.code == "INVALID_REQUEST"


def test_cancel(client: SmithersClient) -> None:
    run_id = client.start_run("slow.py", {"seconds": 30})
    wait_for(client, run_id, "running")
    assert client.cancel(run_id) == {"runId": run_id, "status": "cancelled"}
    assert client.get_run(run_id)["status"] == "cancelled"
    assert list(client.events(run_id))[-1]["type"] == "RunCancelled"
    with pytest.raises(SmithersAPIError) as exc:
        client.cancel(run_id)
    assert (exc.value.status, exc.value.code) == (409, "RUN_NOT_ACTIVE")
    with pytest.raises(SmithersAPIError) as exc:
        client.cancel("client-none")
    assert exc.value.code == "NOT_FOUND"


def test_resume_of_a_cancelled_run_is_refused_while_its_task_cleans_up(
    client: SmithersClient,
) -> None:
    run_id = client.start_run("stubborn.py")
    wait_for(client, run_id, "running")
    assert client.cancel(run_id)["status"] == "cancelled"
    assert client.get_run(run_id)["status"] == "cancelled"
    with pytest.raises(SmithersAPIError) as exc:
        client.resume(run_id)  # answered 200 {"runId", "status": "running"}
    assert exc.value.code == "RUN_NOT_ACTIVE"


def test_events_follow_a_parked_run_through_keep_alives(client: SmithersClient) -> None:
    """The stream stays open while the run waits (keep-alives every 100 ms here)."""
    run_id = client.start_run("approval.py")
    seen: list[dict[str, Any]] = []

    def approve_later() -> None:
        wait_for(client, run_id, "waiting-approval")
        time.sleep(0.4)  # a few keep-alive comments go by
        client.approve(run_id, "review")

    helper = threading.Thread(target=approve_later)
    helper.start()
    with SmithersClient(client.base_url) as follower:
        seen = list(follower.events(run_id, max_reconnects=0))
    helper.join()
    assert [e["seq"] for e in seen] == list(range(len(seen)))
    assert seen[-1]["type"] == "RunFinished"
    types = [e["type"] for e in seen]
    assert types.index("NodeWaitingApproval") < types.index("ApprovalGranted")


def test_token(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMITHERS_API_KEY", raising=False)
    secured = start_server(port=0, db=f"sqlite:///{root / 'auth.db'}", root_dir=root,
                           auth_token="s3cret")  # fmt: skip
    try:
        with SmithersClient(secured.url) as anonymous:
            assert anonymous.health() == {"ok": True}
            with pytest.raises(SmithersAPIError) as exc:
                anonymous.list_runs()
            assert (exc.value.status, exc.value.code) == (401, "UNAUTHORIZED")
        with SmithersClient(secured.url, "wrong") as wrong:
            with pytest.raises(SmithersAPIError) as exc:
                wrong.start_run("hello.py")
            assert exc.value.code == "UNAUTHORIZED"
        with SmithersClient(secured.url, "s3cret") as good:
            assert good.list_runs() == []
        monkeypatch.setenv("SMITHERS_API_KEY", "s3cret")
        with SmithersClient(secured.url) as from_env:
            run_id = from_env.start_run("hello.py")
            assert [e["seq"] for e in from_env.events(run_id)][-1] >= 5
    finally:
        secured.close()


def test_connection_error_is_one_clear_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with SmithersClient(url, timeout=2) as client:
        with pytest.raises(SmithersConnectionError) as exc:
            client.health()
        with pytest.raises(SmithersConnectionError):
            list(client.events("smi_x"))
    assert exc.value.code == "UNREACHABLE" and isinstance(exc.value, SmithersError)
    assert str(exc.value).startswith(f"cannot reach the Smithers server at {url}: ")
    assert "\n" not in str(exc.value)


# -- the reconnect guarantee ------------------------------------------------------------------


def test_events_reconnect_delivers_every_seq_once(
    client: SmithersClient, proxy: Proxy, db_url: str
) -> None:
    run_id = client.start_run("chatty.py", {"lines": 150, "pause": 0.008})
    done = threading.Event()

    def saboteur() -> None:
        """Cut every connection every 70 ms; once, stop listening for 150 ms."""
        rounds = 0
        while not done.wait(0.07):
            rounds += 1
            if rounds == 4:
                proxy.stop()
                time.sleep(0.15)
                proxy.start()
            else:
                proxy.cut()

    seen: list[dict[str, Any]] = []
    # The saboteur starts once the stream is open: a first connection that fails is an
    # error to report (not retried), and on a slow machine 70 ms may not be enough to open.
    thread = threading.Thread(target=saboteur)
    try:
        with SmithersClient(proxy.url) as flaky:
            for event in flaky.events(run_id, reconnect_delay=0.01, max_reconnects=50):
                seen.append(event)
                if len(seen) == 1:
                    thread.start()
                if len(seen) in (3, 40, 90):
                    proxy.cut()  # a drop right after a delivery, too
    finally:
        done.set()
        if thread.is_alive():
            thread.join()

    steady = list(client.events(run_id))
    stored = stored_log(db_url, run_id)
    assert len(stored) > 150
    assert [e["seq"] for e in seen] == list(range(len(stored)))
    assert seen == steady == stored
    assert seen[-1]["type"] == "RunFinished"
    assert proxy.accepted >= 5  # it really did reconnect, several times


async def test_async_events_reconnect(server: ServerHandle, proxy: Proxy, db_url: str) -> None:
    async with AsyncSmithersClient(proxy.url) as flaky:
        run_id = await flaky.start_run("chatty.py", {"lines": 80, "pause": 0.005})
        seen: list[dict[str, Any]] = []
        events = flaky.events(run_id, reconnect_delay=0.01)
        async for event in events:
            seen.append(event)
            if len(seen) % 15 == 0:
                proxy.cut()
    stored = stored_log(db_url, run_id)
    assert [e["seq"] for e in seen] == list(range(len(stored)))
    assert seen == stored
    assert proxy.accepted >= 4


def test_events_give_up_after_max_reconnects(client: SmithersClient, proxy: Proxy) -> None:
    run_id = client.start_run("slow.py", {"seconds": 30})
    seen: list[dict[str, Any]] = []
    try:
        with SmithersClient(proxy.url) as flaky, pytest.raises(SmithersConnectionError) as exc:
            for event in flaky.events(run_id, max_reconnects=2, reconnect_delay=0.01):
                seen.append(event)
                if len(seen) == 1:
                    proxy.stop()
        assert "after 2 failed reconnects" in str(exc.value)
        assert exc.value.code == "UNREACHABLE"
        assert exc.value.details["runId"] == run_id
        assert [e["seq"] for e in seen] == list(range(len(seen)))
    finally:
        client.cancel(run_id)


# -- the stream parser, on canned answers -----------------------------------------------------


class Broken(httpx.SyncByteStream):
    """A body that sends `chunks`, then fails like a dropped connection (if `drop`)."""

    def __init__(self, chunks: list[str], drop: bool) -> None:
        self.chunks = chunks
        self.drop = drop

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            yield chunk.encode()
        if self.drop:
            raise httpx.ReadError("connection dropped")


def frame(seq: int, type_: str = "NodeOutput") -> str:
    return f"id: {seq}\nevent: smithers\ndata: {json.dumps({'type': type_, 'n': seq})}\n\n"


def scripted(
    answers: list[Callable[[httpx.Request], httpx.Response]],
) -> tuple[SmithersClient, list[httpx.Request]]:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return answers[min(len(requests), len(answers)) - 1](request)

    client = SmithersClient("http://smithers.test/", "tok", transport=httpx.MockTransport(handler))
    return client, requests


def sse(chunks: list[str], drop: bool = False) -> Callable[[httpx.Request], httpx.Response]:
    headers = {"content-type": "text/event-stream"}
    return lambda request: httpx.Response(200, headers=headers, stream=Broken(chunks, drop))


def test_stream_resume_skips_replays_and_partial_frames() -> None:
    client, requests = scripted(
        [
            sse(["retry: 150\n\n", frame(0), frame(1), 'id: 2\ndata: {"ty'], drop=True),
            sse(
                [
                    "retry: 150\n\n",
                    frame(1),  # replayed: already delivered
                    ": keep-alive\n\n",
                    frame(2),
                    'id: 3\r\ndata: {"type": "NodeOutput",\r\ndata:  "n": 3}\r\n\r\n',
                    frame(4, "RunFinished"),
                    frame(5),  # a resumed run goes on: the stream, not the event, ends it
                ]
            ),
        ]
    )
    started = time.monotonic()
    with client:
        seen = list(client.events("r1"))
    assert time.monotonic() - started >= 0.15  # the retry: hint, not the default 1 s
    assert [e["seq"] for e in seen] == [0, 1, 2, 3, 4, 5]
    assert seen[3] == {"type": "NodeOutput", "n": 3, "seq": 3}
    assert seen[4]["type"] == "RunFinished"
    assert requests[0].url.params["afterSeq"] == "-1"
    assert "last-event-id" not in requests[0].headers
    assert requests[0].headers["authorization"] == "Bearer tok"
    assert requests[1].url.path == "/v1/runs/r1/events"
    assert requests[1].url.params["afterSeq"] == "1"
    assert requests[1].headers["last-event-id"] == "1"


def test_stream_gap_reconnects_instead_of_skipping() -> None:
    client, requests = scripted([sse([frame(0), frame(2)]), sse([frame(1), frame(2, "RunFailed")])])
    with client:
        seen = list(client.events("r1", reconnect_delay=0))
    assert [e["seq"] for e in seen] == [0, 1, 2]
    assert requests[1].url.params["afterSeq"] == "0"


def test_stream_gives_up_and_retries_server_errors() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def unavailable(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="<html>down for maintenance</html>")

    client, requests = scripted([sse([frame(0)], drop=True), unavailable, refuse])
    with client, pytest.raises(SmithersConnectionError) as exc:
        list(client.events("r1", max_reconnects=3, reconnect_delay=0))
    assert len(requests) == 1 + 3
    assert "after 3 failed reconnects" in str(exc.value)
    assert "\n" not in str(exc.value)

    # A response the server completes is not a drop: nothing more follows.
    client, requests = scripted([sse(["retry: 1000\n\n"])])
    with client:
        assert list(client.events("r1", after_seq=7)) == []
    assert len(requests) == 1

    # A client error while reconnecting is not retried.
    not_found = {"error": {"code": "NOT_FOUND", "message": "gone"}}
    client, requests = scripted(
        [sse([frame(0)], drop=True), lambda r: httpx.Response(404, json=not_found)]
    )
    with client, pytest.raises(SmithersAPIError) as api:
        list(client.events("r1", reconnect_delay=0))
    assert api.value.code == "NOT_FOUND" and len(requests) == 2


def test_non_json_error_body_and_odd_answers() -> None:
    client, _ = scripted([lambda r: httpx.Response(502, text="<html>Bad gateway</html>")])
    with client, pytest.raises(SmithersAPIError) as exc:
        client.get_run("r1")
    assert (exc.value.status, exc.value.code) == (502, "HTTP_502")
    assert "Bad gateway" in exc.value.message

    client, _ = scripted([lambda r: httpx.Response(200, text="not json")])
    with client, pytest.raises(SmithersAPIError) as exc:
        client.list_runs()
    assert exc.value.code == "INVALID_RESPONSE"


def test_requests_are_built_as_the_server_expects() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        listing = request.method == "GET" and request.url.path == "/v1/runs"
        return httpx.Response(200, json=[] if listing else {"runId": "a/b"})

    client, requests = scripted([answer])
    with client:
        client.start_run("w.py", {"x": 1}, run_id="a/b", resume=True, max_concurrency=2)
        client.approve("a/b", "n 1", iteration=2, note="ok", decided_by="me", decision={"k": 1})
        client.signal("a/b", "pay", correlation_id="c")
        client.list_runs(limit=5, workflow="w")
        client.resume("a/b")
    start, approve, signal, runs, resume = requests
    assert json.loads(start.content) == {
        "workflowPath": "w.py",
        "input": {"x": 1},
        "runId": "a/b",
        "resume": True,
        "config": {"maxConcurrency": 2},
    }
    assert approve.url.raw_path == b"/v1/runs/a%2Fb/nodes/n%201/approve"
    assert json.loads(approve.content) == {
        "iteration": 2,
        "note": "ok",
        "decidedBy": "me",
        "decision": {"k": 1},
    }
    assert json.loads(signal.content) == {"data": {}, "correlationId": "c"}
    assert dict(runs.url.params) == {"limit": "5", "workflow": "w"}
    assert json.loads(resume.content) == {}


# -- the async client through ASGITransport ---------------------------------------------------


@pytest.fixture
async def asgi_client(root: Path, tmp_path: Path) -> AsyncIterator[AsyncSmithersClient]:
    app = create_app(db=f"sqlite:///{tmp_path / 'asgi.db'}", root_dir=root)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with AsyncSmithersClient("http://127.0.0.1", transport=transport) as c:
            yield c


async def test_async_client_covers_every_method(asgi_client: AsyncSmithersClient) -> None:
    c = asgi_client
    assert await c.health() == {"ok": True}
    hello = await c.start_run("hello.py", {"name": "Bo"}, run_id="async-hello")
    assert (await await_for(c, hello, *TERMINAL))["status"] == "finished"
    events = [e async for e in c.events(hello)]
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert events[-1]["type"] == "RunFinished"
    assert [r["runId"] for r in await c.list_runs(limit=1, status="finished")] == [hello]
    assert (await c.frames(hello, limit=1))[0]["runId"] == hello
    listed = {w["path"]: w for w in await c.workflows()}
    assert listed["chatty.py"] == {"path": "chatty.py", "name": "chatty", "inputSchema": None}

    gated = await c.start_run("approval.py")
    await await_for(c, gated, "waiting-approval")
    assert [a["runId"] for a in await c.approvals()] == [gated]
    with pytest.raises(SmithersAPIError) as exc:
        await c.approve(gated, "draft")
    assert exc.value.code == "NODE_NOT_WAITING"
    assert (await c.approve(gated, "review", decided_by="ann"))["approved"] is True
    assert (await await_for(c, gated, *TERMINAL))["status"] == "finished"
    with pytest.raises(SmithersAPIError) as exc:
        await c.deny(gated, "review")
    assert exc.value.code == "ALREADY_DECIDED"

    waiting = await c.start_run("signal.py")
    await await_for(c, waiting, "waiting-event")
    assert (await c.signal(waiting, "payment", {"amount": 7}))["signalName"] == "payment"
    assert (await await_for(c, waiting, *TERMINAL))["status"] == "finished"

    slow = await c.start_run("slow.py", {"seconds": 30})
    assert (await c.cancel(slow))["status"] == "cancelled"
    assert (await c.get_run(slow))["status"] == "cancelled"
    with pytest.raises(SmithersAPIError) as exc:
        await c.resume(hello)
    assert exc.value.code == "RUN_NOT_ACTIVE"

    failing = await c.start_run("failing.py")
    await await_for(c, failing, *TERMINAL)
    assert await c.resume(failing, "failing.py") == {"runId": failing}

    with pytest.raises(SmithersAPIError) as exc:
        await c.get_run("async-none")
    assert (exc.value.status, exc.value.code) == (404, "NOT_FOUND")
    with pytest.raises(SmithersAPIError) as exc:
        await c.start_run("hello.py", run_id="async-hello")
    assert exc.value.code == "RUN_ALREADY_EXISTS"


async def test_async_host_guard_and_unreachable(root: Path, tmp_path: Path) -> None:
    app = create_app(db=f"sqlite:///{tmp_path / 'g.db'}", root_dir=root)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with AsyncSmithersClient("http://evil.example", transport=transport) as c:
            with pytest.raises(SmithersAPIError) as exc:
                await c.list_runs()
            assert (exc.value.status, exc.value.code) == (403, "FORBIDDEN")
    async with AsyncSmithersClient(f"http://127.0.0.1:{free_port()}", timeout=2) as c:
        with pytest.raises(SmithersConnectionError):
            await c.health()
