"""`smithers up` in its first form: foreground runs, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import EXAMPLES, ROOT


def smithers(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smithers_cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_up_prints_progress_and_the_outputs(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'up.db'}"
    done = smithers("up", str(EXAMPLES / "sequence.py"), "--db", db, "--input", '{"start": 2}')
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1:8] == [
        "run started",
        "one: started",
        "one: finished",
        "two: started",
        "two: finished",
        "three: started",
        "three: finished",
    ]
    outputs = json.loads(done.stdout[done.stdout.index("{") :])
    assert outputs["three"] == {"value": 4}
    assert "\x1b[" not in done.stdout


def test_up_exits_1_when_the_run_fails(tmp_path: Path) -> None:
    done = smithers("up", str(EXAMPLES / "failing.py"), "--db", str(tmp_path / "f.db"))
    assert done.returncode == 1
    assert "run failed: ValueError: this task always fails" in done.stdout


def test_version_is_one_line() -> None:
    from importlib.metadata import version

    done = smithers("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"smithers {version('smithers-asgi')}"


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    cases = [
        ("up", str(tmp_path / "missing.py")),
        ("up", str(EXAMPLES / "hello.py"), "--input", "{nope"),
        ("up", str(EXAMPLES / "hello.py"), "--resume"),
        ("up", str(EXAMPLES / "hello.py"), "--input-file", str(tmp_path / "none.json")),
    ]
    for args in cases:
        done = smithers(*args, "--db", str(tmp_path / "x.db"))
        assert done.returncode == 2, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr
        assert done.stderr.startswith("smithers: ")


def test_up_stays_attached_while_parked_and_finishes_when_approved(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "smithers_cli",
            "up",
            str(EXAMPLES / "approval.py"),
            "--db",
            db,
            "--run-id",
            "appr-1",
            "--input",
            '{"msg": "go"}',
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            decided = smithers("runs", "approve", "appr-1", "review", "--db", db, "--by", "eve")
            if decided.returncode == 0:
                break
            assert "not waiting" in decided.stderr or "not found" in decided.stderr
            time.sleep(0.2)
        assert json.loads(decided.stdout)["approved"] is True
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "smithers runs approve appr-1 review --db" in out
    assert "review: approved by eve" in out
    assert '"approved_by": "eve"' in out
    again = smithers("runs", "approve", "appr-1", "review", "--db", db)
    assert again.returncode != 0 and "already approved" in again.stderr


def test_no_arguments_print_the_help_and_exit_2() -> None:
    bare, runs = smithers(), smithers("runs")
    assert bare.returncode == 2 and runs.returncode == 2
    assert bare.stdout.startswith("usage: smithers ")
    assert all(command in bare.stdout for command in ("up", "server", "runs"))
    assert runs.stdout.startswith("usage: smithers runs ")
    assert all(action in runs.stdout for action in ("start", "list", "show", "approve"))
    assert bare.stderr == runs.stderr == ""


def test_the_log_level_from_the_environment_in_any_case_or_one_line_when_unknown(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "l.db")
    quiet = smithers(
        "up", str(EXAMPLES / "hello.py"), "--db", db, env={"SMITHERS_LOG_LEVEL": "info"}
    )
    assert quiet.returncode == 0, quiet.stderr
    assert "INFO smithers.runs" in quiet.stderr  # the runs' log lines, as asked
    wrong = smithers(
        "up", str(EXAMPLES / "hello.py"), "--db", db, env={"SMITHERS_LOG_LEVEL": "loud"}
    )
    assert wrong.returncode == 2
    assert wrong.stderr.strip().splitlines() == [
        "smithers: SMITHERS_LOG_LEVEL='loud' is not one of debug, info, warning, error, critical"
    ]
