"""`create_app()` with no arguments reads SMITHERS_DB, SMITHERS_ROOT and the token variable,
so `uvicorn --factory smithers_server:create_app` is configured by the environment; an
argument given wins."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from smithers import open_store
from smithers.queries import get_run
from smithers_server import start_server
from tests.helpers import EXAMPLES

from .conftest import free_port

NAMES = ("SMITHERS_DB", "SMITHERS_ROOT", "SMITHERS_API_KEY", "SMITHERS_URL")


def finished(client: httpx.Client, run_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        view: dict[str, object] = client.get(f"/v1/runs/{run_id}").json()
        if view["status"] == "finished":
            return view
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish")


def test_uvicorn_factory_is_configured_by_the_environment(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(EXAMPLES / "hello.py", root / "hello.py")
    env = {k: v for k, v in os.environ.items() if k not in NAMES}
    env.update(SMITHERS_DB="env.db", SMITHERS_ROOT="root", SMITHERS_API_KEY="tok")
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "smithers_server:create_app"]
    cmd += ["--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{url}/health", timeout=1).is_success:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        assert proc.poll() is None, proc.communicate(timeout=5)[0]
        start = {"workflowPath": "hello.py", "input": {"name": "env"}}
        assert httpx.post(f"{url}/v1/runs", json=start).status_code == 401  # the token is on
        headers = {"authorization": "Bearer tok"}
        with httpx.Client(base_url=url, headers=headers, timeout=15) as client:
            run_id = client.post("/v1/runs", json=start).json()["runId"]  # found in the root
            finished(client, run_id)
            assert client.get("/v1/runs").is_success  # a server database: runs are listed
    finally:
        proc.terminate()
        proc.wait(15)
    store = open_store(str(tmp_path / "env.db"))
    try:
        run = get_run(store, run_id)
        assert run is not None and run.status == "finished"
    finally:
        store.close()


def test_arguments_given_win_over_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("SMITHERS_DB", str(tmp_path / "env.db"))
    monkeypatch.setenv("SMITHERS_ROOT", str(elsewhere))  # holds no workflow
    monkeypatch.setenv("SMITHERS_API_KEY", "from-env")
    handle = start_server(
        port=0, db=str(tmp_path / "given.db"), root_dir=EXAMPLES, auth_token="given"
    )
    try:
        with httpx.Client(
            base_url=handle.url, headers={"authorization": "Bearer given"}, timeout=15
        ) as client:
            answer = client.post("/v1/runs", json={"workflowPath": "hello.py"})
            assert answer.status_code == 200, answer.text
            finished(client, answer.json()["runId"])
    finally:
        handle.close()
    assert (tmp_path / "given.db").exists()
    assert not (tmp_path / "env.db").exists()
