"""`smithers up` driven end to end: `--serve`, signals and resuming, failures, plain output.

The terminal view under a pseudo-terminal is in `test_up_terminal.py`.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

import smithers
from smithers.queries import list_runs
from tests.cli.running import (
    APPROVAL,
    WORKFLOWS,
    Up,
    db_status,
    first_line,
    free_port,
    get_view,
    outputs_of,
    resume_command,
    smithers_cli,
    status_is,
    wait_for,
)
from tests.helpers import EXAMPLES

# -- --serve ----------------------------------------------------------------------------------


def test_serve_approve_over_http_then_keep_serving_until_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    db = f"sqlite:///{tmp_path / 'serve.db'}"
    up = Up(APPROVAL, "--serve", "--port", str(port), "--db", db, "--input", '{"msg": "hi"}')
    try:
        match = first_line(up)
        run_id, url = match[1], match[4]
        assert match[2] == "approval" and match[3] == db
        assert url == f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/health", timeout=5).json() == {"ok": True}

        view = wait_for(status_is(url, "waiting-approval"), "waiting-approval")
        assert view["runId"] == run_id and view["workflowName"] == "approval"
        assert view["runState"]["blocked"]["nodeId"] == "review"
        up.line(lambda text: text == f"  or:      curl -X POST {url}/approve/review", "hint")

        res = httpx.post(f"{url}/approve/review", json={"decidedBy": "tester"}, timeout=10)
        assert res.status_code == 200, res.text
        assert res.json() == {"runId": run_id, "nodeId": "review", "iteration": 0, "approved": True}

        wait_for(status_is(url, "finished"), "finished")
        up.line(lambda text: text.startswith("run finished; still serving"), "still serving")
        # The run is over but the app keeps serving it until Ctrl-C.
        time.sleep(0.3)
        assert up.proc.poll() is None, up.output
        view = get_view(url)
        assert view is not None and view["status"] == "finished"
        assert view["finishedAtMs"] is not None
        again = httpx.post(f"{url}/approve/review", json={}, timeout=10)
        assert again.status_code == 409, again.text

        up.proc.send_signal(signal.SIGINT)
        assert up.wait() == 0, up.output
    finally:
        up.kill()
    assert "review: approved by tester" in up.lines
    assert "run finished" in up.lines
    assert '"approved_by": "tester"' in up.stdout
    assert outputs_of(up.stdout)["ship"] == {"text": "HI", "approved_by": "tester"}
    assert "Traceback" not in up.stderr
    assert get_view(url) is None  # no longer serving
    assert db_status(db, run_id) == "finished"


@pytest.mark.parametrize(
    ("verb", "code", "status"), [("approve", 0, "finished"), ("deny", 1, "failed")]
)
def test_serve_exit_on_finish(tmp_path: Path, verb: str, code: int, status: str) -> None:
    port = free_port()
    db = f"sqlite:///{tmp_path / 'exit.db'}"
    args = ("--serve", "--port", str(port), "--exit-on-finish", "--run-id", f"eof-{verb}")
    up = Up(APPROVAL, *args, "--db", db, "--input", '{"msg": "hi"}')
    try:
        url = first_line(up)[4]
        wait_for(status_is(url, "waiting-approval"), "waiting-approval")
        res = httpx.post(f"{url}/{verb}/review", json={"decidedBy": "tester"}, timeout=10)
        assert res.status_code == 200, res.text
        assert up.wait() == code, up.output  # by itself, no Ctrl-C
    finally:
        up.kill()
    assert db_status(db, f"eof-{verb}") == status
    assert not any("still serving" in line for line in up.lines), up.output
    assert "Traceback" not in up.stderr
    if verb == "approve":
        assert outputs_of(up.stdout)["ship"] == {"text": "HI", "approved_by": "tester"}
    else:
        assert "review: denied by tester" in up.lines
        assert any(line.startswith("run failed: ") for line in up.lines), up.output


# -- Ctrl-C and SIGTERM ---------------------------------------------------------------------

INTERRUPTED = str(WORKFLOWS / "interrupted.py")
BLOCKING = "block | attempt 1"  # its task holds a worker thread until the process ends
WAITING = "  approve: smithers runs approve {run} review --db {db}"


@pytest.mark.parametrize(
    ("workflow", "sig", "serve", "stopped_at"),
    [
        (APPROVAL, signal.SIGINT, False, WAITING),
        (INTERRUPTED, signal.SIGTERM, False, BLOCKING),
        (INTERRUPTED, signal.SIGINT, True, BLOCKING),
        (APPROVAL, signal.SIGTERM, True, WAITING),
    ],
    ids=["ctrl-c-waiting", "sigterm-mid-task", "ctrl-c-mid-task-serve", "sigterm-waiting-serve"],
)
def test_a_signal_pauses_the_run_and_resume_runs_it_to_the_end(
    tmp_path: Path, workflow: str, sig: signal.Signals, serve: bool, stopped_at: str
) -> None:
    db = f"sqlite:///{tmp_path / 'paused.db'}"
    run_id = f"paused-{sig.name}"
    extra = ("--serve", "--port", str(free_port())) if serve else ()
    up = Up(workflow, "--db", db, "--run-id", run_id, *extra)
    try:
        url = first_line(up)[4]
        up.line(lambda text: text == stopped_at.format(run=run_id, db=db), "where it stops")
        up.proc.send_signal(sig)
        assert up.wait() == {signal.SIGINT: 130, signal.SIGTERM: 143}[sig], up.output
    finally:
        up.kill()
    assert db_status(db, run_id) == "paused"
    assert "Traceback" not in up.stderr, up.output
    assert up.lines[-2:] == [
        f"run paused ({'Ctrl-C' if sig == signal.SIGINT else 'SIGTERM'}); resume it with:",
        f"  smithers up {workflow} --run-id {run_id} --resume --db {db}",
    ]
    if url is not None:
        assert get_view(url) is None  # no longer serving

    again = Up(*resume_command(up.stdout))
    try:
        again.line(lambda text: text == WAITING.format(run=run_id, db=db), "the approve hint")
        decided = smithers_cli("runs", "approve", run_id, "review", "--db", db, "--by", "tester")
        assert decided.returncode == 0, decided.stderr
        assert again.wait() == 0, again.output
    finally:
        again.kill()
    assert db_status(db, run_id) == "finished"
    assert "run finished" in again.lines
    if workflow == INTERRUPTED:
        # The attempt cut short runs again; nothing the run finished runs twice.
        assert "block: started (attempt 2)" in again.lines, again.output
        assert outputs_of(again.stdout) == {"block": {"attempt": 2}}
    else:
        assert outputs_of(again.stdout)["ship"] == {"text": "HELLO", "approved_by": "tester"}


@pytest.mark.parametrize(
    ("sig", "serve"), [(signal.SIGINT, False), (signal.SIGTERM, True)], ids=["ctrl-c", "serve"]
)
def test_cancel_on_exit_cancels_the_run(tmp_path: Path, sig: signal.Signals, serve: bool) -> None:
    db = f"sqlite:///{tmp_path / 'slow.db'}"
    extra = ("--serve", "--port", str(free_port())) if serve else ()
    args = ("--db", db, "--run-id", "slow-1", "--cancel-on-exit", *extra)
    up = Up(str(EXAMPLES / "slow.py"), *args)
    try:
        url = first_line(up)[4]
        up.line(lambda text: text == "wait | sleeping 60.0 s", "the task to start")
        assert db_status(db, "slow-1") == "running"
        up.proc.send_signal(sig)
        assert up.wait() == {signal.SIGINT: 130, signal.SIGTERM: 143}[sig], up.output
    finally:
        up.kill()
    assert db_status(db, "slow-1") == "cancelled"
    assert up.lines[-2:] == ["wait: cancelled", "run cancelled"], up.output
    assert "resume" not in up.stdout
    assert "Traceback" not in up.stderr
    if url is not None:
        assert get_view(url) is None


def test_a_second_ctrl_c_while_stopping_is_no_traceback(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'twice.db'}"
    up = Up(INTERRUPTED, "--db", db, "--run-id", "twice")
    try:
        up.line(lambda text: text == BLOCKING, "the task to block")
        up.proc.send_signal(signal.SIGINT)
        up.proc.send_signal(signal.SIGINT)
        up.proc.send_signal(signal.SIGINT)
        assert up.wait() == 130, up.output
    finally:
        up.kill()
    assert up.stderr == "", up.output
    assert db_status(db, "twice") == "paused"
    assert up.lines[-1] == f"  smithers up {INTERRUPTED} --run-id twice --resume --db {db}"


# -- failures ----------------------------------------------------------------------------------


def test_a_failing_task_shows_its_traceback(tmp_path: Path) -> None:
    raising = WORKFLOWS / "raising.py"
    done = smithers_cli("up", str(raising), "--db", str(tmp_path / "raise.db"))
    assert done.returncode == 1, done.stderr
    assert 'raising.py", line' in done.stdout, done.stdout  # the user's file, not a copy
    assert "in read_the_settings" in done.stdout, done.stdout
    assert "KeyError: 'missing'" in done.stdout


# -- plain output ------------------------------------------------------------------------------


def test_piped_output_is_plain_lines(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'pipe.db'}"
    up = Up(APPROVAL, "--db", db, "--run-id", "pipe-1", "--input", '{"msg": "hi"}')
    try:
        first_line(up)
        approve = f"  approve: smithers runs approve pipe-1 review --db {db}"
        up.line(lambda text: text == approve, "the approve hint")
        decided = smithers_cli("runs", "approve", "pipe-1", "review", "--db", db, "--by", "tester")
        assert decided.returncode == 0, decided.stderr
        assert up.wait() == 0, up.output
    finally:
        up.kill()
    assert "\x1b[" not in up.stdout
    lines = up.lines
    assert lines[1:5] == [
        "run started",
        "draft: started",
        "draft: finished",
        "review: waiting for approval: Ship the draft?",
    ]
    assert lines[5] == approve
    assert lines[6] == f"  deny:    smithers runs deny pipe-1 review --db {db}"
    assert "review: approved by tester" in lines and "run finished" in lines
    assert outputs_of(up.stdout)["ship"] == {"text": "HI", "approved_by": "tester"}


def test_input_file(tmp_path: Path) -> None:
    given = tmp_path / "input.json"
    given.write_text('{"name": "file"}')
    db = str(tmp_path / "in.db")
    done = smithers_cli("up", str(EXAMPLES / "hello.py"), "--db", db, "--input-file", str(given))
    assert done.returncode == 0, done.stderr
    assert outputs_of(done.stdout) == {"greet": {"message": "Hello, file!"}}


# -- bugs --------------------------------------------------------------------------------------


def _up_on_a_taken_port(tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    db = f"sqlite:///{tmp_path / 'taken.db'}"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = smithers_cli("up", str(EXAMPLES / "hello.py"), "--db", db, "--serve", "--port", port)
    return done, db


def test_serve_on_a_taken_port_is_a_one_line_error(tmp_path: Path) -> None:
    done, _ = _up_on_a_taken_port(tmp_path)
    assert done.returncode in (1, 2), done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("smithers: ")


def test_serve_on_a_taken_port_leaves_no_running_run(tmp_path: Path) -> None:
    done, db = _up_on_a_taken_port(tmp_path)
    assert done.returncode != 0
    store = smithers.open_store(db)
    try:
        assert [r["status"] for r in list_runs(store) if r["status"] == "running"] == []
    finally:
        store.close()


def test_reusing_a_run_id_is_a_one_line_error(tmp_path: Path) -> None:
    db = str(tmp_path / "again.db")
    hello = str(EXAMPLES / "hello.py")
    first = smithers_cli("up", hello, "--db", db, "--run-id", "same")
    assert first.returncode == 0, first.stderr
    again = smithers_cli("up", hello, "--db", db, "--run-id", "same")
    assert again.returncode in (1, 2), again.stderr
    assert "Traceback" not in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1, again.stderr
    assert again.stderr.startswith("smithers: ")
