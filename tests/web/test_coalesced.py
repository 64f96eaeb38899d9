"""Coalesced WebSocket writes: every frame arrives, in order and whole (short, medium and
long length headers), also when the socket closes right after them."""

from __future__ import annotations

import asyncio

import websockets
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from smithers.web.coalesced import CoalescedWebSocketProtocol
from smithers.web.serving import serve_in_thread, uvicorn_config

LONG = (62, 63, 200, 40_000, 70_000)  # UTF-8 bytes around 126 and 65536


async def burst(websocket: WebSocket) -> None:
    await websocket.accept()
    count = int(await websocket.receive_text())
    for i in range(count):
        await websocket.send_text(f"frame {i}")
        if i % 100 == 0:
            await asyncio.sleep(0)  # several loop turns, several writes
    for size in LONG:
        await websocket.send_text("é" * size)
    await websocket.close(1000, "done")


def test_frames_of_a_burst_arrive_in_order_before_the_close() -> None:
    app = Starlette(routes=[WebSocketRoute("/", burst)])
    config = uvicorn_config(
        app, host="127.0.0.1", port=0, headers_timeout_ms=5000, ws=CoalescedWebSocketProtocol
    )
    handle = serve_in_thread(config)

    async def client() -> tuple[list[str], int | None]:
        async with websockets.connect(f"ws://127.0.0.1:{handle.port}/") as ws:
            await ws.send("1000")
            received = [str(message) async for message in ws]
            return received, ws.close_code

    try:
        received, code = asyncio.run(client())
    finally:
        handle.close()
    assert received == [f"frame {i}" for i in range(1000)] + ["é" * size for size in LONG]
    assert code == 1000
