"""`smithers runs ...` against a real `smithers server` (`--url`) and its database (`--db`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import smithers
from smithers.queries import run_outputs
from tests.cli.helpers import clean_env, free_port, ok, one_line_error, runs
from tests.helpers import EXAMPLES, ROOT

TOKEN = "s3cret"


def runs_all(*calls: tuple[str, ...]) -> list[subprocess.CompletedProcess[str]]:
    """Independent `smithers runs` commands, run at once (each is a fresh interpreter)."""
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: runs(*call), calls))


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    db_path: Path
    log: Path
    token: str | None

    @property
    def db(self) -> str:
        return f"sqlite:///{self.db_path}"

    def http(self) -> httpx.Client:
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=15)

    def start(self, workflow: str, **input: Any) -> str:
        with self.http() as http:
            res = http.post("/v1/runs", json={"workflowPath": workflow, "input": input})
        assert res.status_code == 200, res.text
        run_id: str = res.json()["runId"]
        return run_id

    def wait(self, run_id: str, *statuses: str, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        view: dict[str, Any] = {}
        with self.http() as http:
            while time.monotonic() < deadline:
                res = http.get(f"/v1/runs/{run_id}")
                assert res.status_code == 200, res.text
                view = res.json()
                if view["status"] in statuses:
                    return view
                time.sleep(0.03)
        raise AssertionError(f"run {run_id} never reached {statuses}: {view}")

    def outputs(self, run_id: str) -> dict[str, Any]:
        store = smithers.open_store(self.db)
        try:
            return run_outputs(store, run_id)
        finally:
            store.close()


# A workflow that fails until its gate file exists, then waits for `review`: a failed run
# that a resume brings back to life.
GATE_WORKFLOW = """
from pathlib import Path

from pydantic import BaseModel

from smithers import Approval, Task, Workflow, create_smithers


class Flag(BaseModel):
    ok: bool


smithers, outputs = create_smithers(flag=Flag)


@smithers
def workflow(ctx):
    gate = Path(ctx.input["gate"])

    def check() -> dict[str, bool]:
        if not gate.exists():
            raise RuntimeError("the gate is closed")
        return {"ok": True}

    return Workflow(
        "gate",
        [
            Task("check", output=outputs.flag, run=check),
            Approval("review", request={"title": "Go?"}),
        ],
    )
