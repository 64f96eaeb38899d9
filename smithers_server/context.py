"""What every route of the server needs: the run service and the app's limits."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from smithers.errors import run_not_found
from smithers.service import RunService
from smithers.web.params import has_nul
from smithers.web.run_endpoints import Limits


@dataclass
class ServerContext:
    service: RunService
    limits: Limits


def run_id_param(request: Request, code: str = "NOT_FOUND") -> str:
    """The `runId` path parameter; one holding a NUL names no run (and is never queried:
    PostgreSQL refuses NUL in text)."""
    run_id: str = request.path_params["runId"]
    if has_nul(run_id):
        raise run_not_found(run_id, code)
    return run_id
