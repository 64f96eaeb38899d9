"""What every route of the server needs: the run host and the app's limits."""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.requests import Request

from smithers.errors import SmithersError
from smithers.host import RunHost
from smithers.web.run_endpoints import Limits, RunTarget

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


@dataclass
class ServerContext:
    host: RunHost
    limits: Limits

    async def locate(self, request: Request, code: str = "NOT_FOUND") -> RunTarget:
        """The run named by the `runId` path parameter (404 with `code` when unknown)."""
        run_id: str = request.path_params["runId"]
        try:
            store = await self.host.find(run_id)
        except SmithersError as exc:
            if exc.code == "RUN_NOT_FOUND" and code != exc.code:
                raise SmithersError(code, f"run {run_id!r} not found", {"runId": run_id}) from None
            raise
        return RunTarget(run_id, store, self.host.runtime(store))