"""


def spawn(workdir: Path, token: str | None) -> Iterator[Server]:
    root = workdir / "root"
    root.mkdir(parents=True)
    for src in EXAMPLES.glob("*.py"):
        shutil.copy(src, root / src.name)
    (root / "gate.py").write_text(GATE_WORKFLOW)
    db_path = workdir / "server.db"
    env = clean_env(**({"SMITHERS_API_KEY": token} if token else {}))
    for attempt in range(3):
        port = free_port()
        log = workdir / f"server-{attempt}.log"
        cmd = [sys.executable, "-m", "smithers_cli", "server", "--port", str(port)]
        cmd += ["--host", "127.0.0.1", "--db", f"sqlite:///{db_path}", "--root", str(root)]
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=out, stderr=out)
        server = Server(proc, f"http://127.0.0.1:{port}", db_path, log, token)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        if proc.poll() is None and time.monotonic() < deadline:
            try:
                yield server
            finally:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
    raise RuntimeError(f"smithers server did not start:\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from spawn(tmp_path_factory.mktemp("ops"), None)


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from spawn(tmp_path_factory.mktemp("ops-token"), TOKEN)


def parked(server: Server) -> str:
    """A new run of approval.py that waits for `review`."""
    run_id = server.start("approval.py", msg="hi")
    server.wait(run_id, "waiting-approval")
    return run_id


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


HEADER = ["RUN", "ID", "WORKFLOW", "STATUS", "STATE", "STARTED", "FINISHED"]


def _watch(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "smithers_cli", "runs", "watch", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )


# -- through the server (--url) ------------------------------------------------------------


def test_list_and_show(server: Server) -> None:
    run_id = parked(server)
    url = ("--url", server.url)
    table, listed, shown, view = runs_all(
        ("list", *url),
        ("list", *url, "--json"),
        ("show", run_id, *url),
        ("show", run_id, *url, "--json"),
    )
    lines = ok(table).splitlines()
    assert lines[0].split() == HEADER
    row = next(line for line in lines if line.startswith(run_id))
    assert row.split()[1:4] == ["approval", "waiting-approval", "waiting-approval"]

    rows = json.loads(ok(listed))
    assert isinstance(rows, list)
    assert run_id in [r["runId"] for r in rows]

    lines = ok(shown).splitlines()
    assert lines[0] == f"run       {run_id}"
    assert lines[1] == "workflow  approval"
    assert lines[2] == "status    waiting-approval (waiting-approval)"
    assert "nodes     finished 1, waiting-approval 1" in lines
    assert any(line.startswith("waits on ") and '"review"' in line for line in lines), lines

    data = json.loads(ok(view))
    assert data["runId"] == run_id and data["status"] == "waiting-approval"
    assert data["runState"]["blocked"]["nodeId"] == "review"


def test_approve_while_watching(server: Server) -> None:
    run_id = parked(server)
    url = ("--url", server.url)
    watch = _watch(run_id, *url)
    try:
        time.sleep(0.5)
        assert watch.poll() is None  # following the parked run
        decided = json.loads(ok(runs("approve", run_id, "review", *url, "--by", "alice")))
        assert decided == {"runId": run_id, "nodeId": "review", "iteration": 0, "approved": True}
        out, err = watch.communicate(timeout=20)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait(5)
    assert watch.returncode == 0, err
    lines = out.splitlines()
    assert lines[0] == "run started"
    assert lines.index("review: waiting for approval") < lines.index("review: approved by alice")
    assert lines[-1] == "run finished"
    assert "\x1b[" not in out
    server.wait(run_id, "finished")
    assert server.outputs(run_id)["ship"] == {"text": "HI", "approved_by": "alice"}

    as_json, again = runs_all(
        ("watch", run_id, *url, "--json"), ("approve", run_id, "review", *url)
    )
    events = json_lines(ok(as_json))
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "RunStarted" and events[-1]["type"] == "RunFinished"
    assert {"ApprovalRequested", "ApprovalGranted"} <= {e["type"] for e in events}
    assert "already approved" in one_line_error(again, 1)


def test_deny_fails_the_run(server: Server) -> None:
    run_id = parked(server)
    url = ("--url", server.url)
    decided = json.loads(ok(runs("deny", run_id, "review", *url, "--by", "bob", "--note", "no")))
    assert decided["approved"] is False
    view = server.wait(run_id, "failed")
    assert "denied" in view["error"]["message"]

    watched, shown = runs_all(("watch", run_id, *url), ("show", run_id, *url))
    assert watched.returncode == 1, watched.stderr
    lines = watched.stdout.splitlines()
    assert "review: denied by bob" in lines
    assert lines[-1] == "run failed: approval 'review' was denied"
    assert "error     approval 'review' was denied" in ok(shown)


@pytest.mark.parametrize("where", ["db", "url"])
def test_show_a_failed_run_prints_the_traceback_of_the_task(server: Server, where: str) -> None:
    run_id = server.start("failing.py")
    server.wait(run_id, "failed")
    at = ("--db", server.db) if where == "db" else ("--url", server.url)
    lines = ok(runs("show", run_id, *at)).splitlines()
    source = (EXAMPLES / "failing.py").read_text().splitlines()
    raised = next(i for i, line in enumerate(source, 1) if "raise ValueError" in line)
    error = lines.index("error     ValueError: this task always fails")
    assert lines[error:] == [
        "error     ValueError: this task always fails",
        "node      explode (iteration 0)",
        "Traceback (most recent call last):",
        f'  File "failing.py", line {raised}, in explode',
        '    raise ValueError("this task always fails")',
        "ValueError: this task always fails",
    ]
    shown = json.loads(ok(runs("show", run_id, *at, "--json")))
    assert shown["error"]["traceback"].endswith("ValueError: this task always fails\n")


def test_signal(server: Server) -> None:
    run_id = server.start("signal.py")
    server.wait(run_id, "waiting-event")
    data = '{"amount": 5}'
    sent = json.loads(ok(runs("signal", run_id, "payment", "--data", data, "--url", server.url)))
    assert sent["runId"] == run_id and sent["signalName"] == "payment"
    server.wait(run_id, "finished")
    outputs = server.outputs(run_id)
    assert outputs["payment"] == {"amount": 5}
    assert outputs["receipt"] == {"text": "paid 5"}


def test_cancel(server: Server) -> None:
    run_id = server.start("slow.py")
    server.wait(run_id, "running")
    url = ("--url", server.url)
    assert json.loads(ok(runs("cancel", run_id, *url))) == {"runId": run_id, "status": "cancelled"}
    server.wait(run_id, "cancelled")
    shown, again, watched, resumed = runs_all(
        ("show", run_id, *url, "--json"),
        ("cancel", run_id, *url),
        ("watch", run_id, *url),
        ("resume", run_id, *url),
    )
    assert json.loads(ok(shown))["status"] == "cancelled"
    assert "already ended" in one_line_error(again, 1)
    assert watched.returncode == 1
    assert watched.stdout.splitlines()[-2:] == ["wait: cancelled", "run cancelled"]
    assert "cancelled" in one_line_error(resumed, 1)


@pytest.mark.parametrize(
    "where",
    [
        "db",
        "url",
    ],
)
def test_resume_a_failed_run_and_watch_it(server: Server, tmp_path: Path, where: str) -> None:
    gate = tmp_path / "gate"
    run_id = server.start("gate.py", gate=str(gate))
    view = server.wait(run_id, "failed")
    assert "the gate is closed" in view["error"]["message"]
    gate.touch()
    resumed = json.loads(ok(runs("resume", run_id, "--url", server.url)))
    assert resumed["runId"] == run_id
    server.wait(run_id, "waiting-approval")

    watch = _watch(run_id, *(("--db", server.db) if where == "db" else ("--url", server.url)))
    try:
        time.sleep(1.0)
        assert watch.poll() is None, watch.communicate()  # the run is live again
        ok(runs("approve", run_id, "review", "--url", server.url, "--by", "erin"))
        out, err = watch.communicate(timeout=20)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait(5)
    assert watch.returncode == 0, (out, err)
    lines = out.splitlines()
    assert "run failed: RuntimeError: the gate is closed" in lines
    after = lines[lines.index("run failed: RuntimeError: the gate is closed") :]
    assert "run resumed" in after and "check: finished" in after
    assert "review: approved by erin" in after
    assert lines[-1] == "run finished"


def test_resume_after_a_denial_asks_again(server: Server) -> None:
    run_id = parked(server)
    ok(runs("deny", run_id, "review", "--url", server.url))
    server.wait(run_id, "failed")
    assert json.loads(ok(runs("resume", run_id, "--url", server.url))) == {"runId": run_id}
    server.wait(run_id, "waiting-approval")
    ok(runs("approve", run_id, "review", "--url", server.url, "--by", "carol"))
    server.wait(run_id, "finished")
    assert server.outputs(run_id)["ship"] == {"text": "HI", "approved_by": "carol"}


# -- on the database (--db), the same file the server uses -----------------------------------


def test_db_list_show_approve_watch(server: Server) -> None:
    run_id = parked(server)
    db = ("--db", server.db)
    table, listed, shown, view = runs_all(
        ("list", *db),
        ("list", "--db", str(server.db_path), "--json"),  # a plain path works too
        ("show", run_id, *db),
        ("show", run_id, *db, "--json"),
    )
    lines = ok(table).splitlines()
    assert lines[0].split() == HEADER
    assert any(line.startswith(run_id) for line in lines)
    assert run_id in [r["runId"] for r in json.loads(ok(listed))]
    assert ok(shown).splitlines()[2] == "status    waiting-approval (waiting-approval)"
    assert json.loads(ok(view))["status"] == "waiting-approval"

    decided = json.loads(ok(runs("approve", run_id, "review", *db, "--by", "dana")))
    assert decided["approved"] is True
    server.wait(run_id, "finished")  # the server drives the run on
    assert server.outputs(run_id)["ship"]["approved_by"] == "dana"

    watched, as_json = runs_all(("watch", run_id, *db), ("watch", run_id, *db, "--json"))
    lines = ok(watched).splitlines()
    assert "review: approved by dana" in lines and lines[-1] == "run finished"
    events = json_lines(ok(as_json))
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert events[-1]["type"] == "RunFinished"


def test_db_deny_signal_cancel_resume(server: Server) -> None:
    db = ("--db", server.db)
    denied = parked(server)
    signalled = server.start("signal.py")
    slow = server.start("slow.py")
    server.wait(signalled, "waiting-event")
    server.wait(slow, "running")
    deny, signal, cancel = runs_all(
        ("deny", denied, "review", *db),
        ("signal", signalled, "payment", "--data", '{"amount": 5}', *db),
        ("cancel", slow, *db),
    )
    assert json.loads(ok(deny))["approved"] is False
    assert json.loads(ok(signal))["signalName"] == "payment"
    assert json.loads(ok(cancel)) == {"runId": slow, "status": "cancelled"}
    server.wait(denied, "failed")
    server.wait(signalled, "finished")
    server.wait(slow, "cancelled")
    assert server.outputs(signalled)["receipt"] == {"text": "paid 5"}

    again, resume = runs_all(("cancel", slow, *db), ("resume", denied, *db))
    assert "already ended" in one_line_error(again, 1)
    hint = one_line_error(resume, 2)
    assert "--url" in hint and f"--run-id {denied} --resume" in hint


# -- tokens ------------------------------------------------------------------------------------


def test_token(token_server: Server) -> None:
    url = ("--url", token_server.url)
    run_id = token_server.start("approval.py", msg="hi")
    token_server.wait(run_id, "waiting-approval")
    with ThreadPoolExecutor(6) as pool:
        bare, wrong, show_bare, flag_wins, with_flag, with_env = pool.map(
            lambda call: runs(*call[0], **call[1]),
            [
                (("list", *url), {}),
                (("list", *url, "--token", "wrong"), {}),
                (("show", run_id, *url), {}),
                (("list", *url, "--token", "wrong"), {"SMITHERS_API_KEY": TOKEN}),
                (("list", *url, "--token", TOKEN), {}),
                (("show", run_id, *url), {"SMITHERS_API_KEY": TOKEN}),
            ],
        )
    for refused in (bare, wrong, show_bare, flag_wins):  # --token wins over the environment
        assert "token" in one_line_error(refused, 1)
    assert ok(with_flag).split()[:7] == HEADER and run_id in with_flag.stdout
    assert ok(with_env).splitlines()[0] == f"run       {run_id}"

    ok(runs("approve", run_id, "review", *url, SMITHERS_API_KEY=TOKEN))
    token_server.wait(run_id, "finished")
    assert ok(runs("watch", run_id, *url, "--token", TOKEN)).splitlines()[-1] == "run finished"


# -- one-line errors ---------------------------------------------------------------------------


def test_one_line_errors(server: Server) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    url, db = ("--url", server.url), ("--db", server.db)
    cases: list[tuple[tuple[str, ...], int, str]] = [
        (("show", "nope", *url), 1, "not found"),
        (("show", "nope", *db), 1, "not found"),
        (("watch", "nope", *url), 1, "not found"),
        (("approve", "nope", "review", *url), 1, "not found"),
        (("list", "--url", closed), 1, "cannot reach"),
        (("watch", "x", "--url", closed), 1, "cannot reach"),
        (("signal", "x", "payment", "--data", "{bad", *url), 2, "--data is not valid JSON"),
        (("signal", "x", "payment", "--data", "{bad", *db), 2, "--data is not valid JSON"),
        (("resume", "x", *db), 2, "--url"),
    ]
    results = runs_all(*(args for args, _, _ in cases))
    for (args, code, says), done in zip(cases, results, strict=True):
        assert done.returncode == code, (args, done.returncode, done.stderr)
        assert "Traceback" not in done.stderr, (args, done.stderr)
        assert len(done.stderr.splitlines()) == 1, (args, done.stderr)
        assert done.stderr.startswith("smithers: ") and says in done.stderr, (args, done.stderr)


# -- bugs --------------------------------------------------------------------------------------


def test_missing_db_or_url_is_one_line() -> None:
    one_line_error(runs("list"), 2)


@pytest.mark.parametrize("where", ["db", "url"])
def test_list_with_no_runs_prints_the_header(server: Server, tmp_path: Path, where: str) -> None:
    if where == "db":
        done = runs("list", "--db", f"sqlite:///{tmp_path / 'empty.db'}")
    else:  # a filter that matches nothing
        done = runs("list", "--url", server.url, "--status", "waiting-timer")
    assert ok(done).split() == HEADER


# -- start, outputs, filters ------------------------------------------------------------------


def test_start_through_the_server_and_read_the_outputs(server: Server, tmp_path: Path) -> None:
    url = ("--url", server.url)
    (tmp_path / "input.json").write_text('{"name": "Cy"}')
    plain, as_json, from_file = runs_all(
        ("start", "hello.py", "--input", '{"name": "Ada"}', *url),
        ("start", "hello.py", "--input", '{"name": "Bob"}', *url, "--json"),
        ("start", "hello.py", "--input-file", str(tmp_path / "input.json"), *url),
    )
    run_id = ok(plain).strip()
    assert run_id.startswith("smi_") and "\n" not in run_id  # the id alone: RUN=$(...)
    other = json.loads(ok(as_json))["runId"]
    third = ok(from_file).strip()
    for started in (run_id, other, third):
        server.wait(started, "finished")
    assert server.outputs(third)["greet"] == {"message": "Hello, Cy!"}

    table, listed = runs_all(
        ("show", run_id, *url, "--outputs"), ("show", other, *url, "--outputs", "--json")
    )
    lines = ok(table).splitlines()
    assert lines[0] == f"run       {run_id}"
    assert lines[-1] == 'outputs   greet  {"message": "Hello, Ada!"}'
    view = json.loads(ok(listed))
    assert view["status"] == "finished"
    assert [(o["nodeId"], o["output"]) for o in view["outputs"]] == [
        ("greet", {"message": "Hello, Bob!"})
    ]
    assert "outputs" not in json.loads(ok(runs("show", other, *url, "--json")))


def test_start_refusals_are_one_line(server: Server) -> None:
    url = ("--url", server.url)
    missing, bad_json, no_file = runs_all(
        ("start", "nope.py", *url),
        ("start", "hello.py", "--input", "{bad", *url),
        ("start", "hello.py", "--input-file", "/nonexistent/input.json", *url),
    )
    assert "cannot load workflow nope.py" in one_line_error(missing, 2)
    assert "--input is not valid JSON" in one_line_error(bad_json, 2)
    assert "cannot read --input-file" in one_line_error(no_file, 2)


def test_list_by_workflow_and_status(server: Server) -> None:
    waiting = parked(server)
    signalled = server.start("signal.py")
    server.wait(signalled, "waiting-event")
    url = ("--url", server.url)
    by_name, by_path, by_status, on_db = runs_all(
        ("list", *url, "--workflow", "signal", "--json"),
        ("list", *url, "--workflow", "approval.py", "--json"),
        ("list", *url, "--status", "waiting-event", "--json"),
        ("list", "--db", server.db, "--workflow", "approval", "--json"),
    )
    names = {r["workflowName"] for r in json.loads(ok(by_name))}
    assert names == {"signal"}
    assert signalled in [r["runId"] for r in json.loads(ok(by_name))]
    assert {r["workflowName"] for r in json.loads(ok(by_path))} == {"approval"}
    assert waiting in [r["runId"] for r in json.loads(ok(by_path))]
    assert {r["status"] for r in json.loads(ok(by_status))} == {"waiting-event"}
    assert {r["workflowName"] for r in json.loads(ok(on_db))} == {"approval"}


def test_an_unknown_status_is_refused_with_the_valid_ones(server: Server) -> None:
    from smithers.states import RunStatus

    refused = one_line_error(runs("list", "--url", server.url, "--status", "done"), 2)
    assert "unknown status 'done'" in refused
    assert ", ".join(s.value for s in RunStatus) in refused


# -- defaults from the environment --------------------------------------------------------------


def test_the_environment_says_where_the_runs_are(server: Server, tmp_path: Path) -> None:
    run_id = server.start("hello.py")
    server.wait(run_id, "finished")
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    closed = f"http://127.0.0.1:{free_port()}"
    with ThreadPoolExecutor(5) as pool:
        by_url, by_db, both, flag_wins, flag_db = pool.map(
            lambda call: runs(*call[0], **call[1]),
            [
                (("show", run_id), {"SMITHERS_URL": server.url}),
                (("show", run_id), {"SMITHERS_DB": server.db}),
                (("show", run_id), {"SMITHERS_URL": server.url, "SMITHERS_DB": empty}),
                (("show", run_id, "--url", server.url), {"SMITHERS_URL": closed}),
                (("show", run_id, "--db", server.db), {"SMITHERS_URL": closed}),
            ],
        )
    for done in (by_url, by_db, both, flag_wins, flag_db):  # a server before a database
        assert ok(done).splitlines()[0] == f"run       {run_id}"
    refused = one_line_error(runs("list", SMITHERS_URL=closed), 1)
    assert "cannot reach" in refused
