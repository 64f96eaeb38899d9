"""The two ways `smithers runs` reaches runs: a database (`--db`, through the run service)
and a server (`--url`, through its HTTP client)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import Any

from smithers.errors import UsageError

Json = dict[str, Any]


class DbRuns:
    """The operator commands on a database, through the run service. Its calls are async:
    a blocking portal runs them for this synchronous command line."""

    def __init__(self, db: str) -> None:
        from anyio.from_thread import start_blocking_portal

        from smithers import open_store
        from smithers.service import RunService

        self.db = db
        self.store = open_store(db)
        self._portal = start_blocking_portal()
        self.portal = self._portal.__enter__()
        self.service = RunService.for_store(self.store)

    def close(self, failed: BaseException | None = None) -> None:
        """Stop the portal: wait for its work, or cancel it when the command `failed`
        (Ctrl-C while a run is driven here)."""
        if failed is None:
            self._portal.__exit__(None, None, None)
        else:
            self._portal.__exit__(type(failed), failed, failed.__traceback__)
        self.store.close()

    def start(
        self,
        workflow: Path,
        input: Any,
        run_id: str | None,
        *,
        root: Path,
        allow_network: bool,
        started: Callable[[str], None],
    ) -> Json:
        """Start a run and drive it here until it ends or waits for someone (`start.py`)."""
        from .start import result_json, run_here

        drive = partial(
            run_here,
            self.store,
            workflow,
            input=input,
            run_id=run_id,
            root=root,
            allow_network=allow_network,
            started=started,
        )
        return result_json(self.portal.call(drive))

    def list_runs(self, limit: int, status: str | None, workflow: str | None) -> list[Json]:
        if workflow is not None and workflow.endswith(".py"):
            workflow = os.path.realpath(workflow)  # as runs record their file
        listing = partial(self.service.list_runs, limit=limit, status=status, workflow=workflow)
        return self.portal.call(listing)

    def show(self, run_id: str) -> Json:
        return self.portal.call(partial(self.service.view, run_id, not_found="RUN_NOT_FOUND"))

    def outputs(self, run_id: str) -> list[Json]:
        return self.portal.call(self.service.output_list, run_id)

    def decide(self, run_id: str, node_id: str, approved: bool, **fields: Any) -> Json:
        decide = partial(self.service.decide, run_id, node_id, approved=approved, **fields)
        return self.portal.call(decide).to_json()

    def signal(self, run_id: str, name: str, data: Any, correlation_id: str | None) -> Json:
        send = partial(
            self.service.signal,
            run_id,
            name,
            data,
            correlation_id=correlation_id,
            received_by="cli",
        )
        return self.portal.call(send)

    def cancel(self, run_id: str) -> Json:
        self.portal.call(self.service.cancel, run_id)
        return {"runId": run_id, "status": "cancelled"}

    def resume(self, run_id: str) -> Json:
        from smithers.store.engines import shown_db_url

        raise UsageError(
            "resume needs a process that runs the workflow: use --url, or "
            f"`smithers up WORKFLOW.py --run-id {run_id} --resume --db {shown_db_url(self.db)}`"
        )

    def latest_frame(self, run_id: str) -> Json | None:
        frames = self.portal.call(partial(self.service.frames, run_id, limit=1))
        return json.loads(frames[0]["xmlJson"]) if frames else None

    async def follow(self, run_id: str) -> AsyncIterator[Json]:
        at = await self.service.locate(run_id, "RUN_NOT_FOUND")
        async for event in self.service.events(at):
            if event is not None:
                yield {**event.payload, "seq": event.seq}


class ApiRuns:
    """The operator commands, through a server's HTTP API."""

    def __init__(self, url: str, token: str | None) -> None:
        from smithers_server.client import SmithersClient

        self.url = url
        self.token = token
        self.client = SmithersClient(url, token=token)

    def start(self, workflow: str, input: Any, run_id: str | None) -> str:
        return self.client.start_run(workflow, input, run_id=run_id)

    def list_runs(self, limit: int, status: str | None, workflow: str | None) -> list[Json]:
        return self.client.list_runs(limit=limit, status=status, workflow=workflow)

    def show(self, run_id: str) -> Json:
        return self.client.get_run(run_id)

    def outputs(self, run_id: str) -> list[Json]:
        return self.client.outputs(run_id)

    def decide(self, run_id: str, node_id: str, approved: bool, **fields: Any) -> Json:
        act = self.client.approve if approved else self.client.deny
        return act(run_id, node_id, **fields)

    def signal(self, run_id: str, name: str, data: Any, correlation_id: str | None) -> Json:
        return self.client.signal(
            run_id, name, data, correlation_id=correlation_id, received_by="cli"
        )

    def cancel(self, run_id: str) -> Json:
        return self.client.cancel(run_id)

    def resume(self, run_id: str) -> Json:
        return self.client.resume(run_id)

    def close(self, failed: BaseException | None = None) -> None:
        self.client.close()

    def latest_frame(self, run_id: str) -> Json | None:
        frames = self.client.frames(run_id, limit=1)
        return json.loads(frames[0]["xmlJson"]) if frames else None

    async def follow(self, run_id: str) -> AsyncIterator[Json]:
        from smithers_server.client import AsyncSmithersClient

        async with AsyncSmithersClient(self.url, token=self.token) as client:
            async for event in client.events(run_id):
                yield event
