"""Endpoints on one run, shared by the server (run from the path) and the serve app
(its one run): cancel, events, frames, approve, deny, signal.

Each builder takes the app's `RunService`, `run_id_of(request)` (which run a request is
about) and, where a body or stream is involved, the app's `Limits`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..metrics import Metrics
from ..service import RunService
from .body import read_json_object
from .params import body_field, invalid, path_name, query_int
from .responses import JSONResponse
from .sse import EventStreamResponse, StreamSlots


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int
    request_timeout_s: float
    keepalive_s: float
    metrics: Metrics | None
    streams: StreamSlots = field(default_factory=StreamSlots)

    async def body(self, request: Request) -> dict[str, Any]:
        return await read_json_object(request, self.max_body_bytes, self.request_timeout_s)


RunIdOf = Callable[[Request], str]
Endpoint = Callable[[Request], Awaitable[Any]]


def cancel_endpoint(service: RunService, run_id_of: RunIdOf) -> Endpoint:
    async def cancel(request: Request) -> Response:
        at = await service.locate(run_id_of(request))
        await service.cancel(at)
        return JSONResponse({"runId": at.run_id, "status": "cancelled"})

    return cancel


def events_endpoint(service: RunService, run_id_of: RunIdOf, limits: Limits) -> Endpoint:
    async def events(request: Request) -> EventStreamResponse:
        target = await service.locate(run_id_of(request))
        after = query_int(request.query_params, "afterSeq", -1)
        last_id = query_int(
            {"Last-Event-ID": request.headers.get("last-event-id")}, "Last-Event-ID", None
        )
        assert after is not None
        if last_id is not None:
            after = max(after, last_id)
        give_back = limits.streams.take(target.run_id)
        metrics = limits.metrics
        if metrics:
            metrics.sse_subscribers.inc()

        def close() -> None:
            give_back()
            if metrics:
                metrics.sse_subscribers.dec()

        return EventStreamResponse(
            service.events(target, after, idle=limits.keepalive_s),
            on_close=close,
        )

    return events


def frames_endpoint(service: RunService, run_id_of: RunIdOf) -> Endpoint:
    async def frames(request: Request) -> Response:
        at = await service.locate(run_id_of(request))
        limit = query_int(request.query_params, "limit", 50, minimum=1, maximum=1000)
        after = query_int(request.query_params, "afterFrameNo", None)
        assert limit is not None
        return JSONResponse(await service.frames(at, limit=limit, after_frame_no=after))

    return frames


def decide_endpoint(
    service: RunService, run_id_of: RunIdOf, limits: Limits, *, approved: bool
) -> Endpoint:
    """approve / deny. No caller identity is passed: these apps know one shared token, not
    who holds it, so an approval's `allowed_users` / `allowed_scopes` are not checked here."""

    async def decide(request: Request) -> Response:
        at = await service.locate(run_id_of(request))
        node_id = path_name(request.path_params, "nodeId")
        body = await limits.body(request)
        iteration = body_field(body, "iteration", int, 0)
        if iteration is None or iteration < 0:
            raise invalid("iteration", "iteration must be >= 0")
        decision = await service.decide(
            at,
            node_id,
            approved=approved,
            iteration=iteration,
            note=body_field(body, "note", str),
            decided_by=body_field(body, "decidedBy", str),
            decision=body_field(body, "decision", dict),
        )
        return JSONResponse(decision.to_json())

    return decide


def signal_endpoint(service: RunService, run_id_of: RunIdOf, limits: Limits) -> Endpoint:
    async def send_signal(request: Request) -> Response:
        at = await service.locate(run_id_of(request))
        name = path_name(request.path_params, "signalName")
        if not name.strip():
            raise invalid("signalName", "signal name must not be blank")
        body = await limits.body(request)
        correlation_id = body_field(body, "correlationId", str)
        received_by = body_field(body, "receivedBy", str)
        sent = await service.signal(
            at,
            name,
            body.get("data", {}),
            correlation_id=correlation_id,
            received_by=received_by,
        )
        return JSONResponse(sent)

    return send_signal
