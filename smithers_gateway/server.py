"""Serving a Gateway with uvicorn inside the caller's event loop (`Gateway.listen`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import uvicorn

from smithers.errors import SmithersError
from smithers.web.serving import EmbeddedServer, bind_socket

STARTUP_TIMEOUT_S = 30.0


@dataclass
class GatewayServer:
    """A Gateway listening in this event loop: `.url`, `.port`; stop it with
    `await gateway.close()`."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        """Stop accepting, let the app's shutdown run, and wait for it."""
        self.server.should_exit = True
        await asyncio.shield(self.task)


async def serve(config: uvicorn.Config) -> GatewayServer:
    """Bind `config.host:config.port` (0: a free port), start serving in a task of this
    loop, and return once the app's startup has run."""
    sock = bind_socket(config.host, config.port)
    port = int(sock.getsockname()[1])
    config.port = port
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="smithers-gateway")
    deadline = asyncio.get_running_loop().time() + STARTUP_TIMEOUT_S
    try:
        while not server.started:
            if task.done():
                failure = task.exception() if not task.cancelled() else None
                raise SmithersError("SERVER_ERROR", f"the gateway failed to start: {failure}")
            if asyncio.get_running_loop().time() > deadline:
                raise SmithersError("SERVER_ERROR", "the gateway did not start in time")
            await asyncio.sleep(0.01)
    except BaseException:
        server.should_exit = True
        sock.close()
        raise
    return GatewayServer(server, task, config.host, port)
