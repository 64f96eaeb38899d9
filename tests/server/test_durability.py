"""No committed run is lost on SQLite: the database may sit inside the root, where a request
can name it, and another process may open it, while the server keeps its locks."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.helpers import ROOT

from .conftest import ServerProcess, assert_error, make_root, start_run, wait_status


def test_a_run_committed_after_the_db_was_named_as_a_workflow_survives_a_kill(
    spawn: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    root = make_root(tmp_path / "root")
    db = root / "s.db"
    server = spawn(db=db, root=root)
    with server.client() as client:
        wait_status(client, start_run(client, "hello.py", input={"name": "a"}), "finished")
        for name in ("s.db", "s.db-wal", "s.db-shm"):
            res = client.post("/v1/runs", json={"workflowPath": name})
            assert_error(res, 400, "WORKFLOW_LOAD_FAILED")
        other = subprocess.run(
            [sys.executable, "-m", "smithers_cli", "runs", "list", "--db", f"sqlite:///{db}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert other.returncode == 0, other.stderr
        second = start_run(client, "hello.py", input={"name": "b"})
        wait_status(client, second, "finished")
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    again = spawn(db=db, root=root)
    with again.client() as client:
        res = client.get(f"/v1/runs/{second}")
        assert res.status_code == 200, res.text
        assert res.json()["status"] == "finished"


def test_without_a_db_no_database_file_is_made_inside_the_root(
    spawn: Callable[..., ServerProcess], tmp_path: Path, state_home: Path
) -> None:
    root = make_root(tmp_path / "root")
    before = set(root.iterdir())
    server = spawn(db=False, root=root)
    with server.client() as client:
        wait_status(client, start_run(client, "hello.py", input={"name": "a"}), "finished")
    assert set(root.iterdir()) == before  # no database, WAL or copy of a workflow
    assert list((state_home / "smithers").glob("root-*.db"))
