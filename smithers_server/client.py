"""Python clients of the smithers_server REST API: `SmithersClient` and `AsyncSmithersClient`.

Both are thin and share everything but the I/O: each method builds a `_Call` (method, path,
query, body, and how to read the answer) with one shared function, and `_result` turns the
answer into a value or a `SmithersAPIError`. A request that gets no answer at all raises
`SmithersConnectionError`.

`events()` follows `GET /v1/runs/{runId}/events` and reconnects by itself when the stream
drops before the server ends it (the server ends it once the run is terminal and every
event was sent), resuming after the last seq it delivered (both `afterSeq` and
`Last-Event-ID`), so the caller sees every seq once, in order. `_Follow` holds that
bookkeeping for both clients.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Self, TypeVar
from urllib.parse import quote

import anyio
import httpx

from smithers.errors import SmithersError

__all__ = ["AsyncSmithersClient", "SmithersAPIError", "SmithersClient", "SmithersConnectionError"]

T = TypeVar("T")
Json = dict[str, Any]

TOKEN_ENV = "SMITHERS_API_KEY"


class SmithersAPIError(SmithersError):
    """The server answered with a non-2xx status (`status`, and its error envelope)."""

    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(code, message, details)
        self.http_status = status

    @property
    def status(self) -> int:
        return self.http_status

    def __str__(self) -> str:
        return f"{self.code} ({self.http_status}): {self.message}"

    def __repr__(self) -> str:
        return f"SmithersAPIError({self.http_status}, {self.code!r}, {self.message!r})"


class SmithersConnectionError(SmithersError):
    """No answer: the server could not be reached, timed out, or the stream kept failing."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__("UNREACHABLE", message, details)

    def __repr__(self) -> str:
        return f"SmithersConnectionError({self.message!r})"


# -- requests and answers, shared by both clients ---------------------------------------------


@dataclass(frozen=True)
class _Call(Generic[T]):
    method: str
    path: str
    read: Callable[[Any], T]
    params: dict[str, str | int] | None = None
    body: Json | None = None


def _seg(value: str) -> str:
    return quote(value, safe="")


def _run_path(run_id: str, *rest: str) -> str:
    return "/".join(["/v1/runs", _seg(run_id), *rest])


def _obj(data: Any) -> Json:
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object, got {type(data).__name__}")
    return data


def _items(key: str | None) -> Callable[[Any], list[Json]]:
    def read(data: Any) -> list[Json]:
        items = _obj(data)[key] if key else data
        if not isinstance(items, list):
            raise TypeError(f"expected a JSON array, got {type(items).__name__}")
        return items

    return read


def _run_id(data: Any) -> str:
    return str(_obj(data)["runId"])


