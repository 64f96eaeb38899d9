"""`smithers gateway module:attr`: serves the Gateway an app file defines, on the database
`--db` names; a bad target is one line on stderr and exit 2."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx

from tests.server.conftest import free_port

APP = textwrap.dedent(
    """
    from pydantic import BaseModel

    from smithers import Task, Workflow, create_smithers
    from smithers_gateway import Gateway


    class Greeting(BaseModel):
        message: str


    smithers, outputs = create_smithers(cli_greeting=Greeting)


    @smithers
    def hello(ctx):
        greet = Task("greet", output=outputs.cli_greeting, run={"message": "hi"})
        return Workflow("hello", [greet])


    gateway = Gateway(
        auth={"mode": "token", "tokens": {"cli-token": {"role": "operator", "scopes": ["*"]}}},
        db="sqlite:///ignored-by-the-cli.db",
        operator_ui={"path": "/console"},
    ).register("hello", hello)
    """
)


def smithers(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smithers_cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_gateway_serves_the_app_on_the_db_given(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    port = free_port()
    db = tmp_path / "cli.db"
    command = [sys.executable, "-m", "smithers_cli", "gateway", "app.py:gateway"]
    proc = subprocess.Popen(
        [*command, "--port", str(port), "--db", f"sqlite:///{db}"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the gateway did not start"
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        headers = {"authorization": "Bearer cli-token"}
        res = httpx.post(f"{url}/v1/rpc/launchRun", json={"workflow": "hello"}, headers=headers)
        assert res.status_code == 200, res.text
        run_id = res.json()["payload"]["runId"]
        for _ in range(200):
            res = httpx.post(f"{url}/v1/rpc/getRun", json={"runId": run_id}, headers=headers)
            if res.json()["payload"]["status"] == "finished":
                break
            time.sleep(0.05)
        assert res.json()["payload"]["status"] == "finished"
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    # Ctrl-C: the server drains and exits as an interrupted command does.
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["smithers: interrupted"]
    assert f"smithers gateway on {url} (1 workflows, auth token)" in out
    assert f"console on {url}/console/" in out
    assert db.exists() and not (tmp_path / "ignored-by-the-cli.db").exists()


def test_a_bad_target_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    (tmp_path / "other.py").write_text("gateway = 42\n")
    cases = {
        "app.py": "is not module:attribute",
        "app.py:nothing": "has no attribute 'nothing'",
        "missing.py:gateway": "no such file",
        "no_such_module:gateway": "cannot import no_such_module",
        "broken.py:gateway": "RuntimeError: boom",
        "other.py:gateway": "is a int, not a Gateway",
    }
    for target, message in cases.items():
        done = smithers("gateway", target, cwd=tmp_path)
        assert done.returncode == 2, (target, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("smithers: "), done.stderr
        assert message in lines[0], (target, lines[0])
