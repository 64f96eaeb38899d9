"""What every route of the server needs: the run host, limits and metrics."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from smithers.errors import SmithersError
from smithers.host import RunHost
from smithers.metrics import Metrics
from smithers.store.base import Store
from smithers.web.body import read_json_object

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


@dataclass
class ServerContext:
    host: RunHost
    max_body_bytes: int
    request_timeout_s: float
    keepalive_s: float
    metrics: Metrics | None

    async def body(self, request: Request) -> dict[str, Any]:
        return await read_json_object(request, self.max_body_bytes, self.request_timeout_s)

    async def run_store(self, request: Request, code: str = "NOT_FOUND") -> tuple[str, Store]:
        """The `runId` path parameter and the store holding it (404 with `code` if none)."""
        run_id: str = request.path_params["runId"]
        try:
            return run_id, await self.host.find(run_id)
        except SmithersError as exc:
            if exc.code == "RUN_NOT_FOUND" and code != exc.code:
                raise SmithersError(code, f"run {run_id!r} not found", {"runId": run_id}) from None
            raise
