"""Running `smithers` in a subprocess with a clean environment, and checking what it said."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

CLI = [sys.executable, "-m", "smithers_cli"]
# Variables the command reads as defaults: a test sets the ones it means.
DEFAULTS = ("SMITHERS_API_KEY", "SMITHERS_URL", "SMITHERS_DB", "SMITHERS_ROOT")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DEFAULTS}
    env.update(extra)
    return env


def run_cli(
    args: list[str], env: dict[str, str], cwd: Path = ROOT, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(**env),
    )


def smithers(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    """`smithers ARGS` with only the `SMITHERS_*` defaults given in `env`."""
    return run_cli(list(args), env, cwd)


def runs(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli(["runs", *args], env, timeout=30)


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    assert done.stderr == "", done.stderr
    return done.stdout


def one_line_error(done: subprocess.CompletedProcess[str], code: int) -> str:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith("smithers: "), done.stderr
    return done.stderr.strip()
