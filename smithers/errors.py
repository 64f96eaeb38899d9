"""SmithersError and the one table that maps its codes to HTTP statuses."""

from __future__ import annotations

import os
from typing import Any

from .tracebacks import user_traceback

STATUS_BY_CODE: dict[str, int] = {
    "INVALID_REQUEST": 400,
    "INVALID_JSON": 400,
    "PAYLOAD_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "URI_TOO_LONG": 414,
    "HEADERS_TOO_LARGE": 431,
    "REQUEST_TIMEOUT": 408,
    "TOO_MANY_STREAMS": 429,
    "RUN_ID_REQUIRED": 400,
    "RUN_NOT_FOUND": 404,
    "RUN_ALREADY_EXISTS": 409,
    "RUN_IN_PROGRESS": 409,
    "RUN_NOT_ACTIVE": 409,
    "NODE_NOT_WAITING": 409,
    "NODE_NOT_FAILED": 409,
    "ALREADY_DECIDED": 409,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "UNAUTHORIZED": 401,
    "FORBIDDEN": 403,
    "WORKFLOW_PATH_OUTSIDE_ROOT": 400,
    "WORKFLOW_LOAD_FAILED": 400,
    "WORKFLOW_INVALID": 400,
    "WORKFLOW_MISMATCH": 409,
    "DB_NOT_CONFIGURED": 400,
    "OUTPUT_NOT_FOUND": 404,
    "TOOL_PATH_ESCAPE": 400,
    "TOOL_COMMAND_FAILED": 500,
    "TOOL_TIMEOUT": 500,
    "TOOL_CANCELLED": 409,
    "TOOL_SANDBOX_UNAVAILABLE": 500,
    "SERVER_NOT_STARTED": 503,
    "SCHEMA_TOO_NEW": 500,
    "SCHEMA_MIGRATION_FAILED": 500,
    "DB_DRIVER_MISSING": 500,
    "SERVER_ERROR": 500,
}


class SmithersError(Exception):
    """An error with a stable code, a human message and optional details."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}

    @property
    def status(self) -> int:
        return STATUS_BY_CODE.get(self.code, 500)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body

    def __repr__(self) -> str:
        return f"SmithersError({self.code!r}, {self.message!r})"


class UsageError(Exception):
    """Bad command-line input: the CLI prints it as one line and exits 2."""


def run_not_found(run_id: str, code: str = "RUN_NOT_FOUND") -> SmithersError:
    """The error for a run id that names no run (`code`: NOT_FOUND on the routes the spec
    says so)."""
    shown = run_id.replace("\x00", "\\u0000")
    return SmithersError(code, f"run {shown!r} not found", {"runId": shown})


def run_not_active(run_id: str, status: str) -> SmithersError:
    """The error for a command on a run that has ended (or cannot take it in `status`)."""
    return SmithersError(
        "RUN_NOT_ACTIVE", f"run {run_id!r} is {status}", {"runId": run_id, "status": status}
    )


def validation_errors(errors: Any) -> list[dict[str, Any]]:
    """A pydantic error list (`ValidationError.errors()`) as plain JSON: loc, msg, type."""
    return [
        {
            "loc": [str(p) for p in err.get("loc", ())],
            "msg": str(err.get("msg")),
            "type": str(err.get("type")),
        }
        for err in errors or []
    ]


def error_json(exc: BaseException, root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The JSON stored for a failure (run error, node error). When the failure was raised
    in the user's code, `traceback` holds its formatted traceback from the user's first
    frame (file names relative to `root` when inside it)."""
    if isinstance(exc, SmithersError):
        body = exc.to_json()
    else:
        body = {"code": "TASK_FAILED", "message": f"{type(exc).__name__}: {exc}"}
    shown = user_traceback(exc, root)
    if shown is not None:
        body["traceback"] = shown
    return body
