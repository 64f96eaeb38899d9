"""Serving a Gateway with uvicorn inside the caller's event loop (`Gateway.listen`), on a
TCP port or a unix socket."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
from dataclasses import dataclass

import uvicorn

from smithers.errors import SmithersError
from smithers.web.serving import EmbeddedServer, bind_socket

STARTUP_TIMEOUT_S = 30.0
# Only processes of the socket file's owner may connect: the file's mode is its access
# control (an open gateway would otherwise serve every local user as an operator).
SOCKET_MODE = 0o600


@dataclass
class GatewayServer:
    """A Gateway listening in this event loop: `.url`, `.port` (or `.path` for a unix
    socket); stop it with `await gateway.close()`."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    host: str
    port: int | None
    path: str | None = None

    @property
    def url(self) -> str:
        """The base URL to request; on a unix socket, `http://localhost` (the Host an open
        gateway accepts), with the transport pointed at `.path`."""
        if self.path is not None:
            return "http://localhost"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        """Stop accepting, let the app's shutdown run, and wait for it (a unix socket's
        file is removed)."""
        self.server.should_exit = True
        try:
            await asyncio.shield(self.task)
        finally:
            if self.path is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)


def bind_unix_socket(path: str) -> socket.socket:
    """A listening unix socket at `path` (mode 0600). A socket file nothing listens on
    (left by a process that died) is replaced; a live one, or another kind of file, is
    refused with a one-line error."""
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        found = None
    if found is not None:
        if not stat.S_ISSOCK(found.st_mode):
            raise SmithersError("INVALID_REQUEST", f"cannot listen on {path}: not a socket file")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(path)
            except ConnectionRefusedError:
                os.unlink(path)  # stale
            except OSError as exc:
                raise SmithersError(
                    "INVALID_REQUEST", f"cannot listen on {path}: {exc.strerror or exc}"
                ) from None
            else:
                raise SmithersError("INVALID_REQUEST", f"cannot listen on {path}: in use")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # Bound with no access at all, then opened to the owner: never wider in between.
        old_umask = os.umask(0o777)
        try:
            sock.bind(path)
        finally:
            os.umask(old_umask)
        os.chmod(path, SOCKET_MODE)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise SmithersError(
            "INVALID_REQUEST", f"cannot listen on {path}: {exc.strerror or exc}"
        ) from None
    return sock


async def serve(config: uvicorn.Config, path: str | None = None) -> GatewayServer:
    """Bind `config.host:config.port` (0: a free port), or the unix socket `path`, start
    serving in a task of this loop, and return once the app's startup has run."""
    if path is not None:
        sock = bind_unix_socket(path)
        port = None
        config.uds = path
    else:
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
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        raise
    return GatewayServer(server, task, config.host, port, path)
