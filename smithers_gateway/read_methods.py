"""RPC methods that read a run's insides: frames, node states, attempts, a node's output;
and `streamRunEvents`, which only the WebSocket transport serves."""

from __future__ import annotations

from typing import Any

from smithers import scopes
from smithers.errors import SmithersError

from .params import GetAttempt, GetFrame, ListAttempts, ListFrames, NodeParams, RunParams
from .rpc import Call, Method, typed


async def list_frames(call: Call, p: ListFrames) -> list[dict[str, Any]]:
    return await call.service.frames(p.runId, limit=p.limit, after_frame_no=p.afterFrameNo)


async def get_frame(call: Call, p: GetFrame) -> dict[str, Any]:
    return await call.service.frame(p.runId, p.frameNo)


async def list_node_states(call: Call, p: RunParams) -> list[dict[str, Any]]:
    return await call.service.node_states(p.runId)


async def list_attempts(call: Call, p: ListAttempts) -> list[dict[str, Any]]:
    return await call.service.attempts(p.runId, p.nodeId, p.iteration)


async def get_attempt(call: Call, p: GetAttempt) -> dict[str, Any]:
    return await call.service.attempt(p.runId, p.nodeId, p.iteration, p.attempt)


async def get_node_output(call: Call, p: NodeParams) -> dict[str, Any]:
    return await call.service.node_output(p.runId, p.nodeId, p.iteration)


async def stream_run_events(call: Call, p: RunParams) -> Any:
    # Reached only over a WebSocket (`ws_only`), whose protocol replaces this method.
    raise SmithersError("INVALID_REQUEST", "streamRunEvents is WebSocket only")


METHODS: list[Method] = [
    typed("listFrames", scopes.RUN_READ, ListFrames, list_frames, "frames.list"),
    typed("getFrame", scopes.RUN_READ, GetFrame, get_frame, "frames.get"),
    typed("listNodeStates", scopes.RUN_READ, RunParams, list_node_states),
    typed("listAttempts", scopes.RUN_READ, ListAttempts, list_attempts, "attempts.list"),
    typed("getAttempt", scopes.RUN_READ, GetAttempt, get_attempt, "attempts.get"),
    typed("getNodeOutput", scopes.RUN_READ, NodeParams, get_node_output),
    typed("streamRunEvents", scopes.RUN_READ, RunParams, stream_run_events, ws_only=True),
]
