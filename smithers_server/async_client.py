"""`AsyncSmithersClient`: `SmithersClient`'s API with `await` (see `client`)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping
from typing import Any, Self, TypeVar

import anyio
import httpx

from smithers.errors import SmithersError

from .calls import (
    Call,
    Json,
    api_error,
    client_options,
    decide_call,
    frames_call,
    items_of,
    list_runs_call,
    outputs_call,
    present,
    result,
    run_path,
    signal_call,
    simple_call,
    start_run_call,
    unreachable,
    workflows_call,
)
from .client_errors import SmithersAPIError
from .follow import Follow
from .waiting import WAIT_IDLE_TIMEOUT_S, WAIT_RECONNECTS, Until

T = TypeVar("T")


class AsyncSmithersClient:
    """The same API with `await`: `async with AsyncSmithersClient(url) as client: ...`."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float | None = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._http = httpx.AsyncClient(
            **client_options(base_url, token, timeout), transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def _send(self, call: Call[T]) -> T:
        try:
            response = await self._http.request(
                call.method, call.path, params=call.params, json=call.body
            )
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from exc
        return result(call, response)

    async def start_run(
        self,
        workflow_path: str,
        input: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        resume: bool = False,
        max_concurrency: int | None = None,
    ) -> str:
        return await self._send(
            start_run_call(workflow_path, input, run_id, resume, max_concurrency)
        )

    async def get_run(self, run_id: str) -> Json:
        return await self._send(simple_call("GET", run_path(run_id)))

    async def list_runs(
        self, *, limit: int | None = None, status: str | None = None, workflow: str | None = None
    ) -> list[Json]:
        return await self._send(list_runs_call(limit, status, workflow))

    async def approve(
        self,
        run_id: str,
        node_id: str,
        *,
        iteration: int = 0,
        note: str | None = None,
        decided_by: str | None = None,
        decision: Mapping[str, Any] | None = None,
    ) -> Json:
        call = decide_call(run_id, node_id, "approve", iteration, note, decided_by, decision)
        return await self._send(call)

    async def deny(
        self,
        run_id: str,
        node_id: str,
        *,
        iteration: int = 0,
        note: str | None = None,
        decided_by: str | None = None,
        decision: Mapping[str, Any] | None = None,
    ) -> Json:
        call = decide_call(run_id, node_id, "deny", iteration, note, decided_by, decision)
        return await self._send(call)

    async def signal(
        self,
        run_id: str,
        name: str,
        data: Any = None,
        *,
        correlation_id: str | None = None,
        received_by: str | None = None,
    ) -> Json:
        return await self._send(signal_call(run_id, name, data, correlation_id, received_by))

    async def cancel(self, run_id: str) -> Json:
        return await self._send(simple_call("POST", run_path(run_id, "cancel"), {}))

    async def resume(self, run_id: str, workflow_path: str | None = None) -> Json:
        body = present(workflowPath=workflow_path)
        return await self._send(simple_call("POST", run_path(run_id, "resume"), body))

    async def frames(
        self, run_id: str, *, limit: int | None = None, after_frame_no: int | None = None
    ) -> list[Json]:
        return await self._send(frames_call(run_id, limit, after_frame_no))

    async def outputs(self, run_id: str, *, node_id: str | None = None) -> list[Json]:
        """What the run's tasks produced, in the order they finished."""
        return await self._send(outputs_call(run_id, node_id))

    async def workflows(self) -> list[Json]:
        """The workflows under the server's root: `[{"path", "name", "inputSchema"}]`; a
        file that cannot be loaded has `name` None and an `error`."""
        return await self._send(workflows_call())

    async def approvals(self) -> list[Json]:
        return await self._send(Call("GET", "/v1/approvals", items_of("approvals")))

    async def health(self) -> Json:
        return await self._send(simple_call("GET", "/health"))

    async def events(
        self,
        run_id: str,
        after_seq: int = -1,
        *,
        max_reconnects: int = 10,
        reconnect_delay: float | None = None,
        idle_timeout: float = 45.0,
    ) -> AsyncIterator[Json]:
        """As `SmithersClient.events`, as an async iterator (close it with `aclose()`)."""
        follow = Follow(run_id, after_seq, max_reconnects, reconnect_delay)
        async for event in self._stream(follow, idle_timeout):
            if event is not None:
                yield event

    async def wait(
        self,
        run_id: str,
        until: str | Iterable[str] | None = None,
        *,
        timeout: float | None = None,
    ) -> Json:
        """As `SmithersClient.wait`: the run's view once it is parked or terminal (or in
        a status of `until`); `TimeoutError` after `timeout` s."""
        wanted = Until.of(until)
        try:
            with anyio.fail_after(timeout):
                view = await self.get_run(run_id)
                if wanted.reached(view):
                    return view
                follow = Follow(run_id, -1, WAIT_RECONNECTS, None)
                stream = self._stream(follow, WAIT_IDLE_TIMEOUT_S)
                try:
                    async for event in stream:
                        if event is not None and wanted.worth_a_look(event):
                            view = await self.get_run(run_id)
                            if wanted.reached(view):
                                return view
                finally:
                    await stream.aclose()
                return await self.get_run(run_id)  # the stream ends once the run is terminal
        except TimeoutError:
            raise wanted.timed_out(run_id, timeout) from None

    async def _stream(
        self, follow: Follow, idle_timeout: float
    ) -> AsyncGenerator[Json | None, None]:
        """As `SmithersClient._stream`, without a deadline (use a cancel scope)."""
        timeout = httpx.Timeout(self._timeout, read=idle_timeout)
        while True:
            path, params, headers = follow.request()
            error: SmithersError
            try:
                async with self._http.stream(
                    "GET", path, params=params, headers=headers, timeout=timeout
                ) as response:
                    if not response.is_success:
                        await response.aread()
                        raise api_error(response)
                    follow.connected()
                    async for line in response.aiter_lines():
                        yield follow.line(line)
                return  # a complete response: the server says nothing more follows
            except httpx.TransportError as exc:
                error = unreachable(self.base_url, exc)
            except SmithersAPIError as exc:
                error = exc
            await anyio.sleep(follow.dropped(error))
