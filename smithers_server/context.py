"""What every route of the server needs: the run host and the app's limits."""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.requests import Request

from smithers import queries
from smithers.definition import SmithersWorkflow
from smithers.errors import SmithersError, run_not_found
from smithers.host import RunHost
from smithers.web.params import has_nul
from smithers.web.run_endpoints import Limits, RunTarget

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


@dataclass
class ServerContext:
    host: RunHost
    limits: Limits

    async def locate(self, request: Request, code: str = "NOT_FOUND") -> RunTarget:
        """The run named by the `runId` path parameter (404 with `code` when unknown)."""
        run_id = run_id_param(request, code)
        try:
            store = await self.host.find(run_id)
        except SmithersError as exc:
            if exc.code == "RUN_NOT_FOUND" and code != exc.code:
                raise run_not_found(run_id, code) from None
            raise
        return RunTarget(run_id, store, self.host.runtime(store))

    async def workflow_of(self, target: RunTarget) -> SmithersWorkflow | None:
        """The workflow a resume of this run would load (None when it cannot be loaded)."""
        run = await target.store.run(queries.get_run, target.store, target.run_id)
        if run is None:
            return None
        return await self.host.workflow_of(run)


def run_id_param(request: Request, code: str = "NOT_FOUND") -> str:
    """The `runId` path parameter; one holding a NUL names no run (and is never queried:
    PostgreSQL refuses NUL in text)."""
    run_id: str = request.path_params["runId"]
    if has_nul(run_id):
        raise run_not_found(run_id, code)
    return run_id
