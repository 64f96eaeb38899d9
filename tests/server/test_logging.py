"""The log of a real `smithers server` (its stderr): a failing task's traceback and the
run's failure at the default level; runs starting and ending at `--log-level info`; a
line per request with `--access-log`."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

from tests.helpers import EXAMPLES, ROOT

from .conftest import ServerProcess, start_run, wait_status


def raise_line() -> int:
    text = (EXAMPLES / "failing.py").read_text().splitlines()
    return next(i for i, line in enumerate(text, 1) if "raise ValueError" in line)


def logged(srv: ServerProcess, needle: str, timeout: float = 10.0) -> str:
    """The server's log once it holds `needle` (a run's last line follows its commit)."""
    deadline = time.monotonic() + timeout
    while needle not in (log := srv.log()):
        assert time.monotonic() < deadline, f"{needle!r} never logged:\n{log}"
        time.sleep(0.05)
    return log


def test_the_default_level_logs_a_failing_task_with_its_traceback(
    spawn: Callable[..., ServerProcess],
) -> None:
    srv = spawn()
    with srv.client() as client:
        run_id = start_run(client, "failing.py")
        wait_status(client, run_id, "failed")
        wait_status(client, start_run(client, "hello.py", input={"name": "a"}), "finished")
    log = logged(srv, f"ERROR smithers.runs: run failed run={run_id}")
    task = (
        f"ERROR smithers.tasks: task failed run={run_id} workflow=failing node=explode "
        'iteration=0 attempt=1 code=TASK_FAILED error="ValueError: this task always fails"\n'
        "Traceback (most recent call last):\n"
        f'  File "failing.py", line {raise_line()}, in explode\n'
        '    raise ValueError("this task always fails")\n'
        "ValueError: this task always fails\n"
    )
    assert task in log, log
    run = log[log.index(f"ERROR smithers.runs: run failed run={run_id}") :].splitlines()[0]
    assert " workflow=failing status=failed duration_ms=" in run
    assert run.endswith(' node=explode code=TASK_FAILED error="ValueError: this task always fails"')
    assert "run started" not in log and "run finished" not in log  # INFO lines
    assert '"POST /v1/runs HTTP/1.1"' not in log  # no access log unless asked


def test_info_logs_runs_and_the_access_log_logs_requests(
    spawn: Callable[..., ServerProcess],
) -> None:
    srv = spawn(args=("--log-level", "info", "--access-log"))
    with srv.client() as client:
        failed = start_run(client, "failing.py")
        wait_status(client, failed, "failed")
        finished = start_run(client, "hello.py", input={"name": "a"})
        wait_status(client, finished, "finished")
        parked = start_run(client, "approval.py", input={"msg": "hi"})
        wait_status(client, parked, "waiting-approval")
    log = logged(srv, f"INFO smithers.runs: run waiting-approval run={parked}")
    log = logged(srv, f"INFO smithers.runs: run finished run={finished} workflow=hello")
    for run_id, workflow in ((failed, "failing"), (finished, "hello"), (parked, "approval")):
        assert f"INFO smithers.runs: run started run={run_id} workflow={workflow}\n" in log
    assert f"ERROR smithers.runs: run failed run={failed} workflow=failing" in log
    assert f'File "failing.py", line {raise_line()}, in explode' in log
    ended = log[log.index(f"run finished run={finished}") :].splitlines()[0]
    assert "status=finished duration_ms=" in ended
    assert '"POST /v1/runs HTTP/1.1" 200' in log
    assert f'"GET /v1/runs/{parked} HTTP/1.1" 200' in log


def test_an_unknown_log_level_is_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "smithers_cli", "server", "--log-level", "loud"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("smithers: ") and "--log-level" in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
