"""The OpenAPI 3.1 document of the server's routes."""

from __future__ import annotations

from functools import cache
from typing import Any

from smithers.queries import RUN_STATUSES

ERROR = {"$ref": "#/components/schemas/Error"}


def _op(
    summary: str,
    ok: dict[str, Any],
    errors: tuple[int, ...],
    *,
    body: Any = None,
    params: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": ok}
    for status in (401, 403, *errors):
        responses[str(status)] = {
            "description": "error",
            "content": {"application/json": {"schema": ERROR}},
        }
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": False, "content": {"application/json": {"schema": body}}}
    if params:
        op["parameters"] = params
    return op


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": "ok", "content": {"application/json": {"schema": schema}}}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, kind: str = "integer") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": kind}}


OBJ = {"type": "object"}
# Bodies carry no NUL (in any string or key), no integer outside int64 and no non-finite
# number anywhere: each is a 400 INVALID_REQUEST naming where (`details.field`).
TEXT = {"type": "string", "pattern": "^[^\\u0000]*$"}
INT64 = {"type": "integer", "format": "int64"}
RUN_ID = {"type": "object", "properties": {"runId": {"type": "string"}}, "required": ["runId"]}
DECISION_BODY = {
    "type": "object",
    "properties": {
        "iteration": {**INT64, "minimum": 0},
        "note": TEXT,
        "decidedBy": TEXT,
        "decision": {
            "type": "object",
            "description": "mode select: {selected: an option key}; mode rank: {ranked: "
            "option keys, a non-empty subset, each once}; checked on arrival (400)",
        },
    },
}
SIGNAL_BODY = {
    "type": "object",
    "properties": {
        "data": {"description": "checked against the model the consuming node declares (400)"},
        "correlationId": TEXT,
        "receivedBy": TEXT,
    },
}
DECISION = {
    "type": "object",
    "properties": {
        "runId": {"type": "string"},
        "nodeId": {"type": "string"},
        "iteration": {"type": "integer"},
        "approved": {"type": "boolean"},
    },
}
SIGNAL = {
    "type": "object",
    "properties": {
        "runId": {"type": "string"},
        "seq": {"type": "integer"},
        "signalName": {"type": "string"},
        "correlationId": {"type": ["string", "null"]},
        "receivedAtMs": {"type": "integer"},
    },
}


@cache
def openapi_document() -> dict[str, Any]:
    run = [_path("runId")]
    approvals = _op("Pending approvals, oldest first", _json(OBJ), (400,))
    signal = _op(
        "Deliver a named signal",
        _json(SIGNAL),
        (400, 404, 409, 413, 415),
        body=SIGNAL_BODY,
        params=[*run, _path("signalName")],
    )
    paths: dict[str, Any] = {
        "/health": {
            "get": {"summary": "Liveness", "security": [], "responses": {"200": _json(OBJ)}}
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {"200": {"description": "text exposition"}},
            }
        },
        "/v1/runs": {
            "post": _op(
                "Start a run, or resume one with resume: true",
                _json(RUN_ID),
                (400, 404, 409, 413, 415),
                body={
                    "type": "object",
                    "required": ["workflowPath"],
                    "properties": {
                        "workflowPath": TEXT,
                        "input": {"type": "object"},
                        "runId": {
                            "type": "string",
                            "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$",
                        },
                        "resume": {"type": "boolean"},
                        "config": {
                            "type": "object",
                            "properties": {"maxConcurrency": {**INT64, "minimum": 1}},
                        },
                    },
                },
            ),
            "get": _op(
                "List runs, newest first",
                _json(OBJ),
                (400,),
                params=[
                    _query("limit"),
                    {**_query("status", "string"), "schema": {"enum": sorted(RUN_STATUSES)}},
                    _query("workflow", "string"),
                ],
            ),
        },
        "/v1/runs/{runId}": {
            "get": _op("Run status and node summary", _json(OBJ), (404,), params=run)
        },
        "/v1/runs/{runId}/resume": {
            "post": _op(
                "Resume a parked, paused, failed or stale run (409 WORKFLOW_MISMATCH when "
                "workflowPath names another workflow than the run recorded)",
                _json(OBJ),
                (400, 404, 409, 413, 415),
                body={"type": "object", "properties": {"workflowPath": TEXT}},
                params=run,
            )
        },
        "/v1/runs/{runId}/cancel": {
            "post": _op("Cancel a run", _json(OBJ), (404, 409), params=run)
        },
        "/v1/runs/{runId}/events": {
            "get": _op(
                "Server-sent events of the run",
                {"description": "text/event-stream"},
                (400, 404, 429),
                params=[*run, _query("afterSeq")],
            )
        },
        "/v1/runs/{runId}/frames": {
            "get": _op(
                "Render frames, newest first",
                _json({"type": "array", "items": OBJ}),
                (400, 404),
                params=[*run, _query("limit"), _query("afterFrameNo")],
            )
        },
        "/v1/runs/{runId}/nodes/{nodeId}/approve": {
            "post": _op(
                "Approve a waiting node",
                _json(DECISION),
                (400, 404, 409, 413, 415),
                body=DECISION_BODY,
                params=[*run, _path("nodeId")],
            )
        },
        "/v1/runs/{runId}/nodes/{nodeId}/deny": {
            "post": _op(
                "Deny a waiting node",
                _json(DECISION),
                (400, 404, 409, 413, 415),
                body=DECISION_BODY,
                params=[*run, _path("nodeId")],
            )
        },
        "/v1/runs/{runId}/signals/{signalName}": {"post": signal},
        "/signal/{runId}/{signalName}": {"post": signal},
        "/v1/approvals": {"get": approvals},
        "/v1/approval/list": {"get": approvals},
        "/approval/list": {"get": approvals},
        "/approvals": {"get": approvals},
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": _json(OBJ)}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "smithers-asgi server", "version": "0.1.0"},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "key": {"type": "apiKey", "in": "header", "name": "x-smithers-key"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "details": {"type": "object"},
                            },
                        }
                    },
                }
            },
        },
        "security": [{"bearer": []}, {"key": []}],
    }
