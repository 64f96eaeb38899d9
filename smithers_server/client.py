"""Python clients of the smithers_server REST API: `SmithersClient` and `AsyncSmithersClient`.

Both are thin and share everything but the I/O: each method builds a `calls.Call` (method,
path, query, body, and how to read the answer) with one shared function, and
`calls.result` turns the answer into a value or a `SmithersAPIError`. A request that gets
no answer at all raises `SmithersConnectionError`.

`events()` follows `GET /v1/runs/{runId}/events` and reconnects by itself when the stream
drops before the server ends it (the server ends it once the run is terminal and every
event was sent), resuming after the last seq it delivered (both `afterSeq` and
`Last-Event-ID`), so the caller sees every seq once, in order. `follow.Follow` holds that
bookkeeping for both clients.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Self, TypeVar

import httpx

from smithers.errors import SmithersError

from .async_client import AsyncSmithersClient
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
from .client_errors import SmithersAPIError, SmithersConnectionError
from .follow import Follow
from .waiting import WAIT_IDLE_TIMEOUT_S, WAIT_RECONNECTS, Deadline, Until

__all__ = ["AsyncSmithersClient", "SmithersAPIError", "SmithersClient", "SmithersConnectionError"]

T = TypeVar("T")


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
        self._http = httpx.Client(**client_options(base_url, token, timeout), transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: Call[T]) -> T:
        try:
            response = self._http.request(
                call.method, call.path, params=call.params, json=call.body
            )
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from exc
        return result(call, response)

    def start_run(
        self,
        workflow_path: str,
        input: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        resume: bool = False,
        max_concurrency: int | None = None,
    ) -> str:
        return self._send(start_run_call(workflow_path, input, run_id, resume, max_concurrency))

    def get_run(self, run_id: str) -> Json:
        return self._send(simple_call("GET", run_path(run_id)))

    def list_runs(
        self, *, limit: int | None = None, status: str | None = None, workflow: str | None = None
    ) -> list[Json]:
        return self._send(list_runs_call(limit, status, workflow))

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
        call = decide_call(run_id, node_id, "approve", iteration, note, decided_by, decision)
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
        return self._send(
            decide_call(run_id, node_id, "deny", iteration, note, decided_by, decision)
        )

    def signal(
        self,
        run_id: str,
        name: str,
        data: Any = None,
        *,
        correlation_id: str | None = None,
        received_by: str | None = None,
    ) -> Json:
        return self._send(signal_call(run_id, name, data, correlation_id, received_by))

    def cancel(self, run_id: str) -> Json:
        return self._send(simple_call("POST", run_path(run_id, "cancel"), {}))

    def resume(self, run_id: str, workflow_path: str | None = None) -> Json:
        body = present(workflowPath=workflow_path)
        return self._send(simple_call("POST", run_path(run_id, "resume"), body))

    def frames(
        self, run_id: str, *, limit: int | None = None, after_frame_no: int | None = None
    ) -> list[Json]:
        return self._send(frames_call(run_id, limit, after_frame_no))

    def outputs(self, run_id: str, *, node_id: str | None = None) -> list[Json]:
        """What the run's tasks produced, in the order they finished."""
        return self._send(outputs_call(run_id, node_id))

    def workflows(self) -> list[Json]:
        """The workflows under the server's root: `[{"path", "name", "inputSchema"}]`; a
        file that cannot be loaded has `name` None and an `error`."""
        return self._send(workflows_call())

    def approvals(self) -> list[Json]:
        return self._send(Call("GET", "/v1/approvals", items_of("approvals")))

    def health(self) -> Json:
        return self._send(simple_call("GET", "/health"))

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
        follow = Follow(run_id, after_seq, max_reconnects, reconnect_delay)
        for event in self._stream(follow, idle_timeout, Deadline.after(None, TimeoutError())):
            if event is not None:
                yield event

    def wait(
        self,
        run_id: str,
        until: str | Iterable[str] | None = None,
        *,
        timeout: float | None = None,
    ) -> Json:
        """Block until the run is in one of the statuses `until` names (default: parked,
        `waiting-approval`, `waiting-event`, `waiting-timer`, `paused`, or terminal) and
        return its view (`get_run`); `runState.blocked` says what a parked run waits for.

        A terminal run always ends the wait, as nothing follows it: check `status`.
        Follows the run's event stream and reads the view again after the run events
        that may have brought it there. `TimeoutError` after `timeout` s.
        """
        wanted = Until.of(until)
        deadline = Deadline.after(timeout, wanted.timed_out(run_id, timeout))
        view = self.get_run(run_id)
        if wanted.reached(view):
            return view
        follow = Follow(run_id, -1, WAIT_RECONNECTS, None)
        for event in self._stream(follow, WAIT_IDLE_TIMEOUT_S, deadline):
            if event is not None and wanted.worth_a_look(event):
                view = self.get_run(run_id)
                if wanted.reached(view):
                    return view
        return self.get_run(run_id)  # the stream ends once the run is terminal

    def _stream(
        self, follow: Follow, idle_timeout: float, deadline: Deadline
    ) -> Iterator[Json | None]:
        """The stream `follow` describes, reconnecting after drops: each new event, and
        None for every other line (the deadline is looked at then), until the server
        completes the response. Raises `deadline.error` once it has passed."""
        while True:
            deadline.check()
            read = deadline.bound(idle_timeout)
            path, params, headers = follow.request()
            timeout = httpx.Timeout(self._timeout, read=read)
            error: SmithersError
            try:
                with self._http.stream(
                    "GET", path, params=params, headers=headers, timeout=timeout
                ) as response:
                    if not response.is_success:
                        response.read()
                        raise api_error(response)
                    follow.connected()
                    for line in response.iter_lines():
                        yield follow.line(line)
                        deadline.check()
                        if deadline.overrun_by(read):
                            break  # reopen with a read timeout that ends with the deadline
                    else:
                        return  # a complete response: the server says nothing more follows
                continue
            except httpx.TransportError as exc:
                error = unreachable(self.base_url, exc)
            except SmithersAPIError as exc:
                error = exc
            deadline.check()  # before counting a read cut short by the deadline as a drop
            time.sleep(deadline.sleep_s(follow.dropped(error)))
