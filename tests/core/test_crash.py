"""Crash safety: a process driving a run is SIGKILLed; a new process resumes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

from smithers import open_store
from smithers.store import nodes as nodes_q
from tests.helpers import ROOT, assert_contiguous, event_types

WORKFLOW = Path(__file__).parent / "workflows" / "five_steps.py"
SMITHERS = [sys.executable, "-m", "smithers_cli"]


def up(db_url: str, *extra: str, input: dict[str, object] | None = None) -> subprocess.Popen[str]:
    args = [*SMITHERS, "up", str(WORKFLOW), "--db", db_url, *extra]
    if input is not None:
        args += ["--input", json.dumps(input)]
    return subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_a_killed_run_resumes_without_repeating_finished_tasks(db_url: str, tmp_path: Path) -> None:
    log = tmp_path / "executions.log"
    store = open_store(db_url)
    first = up(db_url, "--run-id", "crash-1", input={"log": str(log), "pause": 2})
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with store.read() as conn:
                two = nodes_q.get_node(conn, "crash-1", "two", 0)
            if two is not None and two.state == "finished":
                break
            time.sleep(0.02)
        else:
            raise AssertionError("task two never finished")
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.wait(10)
    assert first.returncode == -signal.SIGKILL

    second = up(db_url, "--run-id", "crash-1", "--resume")
    out, _ = second.communicate(timeout=60)
    assert second.returncode == 0, out

    runs = Counter(log.read_text().split())
    assert runs["one"] == 1 and runs["two"] == 1
    assert runs["four"] == 1 and runs["five"] == 1
    assert 1 <= runs["three"] <= 2  # it may have started before the kill
    with store.read() as conn:
        rows = conn.execute(
            sa.text("SELECT node_id, COUNT(*) FROM step WHERE run_id = 'crash-1' GROUP BY node_id")
        ).all()
    assert dict(rows) == {n: 1 for n in ("one", "two", "three", "four", "five")}
    types = event_types(store, "crash-1")
    assert types[-1] == "RunFinished" and types.count("RunFinished") == 1
    assert types.count("RunStarted") == 2
    assert_contiguous(store, "crash-1")
    store.close()
