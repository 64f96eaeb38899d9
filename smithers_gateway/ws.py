"""The WebSocket endpoint: challenge, `connect` (protocol, auth, connection limit), then
request frames dispatched through the same method table as HTTP, ticks, run streams.

Each socket has one reader (this task), one writer (`Outbox.run`), a tick task and a task
per call, in one task group: when the reader sees the socket go, everything stops.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import anyio
import anyio.abc
from starlette.responses import JSONResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from smithers.clock import now_ms
from smithers.errors import SmithersError
from smithers.principal import Principal
from smithers.web.params import parse_model

from .context import PROTOCOL, GatewayContext
from .frames import error_frame, ok_frame
from .inbound import Request, parse_request
from .outbox import Outbox
from .params import Connect, StreamRunEvents
from .rpc import MethodTable, dispatch, missing_scope
from .sockets import MAX_UNAUTHENTICATED, Sockets
from .streams import RunStreams

logger = logging.getLogger("smithers.gateway")

TERMINAL = frozenset({"finished", "failed", "cancelled"})


class Session:
    """One WebSocket connection."""

    def __init__(
        self,
        websocket: WebSocket,
        ctx: GatewayContext,
        table: MethodTable,
        sockets: Sockets,
        tasks: anyio.abc.TaskGroup,
    ) -> None:
        self.websocket, self.ctx, self.table, self.sockets = websocket, ctx, table, sockets
        self.tasks = tasks
        self.settings = sockets.settings
        self.outbox = Outbox(websocket)
        self.outbox.state_version = lambda: ctx.metrics.state_version
        self.principal: Principal | None = None
        self.streams: RunStreams | None = None
        # Names this connection (in the hello and the gateway's logs); it grants nothing.
        self.session_token = secrets.token_urlsafe(24)

    async def run(self) -> None:
        self.tasks.start_soon(self._write)
        self.tasks.start_soon(self._deadline)
        self.tasks.start_soon(self._ticks)
        self.outbox.event("connect.challenge", {"nonce": secrets.token_urlsafe(24), "ts": now_ms()})
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                text = (message.get("bytes") or b"").decode("utf-8", "replace")
            if len(text.encode()) > self.settings.max_payload:
                self.outbox.close(1009, "frame too large")
                continue
            try:
                request = parse_request(text)
            except SmithersError as exc:
                self.outbox.send(error_frame("invalid", exc))
                continue
            await self._take(request)

    async def _write(self) -> None:
        await self.outbox.run()
        self.tasks.cancel_scope.cancel()

    async def _deadline(self) -> None:
        await anyio.sleep(self.settings.auth_deadline_ms / 1000)
        if self.principal is None:
            self.outbox.close(1008, "authentication deadline")

    async def _ticks(self) -> None:
        while True:
            await anyio.sleep(self.settings.heartbeat_ms / 1000)
            self.outbox.tick()

    async def _take(self, request: Request) -> None:
        if request.method == "connect":
            try:
                await self._connect(request)
            except SmithersError as exc:
                self.outbox.send(error_frame(request.id, exc))
                if exc.code == "UNAUTHORIZED":
                    self.outbox.close(1008, "unauthorized")
                elif exc.code == "CONNECTION_LIMIT":
                    self.outbox.close(1013, "connection limit")
        elif self.principal is None:
            refusal = SmithersError("UNAUTHORIZED", "Connect first")
            self.outbox.send(error_frame(request.id, refusal))
        else:
            self.tasks.start_soon(self._call, request, self.principal)

    async def _connect(self, request: Request) -> None:
        if self.principal is not None:
            raise SmithersError("INVALID_REQUEST", "this socket is connected already")
        p = parse_model(Connect, request.params)
        if not p.minProtocol <= PROTOCOL <= p.maxProtocol:
            raise SmithersError(
                "PROTOCOL_UNSUPPORTED",
                f"this gateway speaks protocol {PROTOCOL}",
                {"protocol": PROTOCOL},
            )
        token = p.auth.token if p.auth is not None else None
        principal = self.ctx.authenticate(self.websocket.headers, token)
        if self.sockets.authenticated >= self.settings.max_connections:
            raise SmithersError(
                "CONNECTION_LIMIT",
                f"at most {self.settings.max_connections} connections",
                {"limit": self.settings.max_connections},
            )
        self.principal = principal
        self.sockets.unauthenticated -= 1
        self.sockets.authenticated += 1
        self.ctx.metrics.connections.inc()
        self.streams = RunStreams(
            self.ctx, self.sockets, self.outbox, self.tasks, principal.user_id
        )
        # Broadcast events from now on, but after the hello, whose snapshot is read next:
        # none is missed between the two (the snapshot may already show what some say).
        self.outbox.hold()
        if principal.allows("run:read", "connect"):
            self.sockets.broadcast.add(self.outbox, p.subscribe)
        try:
            hello = await self._hello(principal)
            self.outbox.send(ok_frame(request.id, hello))
        finally:
            self.outbox.release()

    async def _hello(self, principal: Principal) -> dict[str, Any]:
        return {
            "protocol": PROTOCOL,
            "features": list(self.ctx.features),
            "policy": {"heartbeatMs": self.settings.heartbeat_ms},
            "auth": {
                "sessionToken": self.session_token,
                "role": principal.role,
                "scopes": sorted(principal.scopes),
                "userId": principal.user_id,
                "tokenId": principal.token_id,
            },
            "snapshot": await self._snapshot(principal),
        }

    async def _snapshot(self, principal: Principal) -> dict[str, Any]:
        runs: list[dict[str, Any]] = []
        approvals: list[dict[str, Any]] = []
        if principal.allows("run:read", "connect"):
            try:
                rows = await self.ctx.service.list_runs(limit=1000)
                runs = [row for row in rows if row.get("status") not in TERMINAL]
                approvals = await self.ctx.service.approval_requests()
            except SmithersError:  # no database to list from
                pass
        return {
            "runs": runs,
            "approvals": approvals,
            "stateVersion": self.ctx.metrics.state_version,
        }

    async def _call(self, request: Request, principal: Principal) -> None:
        try:
            payload = await self._dispatch(request, principal)
        except SmithersError as exc:
            self.outbox.send(error_frame(request.id, exc))
            return
        except Exception:
            logger.exception(
                "RPC over WebSocket failed",
                extra={"method": request.method[:128], "session": self.session_token},
            )
            refusal = SmithersError("SERVER_ERROR", "internal server error")
            self.outbox.send(error_frame(request.id, refusal))
            return
        self.outbox.send(ok_frame(request.id, payload))

    async def _dispatch(self, request: Request, principal: Principal) -> Any:
        method = self.table.get(request.method)
        if method is None or method.name != "streamRunEvents":
            return await dispatch(
                self.table, self.ctx, principal, request.method, request.params, "ws"
            )
        if not principal.allows(method.scope, method.name):
            raise missing_scope(method.scope, request.method)
        assert self.streams is not None
        return await self.streams.open(parse_model(StreamRunEvents, request.params))


async def _refuse(websocket: WebSocket, message: str, code: int = 1013) -> None:
    """Too many sockets have not authenticated yet, or the gateway is closing: 503 where
    the server can say so."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        refusal = {"error": {"code": "UNAVAILABLE", "message": message}}
        await websocket.send_denial_response(JSONResponse(refusal, 503))
    else:
        await websocket.close(code, message)


