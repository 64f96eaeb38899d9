"""`smithers runs start` on a database (`--db`): the run is driven here, in the foreground,
until it ends or waits for someone (an approval, a signal, a resume after a pause); then
this process lets it go and says how it goes on. A timer it waits out here."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from smithers.definition import SmithersWorkflow
from smithers.engine import in_thread
from smithers.lifecycle import generate_run_id
from smithers.loader import load_workflow
from smithers.runtime import RunResult, Runtime
from smithers.states import RunStatus
from smithers.store.base import Store

# How often a run parked on a timer is looked at (the runtime adopts it once it is due).
TIMER_LOOK_S = 0.1

Json = dict[str, Any]


async def run_here(
    store: Store,
    workflow_path: Path,
    *,
    input: Any,
    run_id: str | None,
    root: Path,
    allow_network: bool,
    started: Callable[[str], None],
) -> RunResult:
    """Start a run of the workflow file and drive it until it ends or parks on anything
    but a timer; `started(run_id)` once the run exists."""
    workflow = await in_thread(load_workflow, workflow_path)
    the_run = run_id or generate_run_id()

    def resolve(run: Any) -> SmithersWorkflow | None:
        return workflow if run.run_id == the_run else None  # adopt no other run

    async with Runtime(
        store, resolve=resolve, root_dir=str(root), allow_network=allow_network
    ) as runtime:
        await runtime.start(workflow, input=input, run_id=the_run)
        started(the_run)
        while True:
            result = await runtime.wait(the_run)
            if result.status != RunStatus.WAITING_TIMER:
                return result
            await anyio.sleep(TIMER_LOOK_S)


def result_json(result: RunResult) -> Json:
    found: Json = {"runId": result.run_id, "status": result.status}
    if result.error is not None:
        found["error"] = result.error
    return found


def error_message(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message", error))
    return str(error)


def resume_command(workflow: Path, run_id: str, db: str) -> str:
    """The command that drives the run on from where it stands (`db` as shown to people)."""
    return (
        f"smithers up {shlex.quote(os.fspath(workflow))} --run-id {run_id} --resume "
        f"--db {shlex.quote(db)}"
    )


def next_lines(result: Json, blocked: Json | None, workflow: Path, db: str) -> list[str]:
    """How the run stands and the commands that take it on; nothing for a failed or
    cancelled run (an error, said on stderr)."""
    run_id, status = result["runId"], result["status"]
    at = f"--db {shlex.quote(db)}"
    go_on = f"  then it goes on in: {resume_command(workflow, run_id, db)}"
    node = (blocked or {}).get("nodeId")
    if status == RunStatus.FINISHED:
        return [
            f"run {run_id} finished",
            f"  outputs: smithers runs show {run_id} --outputs {at}",
        ]
    if status == RunStatus.WAITING_APPROVAL and node:
        return [
            f"run {run_id} waits for approval of {node}",
            f"  approve: smithers runs approve {run_id} {node} {at}",
            f"  deny:    smithers runs deny {run_id} {node} {at}",
            go_on,
        ]
    if status == RunStatus.WAITING_EVENT and node:
        name = (blocked or {}).get("signalName")
        return [
            f"run {run_id} waits for signal {name}",
            f"  send: smithers runs signal {run_id} {name} --data '{{}}' {at}",
            go_on,
        ]
    if status in (RunStatus.FAILED, RunStatus.CANCELLED):
        return []
    return [f"run {run_id} is {status}", *([go_on] if status == RunStatus.PAUSED else [])]
