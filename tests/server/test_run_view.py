"""`GET /v1/runs/{id}` of an ended run is served from a kept view: what another process does
to the run (ends it, resumes it) shows in the next answer, on each backend."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .conftest import TERMINAL, ServerProcess, start_run, wait_status


def test_another_servers_end_and_resume_of_a_run_show_at_once(
    spawn: Callable[..., ServerProcess], server_db: bool | str, tmp_path: Path
) -> None:
    a = spawn(db=server_db)
    b = spawn(db=server_db if isinstance(server_db, str) else a.db_path, root=a.root)
    ca, cb = a.client(), b.client()
    folder = tmp_path / "flaky"
    folder.mkdir()
    run_id = start_run(ca, "srv_flaky.py", input={"dir": str(folder)})

    # B drives nothing: it sees the run A ended, and serves that view again unchanged.
    failed = wait_status(cb, run_id, TERMINAL)
    assert failed["status"] == "failed" and "gate is closed" in str(failed["error"])
    again = cb.get(f"/v1/runs/{run_id}").json()
    assert {**again, "runState": None} == {**failed, "runState": None}
    assert again["runState"]["state"] == failed["runState"]["state"]
    assert again["runState"]["computedAt"] >= failed["runState"]["computedAt"]

    (folder / "open").touch()
    res = ca.post(f"/v1/runs/{run_id}/resume", json={})
    assert res.status_code == 200 and res.json() == {"runId": run_id}
    for client in (cb, ca):  # the next read on either server: no stale "failed"
        assert client.get(f"/v1/runs/{run_id}").json()["status"] in ("running", "finished")

    finished = wait_status(cb, run_id, TERMINAL)
    assert finished["status"] == "finished" and "error" not in finished
    assert finished["summary"] == {"finished": 2}
    assert ca.get(f"/v1/runs/{run_id}").json()["summary"] == {"finished": 2}


def test_a_running_runs_view_is_never_kept(
    spawn: Callable[..., ServerProcess], server_db: bool | str, tmp_path: Path
) -> None:
    """Read over and over while its task runs, a run still shows its end at the first read
    after it: only ended runs are served from a kept view."""
    server = spawn(db=server_db)
    client = server.client()
    folder = tmp_path / "gated"
    folder.mkdir()
    run_id = start_run(client, "srv_gated.py", input={"dir": str(folder)})
    running = wait_status(client, run_id, "running")
    for _ in range(20):
        again = client.get(f"/v1/runs/{run_id}").json()
        assert (again["status"], again["finishedAtMs"]) == ("running", None)
        assert again["runState"]["computedAt"] >= running["runState"]["computedAt"]

    (folder / "gate").touch()
    finished = wait_status(client, run_id, TERMINAL)
    assert finished["status"] == "finished" and finished["summary"] == {"finished": 1}
    assert finished["finishedAtMs"] is not None and finished["runState"]["state"] == "succeeded"
    res = client.get(f"/v1/runs/{run_id}")
    assert res.headers["content-type"] == "application/json"
    assert res.headers["content-length"] == str(len(res.content))
    assert {**res.json(), "runState": None} == {**finished, "runState": None}
