"""Response frames, and the Gateway's error codes with their HTTP statuses.

One answer shape for every transport: `{"type": "res", "id", "ok", "apiVersion": "v1",
"payload" | "error"}`. The core's codes are renamed to the Gateway's (RUN_NOT_FOUND ->
NOT_FOUND, ALREADY_DECIDED -> AlreadyDecided, ...) so a client sees one vocabulary; the
error object carries the code, the message and the details' fields beside them.
"""

from __future__ import annotations

import json
from typing import Any

from smithers.errors import SmithersError
from smithers.events import Event

from .pushed import pushed_name

API_VERSION = "v1"


def to_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def event_parts(name: str, payload: Any, state_version: int) -> tuple[str, str]:
    """An event frame's text around its `seq`, the one field that differs per socket:
    `head + str(seq) + tail` is `{"type": "event", "event", "payload", "seq",
    "stateVersion", "apiVersion"}`. A broadcast encodes its payload once for all sockets."""
    return event_head(name, to_json(payload)), event_tail(state_version)


def event_head(name: str, payload_text: str) -> str:
    return f'{{"type":"event","event":{to_json(name)},"payload":{payload_text},"seq":'


def event_tail(state_version: int) -> str:
    return f',"stateVersion":{state_version},"apiVersion":"{API_VERSION}"}}'


class RunEventFrames:
    """`run.event` frames' text less the two fields that differ per stream and per socket
    (`streamId`, the frame's `seq`): each event is encoded once for all its streams, not
    once per subscriber. Holds the last `size` events (streams of one run send the same
    events at about the same time)."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.parts: dict[tuple[str, int, int], tuple[str, str]] = {}

    def around_stream_id(self, event: Event) -> tuple[str, str]:
        """`(before, after)`: `before + to_json(streamId) + after` is the frame's head
        (`event_head`) for one stream, whose payload is `{streamId, runId, seq, event,
        payload}`."""
        key = (event.run_id, event.seq, event.timestamp_ms)
        found = self.parts.get(key)
        if found is None:
            rest = to_json(
                {
                    "runId": event.run_id,
                    "seq": event.seq,
                    "event": pushed_name(event),
                    "payload": event.payload,
                }
            )
            before, _, after = event_head("run.event", '{"streamId":\x00').partition("\x00")
            found = self.parts[key] = (before, "," + rest[1:] + after)
            if len(self.parts) > self.size:
                del self.parts[next(iter(self.parts))]
        return found


STATUS_BY_CODE: dict[str, int] = {
    "UNAUTHORIZED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_FOUND": 404,
    "RunNotFound": 404,
    "INVALID_REQUEST": 400,
    "INVALID_FRAME": 400,
    "PROTOCOL_UNSUPPORTED": 400,
    "SeqOutOfRange": 400,
    "ConfirmationRequired": 400,
    "CONFLICT": 409,
    "AlreadyDecided": 409,
    "RUN_NOT_ACTIVE": 409,
    "NODE_NOT_FAILED": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "RateLimited": 429,
}

# Core codes as the Gateway names them; anything else not in STATUS_BY_CODE is a 500.
RENAMED: dict[str, str] = {
    "RUN_NOT_FOUND": "NOT_FOUND",
    "OUTPUT_NOT_FOUND": "NOT_FOUND",
    "ALREADY_DECIDED": "AlreadyDecided",
    "RUN_ALREADY_EXISTS": "CONFLICT",
    "RUN_IN_PROGRESS": "CONFLICT",
    "NODE_NOT_WAITING": "CONFLICT",
    "WORKFLOW_MISMATCH": "CONFLICT",
    "INVALID_JSON": "INVALID_REQUEST",
    "UNSUPPORTED_MEDIA_TYPE": "INVALID_REQUEST",
    "REQUEST_TIMEOUT": "INVALID_REQUEST",
    "RUN_ID_REQUIRED": "INVALID_REQUEST",
    "WORKFLOW_LOAD_FAILED": "INVALID_REQUEST",
    "WORKFLOW_INVALID": "INVALID_REQUEST",
    "DB_NOT_CONFIGURED": "INVALID_REQUEST",
    "TOO_MANY_STREAMS": "RateLimited",
}


def gateway_code(code: str) -> str:
    return RENAMED.get(code, code)


def status_of(code: str) -> int:
    return STATUS_BY_CODE.get(gateway_code(code), 500)


def error_object(exc: SmithersError) -> dict[str, Any]:
    """`{"code", "message", ...details}`; a renamed code keeps the core's as `cause`."""
    code = gateway_code(exc.code)
    found: dict[str, Any] = {"code": code, "message": exc.message}
    found.update((k, v) for k, v in exc.details.items() if k not in found)
    if code != exc.code:
        found["cause"] = exc.code
    return found


def ok_frame(frame_id: str, payload: Any) -> dict[str, Any]:
    return {
        "type": "res",
        "id": frame_id,
        "ok": True,
        "apiVersion": API_VERSION,
        "payload": payload,
    }


def error_frame(frame_id: str, exc: SmithersError) -> dict[str, Any]:
    return {
        "type": "res",
        "id": frame_id,
        "ok": False,
        "apiVersion": API_VERSION,
        "error": error_object(exc),
    }
