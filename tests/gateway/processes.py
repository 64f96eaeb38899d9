"""A Gateway in its own process: `smithers gateway app.py:gateway --db ...` serving the
test workflows with the test tokens (or an app of the test's), stopped with Ctrl-C (its
runs park)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx

from tests.helpers import ROOT
from tests.server.conftest import free_port

APP = textwrap.dedent(
    """
    from smithers_gateway import Gateway
    from tests.gateway.conftest import TOKEN_AUTH, register_all

    gateway = register_all(Gateway(auth=TOKEN_AUTH))
    """
)


@dataclass
class GatewayProcess:
    url: str
    proc: subprocess.Popen[str]


@asynccontextmanager
async def gateway_process(tmp_path: Path, db: str) -> AsyncIterator[str]:
    """Start it on a free port and yield its URL once `/health` answers."""
    async with started_gateway(tmp_path, db) as started:
        yield started.url


@asynccontextmanager
async def started_gateway(
    tmp_path: Path,
    db: str,
    *,
    app: str = APP,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[GatewayProcess]:
    """`smithers gateway` serving `app` (the source of `gateway_app.py`) with `args`;
    stopped with Ctrl-C afterwards unless it has ended (a test may SIGKILL it)."""
    (tmp_path / "gateway_app.py").write_text(app)
    port = free_port()
    paths = {"PYTHONPATH": f"{ROOT}:{tmp_path}"}
    command = [sys.executable, "-m", "smithers_cli", "gateway", "gateway_app:gateway"]
    proc = subprocess.Popen(
        [*command, "--port", str(port), "--db", db, *args],
        cwd=tmp_path,
        env={**os.environ, **paths, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            with anyio.fail_after(30):
                while True:
                    assert proc.poll() is None, proc.communicate()
                    try:
                        if (await client.get(f"{url}/health")).status_code == 200:
                            break
                    except httpx.TransportError:
                        await anyio.sleep(0.05)
        yield GatewayProcess(url, proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        await anyio.to_thread.run_sync(lambda: proc.communicate(timeout=30))
