"""A real gateway holds its default 1,000 authenticated sockets at once, and the 1,001st
`connect` gets CONNECTION_LIMIT (close 1013); a broadcast reaches every one of them."""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from .conftest import Rpc, serve_gateway
from .sockets import Socket, open_socket, ws_url

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

SOCKETS = 1000
HANDSHAKES_AT_ONCE = 32  # under the cap of 64 unauthenticated sockets


@contextmanager
def open_files(wanted: int) -> Iterator[None]:
    """Raise this process's open file limit: each socket takes a descriptor at either end."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"the open file limit ({hard}) is under {wanted}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_a_thousand_sockets_are_held_and_the_next_is_refused(tmp_path: Path) -> None:
    with open_files(3 * SOCKETS):
        async with serve_gateway(tmp_path) as gw:
            gate = asyncio.Semaphore(HANDSHAKES_AT_ONCE)
            sockets: list[Socket] = []

            async def join() -> None:
                async with gate:
                    socket = Socket(await connect(ws_url(gw.url), open_timeout=30))
                    sockets.append(socket)
                    assert (await socket.frame())["event"] == "connect.challenge"
                    assert (await socket.connect())["ok"] is True

            try:
                await asyncio.gather(*(join() for _ in range(SOCKETS)))
                async with open_socket(gw.url) as last:
                    res = await last.connect()
                    assert res["ok"] is False and res["error"]["code"] == "CONNECTION_LIMIT"
                    with pytest.raises(ConnectionClosed) as closed:
                        await last.frame()
                    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
                async with gw.client() as client:
                    run_id = (await Rpc(client)("launchRun", workflow="hello"))["runId"]
                done = await asyncio.gather(
                    *(socket.event("run.completed", run_id) for socket in sockets)
                )
                assert all(frame["payload"]["status"] == "finished" for frame in done)
            finally:
                await asyncio.gather(*(socket.conn.close() for socket in sockets))
