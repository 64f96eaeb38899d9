"""Two real server processes on one PostgreSQL database: a run whose owner is alive is
never taken over. Each test counts executions of a live task from a side-effect file
(`srv_gated.py` appends a line, then waits for a gate file)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from .conftest import (
    PID_NAMESPACE,
    TERMINAL,
    ServerProcess,
    make_root,
    start_run,
    until,
    wait_status,
)

STALE_AFTER_MS = 3000


def executions(folder: Path) -> list[str]:
    path = folder / "executions"
    return path.read_text().split() if path.exists() else []


def run_started_count(client: httpx.Client, run_id: str) -> int:
    stream = client.get(f"/v1/runs/{run_id}/events", timeout=15)
    return stream.text.count('"type":"RunStarted"')


def test_a_server_in_another_pid_namespace_leaves_live_runs_alone(
    servers: Callable[..., ServerProcess], pg_schema_url: str, tmp_path: Path
) -> None:
    """Same host name, its own PID namespace (two containers): the owner's PID is not
    visible there, which must not read as a dead owner."""
    root = make_root(tmp_path / "root")
    first = servers(pg_schema_url, root)
    client = first.client()
    run_id = start_run(client, "srv_gated.py", input={"dir": str(tmp_path)})
    until(lambda: executions(tmp_path) == [run_id])
    servers(pg_schema_url, root, prefix=PID_NAMESPACE)
    time.sleep(2.5)  # the second server scans for runs to adopt at start-up and every second
    (tmp_path / "gate").touch()
    assert wait_status(client, run_id, TERMINAL, timeout=30)["status"] == "finished"
    assert executions(tmp_path) == [run_id]
    assert run_started_count(client, run_id) == 1  # never resumed elsewhere


def test_a_slow_import_stops_no_heartbeat_and_holds_up_no_start(
    servers: Callable[..., ServerProcess], pg_schema_url: str, tmp_path: Path
) -> None:
    env = {"SMITHERS_STALE_AFTER_MS": str(STALE_AFTER_MS)}
    root = make_root(tmp_path / "root")
    first = servers(pg_schema_url, root, env=env)
    client = first.client()
    gated = start_run(client, "srv_gated.py", input={"dir": str(tmp_path)})
    until(lambda: executions(tmp_path) == [gated])
    parked = start_run(client, "approval.py")
    wait_status(client, parked, "waiting-approval")

    answers: list[httpx.Response] = []
    slow = threading.Thread(
        target=lambda: answers.append(
            first.client(timeout=90).post("/v1/runs", json={"workflowPath": "srv_slow_import.py"})
        )
    )
    other = tmp_path / "other"
    other.mkdir()
    slow.start()
    try:
        until(lambda: (root / "slow-import.started").exists())
        # A start of a workflow already loaded is answered while the import runs.
        body = {"workflowPath": "srv_gated.py", "input": {"dir": str(other)}}
        second = client.post("/v1/runs", json=body, timeout=10)
        assert second.status_code == 200, second.text
        # A decision makes a run adoptable while the import runs (its workflow is loaded
        # already): the adoption must not wait on the loader, nor stop the heartbeats.
        decided = client.post(f"/v1/runs/{parked}/nodes/review/approve", json={})
        assert decided.status_code == 200, decided.text
        time.sleep(STALE_AFTER_MS / 1000 + 1.5)  # long enough for silent heartbeats to go stale
        assert not (root / "slow-import.go").exists()  # the import was running all along
        servers(pg_schema_url, root, env=env)  # adopts stale runs at start-up
        time.sleep(2.5)
    finally:
        (tmp_path / "gate").touch()
        (other / "gate").touch()
        (root / "slow-import.go").touch()
        slow.join(60)
    assert answers and answers[0].status_code == 200, answers
    for run_id in (gated, second.json()["runId"], parked, answers[0].json()["runId"]):
        assert wait_status(client, run_id, TERMINAL, timeout=30)["status"] == "finished"
    assert executions(tmp_path) == [gated]
    assert run_started_count(client, gated) == 1
