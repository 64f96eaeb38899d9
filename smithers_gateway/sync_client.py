"""SyncGatewayClient: GatewayClient for scripts without an event loop of their own. It
runs the async client on a private loop, one call at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, Self

from .client import GatewayClient


class SyncGatewayClient:
    def __init__(self, url: str, token: str | None = None, **options: Any) -> None:
        self._runner = asyncio.Runner()
        self.client = GatewayClient(url, token, **options)

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> dict[str, Any]:
        return self._runner.run(self.client.connect())

    def call(self, method: str, **params: Any) -> Any:
        return self._runner.run(self.client.call(method, **params))

    def stream_run_events(
        self, run_id: str, after_seq: int | None = None
    ) -> Iterator[dict[str, Any]]:
        events = self.client.stream_run_events(run_id, after_seq)
        try:
            while True:
                try:
                    yield self._runner.run(events.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self._runner.run(events.aclose())

    def close(self) -> None:
        self._runner.run(self.client.close())
        self._runner.close()
