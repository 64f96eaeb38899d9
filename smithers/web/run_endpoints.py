"""Endpoints on one run, shared by the server (run from the path) and the serve app
(its one run): cancel, events, frames, approve, deny, signal.

Each builder takes the app's `RunService`, `run_id_of(request)` (which run a request is
about) and, where a body or stream is involved, the app's `Limits`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from ..metrics import Metrics
from ..service import RunService
from .body import read_json_object
from .models import (
    CancelAnswer,
    Decide,
    Decision,
    EventsQuery,
    Frame,
    FramesQuery,
    SendSignal,
    SignalReceipt,
)
from .openapi import operation
from .params import invalid, parse_model, parse_query, path_name, query_int
from .responses import JSONResponse
from .sse import EventStreamResponse, StreamSlots

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int
    request_timeout_s: float
    keepalive_s: float
    metrics: Metrics | None
    streams: StreamSlots = field(default_factory=StreamSlots)

    async def body(self, request: Request) -> dict[str, Any]:
        return await read_json_object(request, self.max_body_bytes, self.request_timeout_s)

    async def parse(self, request: Request, model: type[M]) -> M:
        """The body read within the limits and checked by `model`."""
        return parse_model(model, await self.body(request))


RunIdOf = Callable[[Request], str]
Endpoint = Callable[[Request], Awaitable[Any]]


def cancel_endpoint(service: RunService, run_id_of: RunIdOf) -> Endpoint:
    @operation("Cancel a run", CancelAnswer, errors=(404, 409))
    async def cancel(request: Request) -> Response:
        at = await service.locate(run_id_of(request))
        await service.cancel(at)
        return JSONResponse({"runId": at.run_id, "status": "cancelled"})

    return cancel


def events_endpoint(service: RunService, run_id_of: RunIdOf, limits: Limits) -> Endpoint:
    @operation(
        "Server-sent events of the run",
        query=EventsQuery,
        errors=(404, 429),
        media_type="text/event-stream",
    )
    async def events(request: Request) -> EventStreamResponse:
        target = await service.locate(run_id_of(request))
        after = parse_query(EventsQuery, request.query_params).afterSeq
        last_id = query_int(
            {"Last-Event-ID": request.headers.get("last-event-id")}, "Last-Event-ID", None
        )
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
            service.event_batches(target, after, idle=limits.keepalive_s),
            on_close=close,
            slots=limits.streams,
        )

    return events


def frames_endpoint(service: RunService, run_id_of: RunIdOf) -> Endpoint:
    @operation("Render frames, newest first", list[Frame], query=FramesQuery, errors=(404,))
    async def frames(request: Request) -> Response:
        at = await service.locate(run_id_of(request))
        query = parse_query(FramesQuery, request.query_params)
        found = await service.frames(at, limit=query.limit, after_frame_no=query.afterFrameNo)
        return JSONResponse(found)

    return frames


def decide_endpoint(
    service: RunService, run_id_of: RunIdOf, limits: Limits, *, approved: bool
) -> Endpoint:
    """approve / deny. No caller identity is passed: these apps know one shared token, not
    who holds it, so an approval's `allowed_users` / `allowed_scopes` are not checked here."""

    @operation(
        f"{'Approve' if approved else 'Deny'} a waiting node",
        Decision,
        body=Decide,
        errors=(404, 409),
    )
    async def decide(request: Request) -> Response:
        at = await service.locate(run_id_of(request))
        node_id = path_name(request.path_params, "nodeId")
        body = await limits.parse(request, Decide)
        iteration = body.iteration or 0
        decision = await service.decide(
            at,
            node_id,
            approved=approved,
            iteration=iteration,
            note=body.note,
            decided_by=body.decidedBy,
            decision=body.decision,
        )
        return JSONResponse(decision.to_json())

    return decide


def signal_endpoint(service: RunService, run_id_of: RunIdOf, limits: Limits) -> Endpoint:
    """Deliver a signal, its payload checked against the model of the node that will
    consume it."""

    @operation("Deliver a named signal", SignalReceipt, body=SendSignal, errors=(404, 409))
    async def send_signal(request: Request) -> Response:
        at = await service.locate(run_id_of(request))
        name = path_name(request.path_params, "signalName")
        if not name.strip():
            raise invalid("signalName", "signal name must not be blank")
        body = await limits.parse(request, SendSignal)
        correlation_id = body.correlationId
        received_by = body.receivedBy
        sent = await service.signal(
            at,
            name,
            body.data,
            correlation_id=correlation_id,
            received_by=received_by,
        )
        return JSONResponse(sent)

    return send_signal
