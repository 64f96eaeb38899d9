"""The cluster's processes: `smithers server` and `smithers gateway` in subprocesses, each
on a free loopback port, its output in a log file, ready once `/health` answers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Process:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL: no shutdown, no release of its runs (a crash, an OOM kill)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        """Ctrl-C, as an operator stops it (its runs are handed back or park)."""
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def start(name: str, command: Sequence[str], workdir: Path, env: Mapping[str, str]) -> Process:
    """`python -m smithers_cli <command> --port <free port>`, started (see `ready`)."""
    port = free_port()
    log = workdir / f"{name}.log"
    argv = [sys.executable, "-m", "smithers_cli", *command, "--host", HOST, "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, cwd=workdir, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )
    return Process(name, port, proc, log)


def ready(process: Process, timeout: float = 60) -> None:
    """Wait until the process answers `/health`."""
    deadline = time.monotonic() + timeout
    while process.alive() and time.monotonic() < deadline:
        try:
            if httpx.get(f"{process.url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{process.name} did not start:\n{process.tail()}")


def server(name: str, db: str, root: Path, workdir: Path, env: Mapping[str, str]) -> Process:
    return start(name, ["server", "--db", db, "--root", str(root)], workdir, env)


def gateway(name: str, db: str, workdir: Path, env: Mapping[str, str]) -> Process:
    app = f"{HERE / 'gateway_app.py'}:gateway"
    return start(name, ["gateway", app, "--db", db], workdir, env)