def _present(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _client_options(base_url: str, token: str | None, timeout: float | None) -> dict[str, Any]:
    token = token or os.environ.get(TOKEN_ENV) or None
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return {"base_url": base_url.rstrip("/"), "headers": headers, "timeout": timeout}


def _api_error(response: httpx.Response) -> SmithersAPIError:
    """The error of a non-2xx answer (its body read): the envelope, or the status and text."""
    status = response.status_code
    try:
        envelope = _obj(_obj(response.json())["error"])
        code = str(envelope["code"])
        message = str(envelope.get("message") or code)
        details = envelope.get("details")
        return SmithersAPIError(status, code, message, details if isinstance(details, dict) else {})
    except (ValueError, KeyError, TypeError):
        text = " ".join(response.text.split())[:200]
        message = f"HTTP {status} {response.reason_phrase}".rstrip()
        return SmithersAPIError(
            status, f"HTTP_{status}", f"{message}: {text}" if text else message, {"body": text}
        )


def _unreachable(base_url: str, exc: httpx.TransportError) -> SmithersConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        reason = f"timed out ({type(exc).__name__})"
    else:
        reason = " ".join(str(exc).split()) or type(exc).__name__
    return SmithersConnectionError(
        f"cannot reach the Smithers server at {base_url}: {reason}",
        {"url": base_url, "reason": reason},
    )


def _result(call: _Call[T], response: httpx.Response) -> T:
    if not response.is_success:
        raise _api_error(response)
    try:
        return call.read(response.json())
    except (ValueError, KeyError, TypeError) as exc:
        raise SmithersAPIError(
            response.status_code,
            "INVALID_RESPONSE",
            f"unexpected answer to {call.method} {call.path}: {exc}",
        ) from exc


def _start_run(
    workflow_path: str,
    input: Mapping[str, Any] | None,
    run_id: str | None,
    resume: bool,
    max_concurrency: int | None,
) -> _Call[str]:
    body: Json = {"workflowPath": workflow_path, "input": dict(input or {})}
    body.update(_present(runId=run_id, resume=True if resume else None))
    if max_concurrency is not None:
        body["config"] = {"maxConcurrency": max_concurrency}
    return _Call("POST", "/v1/runs", _run_id, body=body)


def _list_runs(limit: int | None, status: str | None, workflow: str | None) -> _Call[list[Json]]:
    params = _present(limit=limit, status=status, workflow=workflow)
    return _Call("GET", "/v1/runs", _items("runs"), params=params)


def _decide(
    run_id: str,
    node_id: str,
    verb: str,
    iteration: int,
    note: str | None,
    decided_by: str | None,
    decision: Mapping[str, Any] | None,
) -> _Call[Json]:
    body = {"iteration": iteration, **_present(note=note, decidedBy=decided_by)}
    if decision is not None:
        body["decision"] = dict(decision)
    return _Call("POST", _run_path(run_id, "nodes", _seg(node_id), verb), _obj, body=body)


def _signal(
    run_id: str, name: str, data: Any, correlation_id: str | None, received_by: str | None
) -> _Call[Json]:
    body = {
        "data": {} if data is None else data,
        **_present(correlationId=correlation_id, receivedBy=received_by),
    }
    return _Call("POST", _run_path(run_id, "signals", _seg(name)), _obj, body=body)


def _frames(run_id: str, limit: int | None, after_frame_no: int | None) -> _Call[list[Json]]:
    params = _present(limit=limit, afterFrameNo=after_frame_no)
    return _Call("GET", _run_path(run_id, "frames"), _items(None), params=params)


def _simple(method: str, path: str, body: Json | None = None) -> _Call[Json]:
    return _Call(method, path, _obj, body=body)


# -- following the event stream, shared by both clients ---------------------------------------


def _retryable(error: SmithersError) -> bool:
    if isinstance(error, SmithersConnectionError):
        return True
    return isinstance(error, SmithersAPIError) and (
        error.status >= 500 or error.status in (408, 429) or error.code == "EVENT_GAP"
    )


@dataclass
class _Follow:
    """Where an event stream resumes, how long to wait before it does, and when to give up.

    An attempt that ends before delivering anything new (an event or a keep-alive) counts
    as failed; `max_reconnects` consecutive failed reconnects end the stream with
    `SmithersConnectionError`. The first connection is not retried: its error is raised.
    """

    run_id: str
    last: int
    max_reconnects: int
    reconnect_delay: float | None
    retry_ms: int = 1000
    failures: int = 0
    opened: bool = False
    data: list[str] = field(default_factory=list)
    seq: str | None = None

    def request(self) -> tuple[str, dict[str, str | int], dict[str, str]]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last >= 0:
            headers["Last-Event-ID"] = str(self.last)
        return _run_path(self.run_id, "events"), {"afterSeq": self.last}, headers

    def connected(self) -> None:
        self.opened = True
        self.data, self.seq = [], None

    def line(self, line: str) -> Json | None:
        """Feed one line; the event it completes (new, next in order) or None."""
        if line.startswith(":"):
            self.failures = 0  # a keep-alive: the connection is alive
            return None
        if line:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                self.data.append(value)
            elif name == "id":
                self.seq = value
            elif name == "retry" and value.isdigit():
                self.retry_ms = int(value)
            return None
        data, seq = self.data, self.seq
        self.data, self.seq = [], None
        if not data:
            return None
        try:
            number = int(seq or "")
            event = _obj(json.loads("\n".join(data)))
        except (ValueError, TypeError) as exc:
            raise SmithersAPIError(
                200, "INVALID_RESPONSE", f"malformed event (id {seq!r}) in the stream: {exc}"
            ) from exc
        if number <= self.last:
            return None  # already delivered
        if number != self.last + 1:
            raise SmithersAPIError(
                200,
                "EVENT_GAP",
                f"event stream jumped from seq {self.last} to {number}",
                {"expected": self.last + 1, "got": number},
            )
        event["seq"] = self.last = number
        self.failures = 0
        return event

    def dropped(self, error: SmithersError) -> float:
        """After a drop or failed attempt: the delay before the next one, or raise."""
        if not self.opened or not _retryable(error):
            raise error
        self.failures += 1
        if self.failures > self.max_reconnects:
            raise SmithersConnectionError(
                f"gave up on the event stream of run {self.run_id!r} after "
                f"{self.max_reconnects} failed reconnects: {error}",
                {"runId": self.run_id, "afterSeq": self.last, "reason": str(error)},
            ) from error
        return self.retry_ms / 1000 if self.reconnect_delay is None else self.reconnect_delay


# -- the clients --------------------------------------------------------------------------------


class SmithersClient:
    """A blocking client: `with SmithersClient("http://127.0.0.1:7331") as client: ...`."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float | None = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._http = httpx.Client(**_client_options(base_url, token, timeout), transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: _Call[T]) -> T:
        try:
            response = self._http.request(
                call.method, call.path, params=call.params, json=call.body
            )
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from exc
        return _result(call, response)

    def start_run(
        self,
        workflow_path: str,
        input: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        resume: bool = False,
        max_concurrency: int | None = None,
    ) -> str:
        return self._send(_start_run(workflow_path, input, run_id, resume, max_concurrency))

    def get_run(self, run_id: str) -> Json:
        return self._send(_simple("GET", _run_path(run_id)))

    def list_runs(
        self, *, limit: int | None = None, status: str | None = None, workflow: str | None = None
    ) -> list[Json]:
        return self._send(_list_runs(limit, status, workflow))

    def approve(
        self,
        run_id: str,
        node_id: str,
        *,
        iteration: int = 0,
        note: str | None = None,
        decided_by: str | None = None,
        decision: Mapping[str, Any] | None = None,
    ) -> Json:
        call = _decide(run_id, node_id, "approve", iteration, note, decided_by, decision)
        return self._send(call)

    def deny(
        self,
        run_id: str,
        node_id: str,
        *,
        iteration: int = 0,
        note: str | None = None,
        decided_by: str | None = None,
        decision: Mapping[str, Any] | None = None,
    ) -> Json:
        return self._send(_decide(run_id, node_id, "deny", iteration, note, decided_by, decision))

    def signal(
        self,
        run_id: str,
        name: str,
        data: Any = None,
        *,
        correlation_id: str | None = None,
        received_by: str | None = None,
    ) -> Json:
        return self._send(_signal(run_id, name, data, correlation_id, received_by))

    def cancel(self, run_id: str) -> Json:
        return self._send(_simple("POST", _run_path(run_id, "cancel"), {}))

    def resume(self, run_id: str, workflow_path: str | None = None) -> Json:
        body = _present(workflowPath=workflow_path)
        return self._send(_simple("POST", _run_path(run_id, "resume"), body))

    def frames(
        self, run_id: str, *, limit: int | None = None, after_frame_no: int | None = None
    ) -> list[Json]:
        return self._send(_frames(run_id, limit, after_frame_no))

    def approvals(self) -> list[Json]:
        return self._send(_Call("GET", "/v1/approvals", _items("approvals")))

    def health(self) -> Json:
        return self._send(_simple("GET", "/health"))

    def events(
        self,
        run_id: str,
        after_seq: int = -1,
        *,
        max_reconnects: int = 10,
        reconnect_delay: float | None = None,
        idle_timeout: float = 45.0,
    ) -> Iterator[Json]:
        """The run's events after `after_seq`, each with its `seq`, until the run has ended.

        Reconnects after a drop (waiting `retry:` ms, or `reconnect_delay` s); raises
        `SmithersConnectionError` after `max_reconnects` consecutive failed reconnects.
        A connection silent for `idle_timeout` s (the server sends keep-alives) is a drop.
        A response the server completes is not a drop: it does so once the run is terminal
        and everything after `after_seq` was sent (say `after_seq` was already its end).
        """
        follow = _Follow(run_id, after_seq, max_reconnects, reconnect_delay)
        timeout = httpx.Timeout(self._timeout, read=idle_timeout)
        while True:
            path, params, headers = follow.request()
            error: SmithersError
            try:
                with self._http.stream(
                    "GET", path, params=params, headers=headers, timeout=timeout
                ) as response:
                    if not response.is_success:
                        response.read()
                        raise _api_error(response)
                    follow.connected()
                    for line in response.iter_lines():
                        event = follow.line(line)
                        if event is not None:
                            yield event
                return  # a complete response: the server says nothing more follows
            except httpx.TransportError as exc:
                error = _unreachable(self.base_url, exc)
            except SmithersAPIError as exc:
                error = exc
            time.sleep(follow.dropped(error))


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
            **_client_options(base_url, token, timeout), transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def _send(self, call: _Call[T]) -> T:
        try:
            response = await self._http.request(
                call.method, call.path, params=call.params, json=call.body
            )
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from exc
        return _result(call, response)

    async def start_run(
        self,
        workflow_path: str,
        input: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        resume: bool = False,
        max_concurrency: int | None = None,
    ) -> str:
        return await self._send(_start_run(workflow_path, input, run_id, resume, max_concurrency))

    async def get_run(self, run_id: str) -> Json:
        return await self._send(_simple("GET", _run_path(run_id)))

    async def list_runs(
        self, *, limit: int | None = None, status: str | None = None, workflow: str | None = None
    ) -> list[Json]:
        return await self._send(_list_runs(limit, status, workflow))

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
        call = _decide(run_id, node_id, "approve", iteration, note, decided_by, decision)
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
        call = _decide(run_id, node_id, "deny", iteration, note, decided_by, decision)
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
        return await self._send(_signal(run_id, name, data, correlation_id, received_by))

    async def cancel(self, run_id: str) -> Json:
        return await self._send(_simple("POST", _run_path(run_id, "cancel"), {}))

    async def resume(self, run_id: str, workflow_path: str | None = None) -> Json:
        body = _present(workflowPath=workflow_path)
        return await self._send(_simple("POST", _run_path(run_id, "resume"), body))

    async def frames(
        self, run_id: str, *, limit: int | None = None, after_frame_no: int | None = None
    ) -> list[Json]:
        return await self._send(_frames(run_id, limit, after_frame_no))

    async def approvals(self) -> list[Json]:
        return await self._send(_Call("GET", "/v1/approvals", _items("approvals")))

    async def health(self) -> Json:
        return await self._send(_simple("GET", "/health"))

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
        follow = _Follow(run_id, after_seq, max_reconnects, reconnect_delay)
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
                        raise _api_error(response)
                    follow.connected()
                    async for line in response.aiter_lines():
                        event = follow.line(line)
                        if event is not None:
                            yield event
                return  # a complete response: the server says nothing more follows
            except httpx.TransportError as exc:
                error = _unreachable(self.base_url, exc)
            except SmithersAPIError as exc:
                error = exc
            await anyio.sleep(follow.dropped(error))