def _credentialed(ctx: GatewayContext, websocket: WebSocket) -> bool:
    """Whether the upgrade itself carries valid credentials: anonymous sockets holding
    the pending slots do not lock out a caller who has them."""
    try:
        ctx.authenticate(websocket.headers)
    except SmithersError:
        return False
    return not ctx.is_open


def websocket_routes(ctx: GatewayContext, table: MethodTable, sockets: Sockets) -> list[Any]:
    async def endpoint(websocket: WebSocket) -> None:
        if sockets.closing:
            await _refuse(websocket, "the gateway is closing", 1001)
            return
        if sockets.unauthenticated >= MAX_UNAUTHENTICATED and not _credentialed(ctx, websocket):
            await _refuse(websocket, "too many pending sockets")
            return
        sockets.unauthenticated += 1
        session: Session | None = None
        try:
            await websocket.accept()
            async with anyio.create_task_group() as tasks:
                session = Session(websocket, ctx, table, sockets, tasks)
                sockets.outboxes.add(session.outbox)
                if sockets.closing:  # close_all ran while this one was accepted
                    session.outbox.close(1001, "gateway closing")
                await session.run()
                tasks.cancel_scope.cancel()
        finally:
            if session is not None:
                sockets.outboxes.discard(session.outbox)
                sockets.broadcast.remove(session.outbox)
            if session is None or session.principal is None:
                sockets.unauthenticated -= 1
            else:
                sockets.authenticated -= 1
                ctx.metrics.connections.dec()

    return [WebSocketRoute("/", endpoint), WebSocketRoute("/{path:path}", endpoint)]
