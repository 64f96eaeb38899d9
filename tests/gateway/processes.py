"""A Gateway in its own process: `smithers gateway app.py:gateway --db ...` serving the
test workflows with the test tokens, stopped with Ctrl-C (its runs park)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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


@asynccontextmanager
async def gateway_process(tmp_path: Path, db: str) -> AsyncIterator[str]:
    """Start it on a free port and yield its URL once `/health` answers."""
    (tmp_path / "gateway_app.py").write_text(APP)
    port = free_port()
    env = {"PYTHONPATH": f"{ROOT}:{tmp_path}"}
    command = [sys.executable, "-m", "smithers_cli", "gateway", "gateway_app:gateway"]
    proc = subprocess.Popen(
        [*command, "--port", str(port), "--db", db],
        cwd=tmp_path,
        env={**os.environ, **env},
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
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        await anyio.to_thread.run_sync(lambda: proc.communicate(timeout=30))
