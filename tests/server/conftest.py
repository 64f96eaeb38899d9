"""A real `smithers server` in a subprocess, a root directory of workflows, SSE parsing.

Each test module starts the few servers it needs once (`spawn`, module scope) on a free
port, with its SQLite file and its root in a temporary directory; the root holds copies of
`examples/*.py` and `tests/server/workflows/srv_*.py`, so tests may edit them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BACKENDS
from tests.helpers import EXAMPLES

from .openapi_check import ResponseCheck

WORKFLOWS = Path(__file__).resolve().parent / "workflows"
TOKEN_ENV = "SMITHERS_SRV_TEST_TOKEN"
TERMINAL = ("finished", "failed", "cancelled")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_root(path: Path) -> Path:
    """A directory holding copies of the examples and of the server test workflows."""
    path.mkdir(parents=True, exist_ok=True)
    for src in [*EXAMPLES.glob("*.py"), *WORKFLOWS.glob("srv_*.py")]:
        shutil.copy(src, path / src.name)
    return path


@dataclass
class ServerProcess:
    """`python -m smithers_cli server ...` listening on 127.0.0.1:port."""

    proc: subprocess.Popen[bytes]
    port: int
    root: Path
    db_path: Path | None
    token: str | None
    log_path: Path
    clients: list[httpx.Client] = field(default_factory=list)
    db_url: str | None = None
    openapi: ResponseCheck | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, *, auth: bool = True, **options: Any) -> httpx.Client:
        """A client of this server; with `auth`, it sends the token (when there is one)."""
        headers = dict(options.pop("headers", {}))
        if auth and self.token:
            headers.setdefault("authorization", f"Bearer {self.token}")
        hooks = dict(options.pop("event_hooks", {}))
        hooks["response"] = [*hooks.get("response", []), self.check_response]
        made = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=options.pop("timeout", 15.0),
            event_hooks=hooks,
            **options,
        )
        self.clients.append(made)
        return made

    def check_response(self, response: httpx.Response) -> None:
        """Every JSON answer matches `/openapi.json` (fetched once per server)."""
        if self.openapi is None:
            headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
            res = httpx.get(f"{self.url}/openapi.json", headers=headers, timeout=15)
            assert res.status_code == 200, res.text
            self.openapi = ResponseCheck(res.json())
        self.openapi.check(response)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def db(self) -> sqlite3.Connection:
        """A direct connection to the server's SQLite file (close it when done)."""
        assert self.db_path is not None
        return sqlite3.connect(self.db_path, timeout=15)

    def stop(self) -> None:
        for made in self.clients:
            made.close()
        self.clients.clear()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def spawn_server(
    workdir: Path,
    *,
    db: bool | Path | str = True,
    token: str | None = None,
    root: Path | None = None,
    args: tuple[str, ...] = (),
    prefix: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> ServerProcess:
    """Start a server (retrying if the free port got taken) and wait until /health answers.

    `db`: True for a new SQLite file in `workdir`, a path to reuse one, a database URL
    (PostgreSQL), False for none. `prefix` wraps the command (e.g. `unshare ...`); `env`
    adds to the environment.
    """
    root = root if root is not None else make_root(workdir / "root")
    db_path = db if isinstance(db, Path) else workdir / "server.db" if db is True else None
    db_url = db if isinstance(db, str) else f"sqlite:///{db_path}" if db_path else None
    environ = {k: v for k, v in os.environ.items() if k not in ("SMITHERS_API_KEY", TOKEN_ENV)}
    environ.update(env or {})
    if token is not None:
        environ[TOKEN_ENV] = token
    last_log = ""
    for attempt in range(3):
        port = free_port()
        cmd = [*prefix, sys.executable, "-m", "smithers_cli", "server", "--port", str(port)]
        cmd += ["--host", "127.0.0.1", "--root", str(root), "--token-env", TOKEN_ENV]
        if db_url is not None:
            cmd += ["--db", db_url]
        cmd += list(args)
        log_path = workdir / f"server-{port}-{attempt}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(cmd, cwd=workdir, env=environ, stdout=log, stderr=log)
        server = ServerProcess(proc, port, root, db_path, token, log_path, db_url=db_url)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and server.alive():
            try:
                if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        last_log = server.log()
        server.stop()
    raise RuntimeError(f"smithers server did not start:\n{last_log}")


@pytest.fixture(scope="module")
def spawn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers for this module; all are stopped when the module ends."""
    started: list[ServerProcess] = []

    def start(**options: Any) -> ServerProcess:
        server = spawn_server(tmp_path_factory.mktemp("srv"), **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# A prefix for `spawn_server`: the server runs in a PID namespace of its own, as in
# another container (its PID means nothing to the other servers).
PID_NAMESPACE = ("unshare", "--pid", "--fork", "--mount-proc", "--kill-child")


def server_pid(server: ServerProcess) -> int:
    """The PID of the server itself (under `unshare`, the child it forked)."""
    proc = Path(f"/proc/{server.proc.pid}")
    with contextlib.suppress(OSError):
        if (proc / "comm").read_text().strip() == "unshare":
            found = (proc / "task" / str(server.proc.pid) / "children").read_text().split()
            return int(found[0]) if found else server.proc.pid
    return server.proc.pid


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """`servers(db, root, **spawn_server options)` starts a server for this test; all are
    stopped after it (a stopped one is continued first)."""
    started: list[ServerProcess] = []

    def start(db: str, root: Path, **options: Any) -> ServerProcess:
        workdir = tmp_path / f"server-{len(started)}"
        workdir.mkdir()
        started.append(spawn_server(workdir, db=db, root=root, **options))
        return started[-1]

    yield start
    for server in started:
        # `unshare --fork` holds SIGTERM while its child runs: stop the server it forked.
        with contextlib.suppress(ProcessLookupError):
            os.kill(server_pid(server), signal.SIGCONT)
            if server_pid(server) != server.proc.pid:
                os.kill(server_pid(server), signal.SIGTERM)
        server.stop()


def until(check: Callable[[], object], timeout: float = 20.0) -> None:
    """Wait until `check()` is truthy (a state another process reaches)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture(scope="module", params=BACKENDS)
def server_db(request: pytest.FixtureRequest) -> bool | str:
    """For modules whose server runs on each backend: `spawn(db=server_db)` gets a new
    SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        return True
    url: str = request.getfixturevalue("pg_schema_url")
    return url


# -- small helpers shared by the modules ----------------------------------------------------


def wait_status(
    client: httpx.Client, run_id: str, wanted: str | tuple[str, ...], timeout: float = 15.0
) -> dict[str, Any]:
    """Poll `GET /v1/runs/{runId}` until its status is one of `wanted`."""
    wanted = (wanted,) if isinstance(wanted, str) else wanted
    deadline = time.monotonic() + timeout
    view: dict[str, Any] = {}
    while time.monotonic() < deadline:
        res = client.get(f"/v1/runs/{run_id}")
        assert res.status_code == 200, res.text
        view = res.json()
        if view["status"] in wanted:
            return view
        time.sleep(0.03)
    raise AssertionError(f"run {run_id} never reached {wanted}: last {view}")


def start_run(client: httpx.Client, workflow: str, **body: Any) -> str:
    res = client.post("/v1/runs", json={"workflowPath": workflow, **body})
    assert res.status_code == 200, res.text
    run_id: str = res.json()["runId"]
    return run_id


def five_xx(client: httpx.Client) -> float:
    """How many 5xx answers the server's metrics have counted."""
    text = client.get("/metrics").text
    found = re.findall(
        r'^smithers_http_requests_total\{[^}]*status_class="5xx"[^}]*\} (\S+)$', text, re.M
    )
    return sum(float(v) for v in found)


@contextmanager
def stays_healthy(srv: ServerProcess, *, check_errors: bool = True) -> Iterator[None]:
    """The server is alive and healthy after the block; with `check_errors`, it answered no
    5xx and logged no traceback during it."""
    offset = len(srv.log())
    with srv.client() as c:
        before = five_xx(c)
    yield
    assert srv.alive(), srv.log()[offset:]
    with srv.client() as c:
        assert c.get("/health").json() == {"ok": True}
        if check_errors:
            assert five_xx(c) == before, "a 5xx was answered"
            new_log = srv.log()[offset:]
            assert "Traceback" not in new_log and "unhandled error" not in new_log, new_log


def start_runs(
    client: httpx.Client, wanted: dict[str, tuple[str, str | tuple[str, ...]]]
) -> dict[str, str]:
    """Start `{name: (workflow, status to wait for)}` all at once, then wait for each;
    returns `{name: run id}`."""
    found = {name: start_run(client, workflow) for name, (workflow, _) in wanted.items()}
    for name, (_, status) in wanted.items():
        wait_status(client, found[name], status)
    return found


def assert_error(res: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is the error envelope with this status and code; returns `error`."""
    assert res.status_code == status, (res.status_code, res.text)
    assert res.headers["content-type"].startswith("application/json"), res.headers
    body = res.json()
    assert set(body) == {"error"}, body
    assert res.headers["cache-control"] == "no-store"
    assert res.headers["x-content-type-options"] == "nosniff"
    err: dict[str, Any] = body["error"]
    assert err["code"] == code, err
    assert isinstance(err["message"], str) and err["message"]
    assert set(err) <= {"code", "message", "details"}
    return err


@dataclass
class SSEStream:
    """What was read from one SSE response: the raw blocks and the events among them."""

    blocks: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # time.monotonic() of each block
    events: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False
    closed_at: float | None = None

    @property
    def ids(self) -> list[int]:
        return [int(e["id"]) for e in self.events]

    @property
    def types(self) -> list[str]:
        return [json.loads(e["data"])["type"] for e in self.events]


def parse_block(block: str) -> dict[str, Any] | None:
    """One SSE block (text between blank lines) as {id, event, data}; None for comments."""
    fields: dict[str, Any] = {}
    for line in block.split("\n"):
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields[name] = value[1:] if value.startswith(" ") else value
    return fields if "data" in fields else None


def read_sse(
    res: httpx.Response,
    stream: SSEStream,
    *,
    stop: Callable[[SSEStream], bool] | None = None,
) -> SSEStream:
    """Read blocks into `stream` until the server closes it or `stop(stream)` is true."""
    pending = ""
    for chunk in res.iter_text():
        pending += chunk
        while "\n\n" in pending:
            block, pending = pending.split("\n\n", 1)
            stream.blocks.append(block)
            stream.times.append(time.monotonic())
            parsed = parse_block(block)
            if parsed is not None:
                stream.events.append(parsed)
            if stop is not None and stop(stream):
                return stream
    assert pending == "", f"stream ended inside a block: {pending!r}"
    stream.closed = True
    stream.closed_at = time.monotonic()
    return stream
