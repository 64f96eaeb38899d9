"""The log lines of runs and tasks: one structured line each (`key=value`), a failure's
traceback on the lines after it.

`smithers.runs` logs a run starting or resuming (INFO), finishing, parking or being
cancelled (INFO) and failing (ERROR); `smithers.tasks` logs a failed attempt (WARNING when
it is retried, ERROR when it fails the node), with the traceback of the user's code.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from . import queries
from .store.base import Store

runs_logger = logging.getLogger("smithers.runs")
tasks_logger = logging.getLogger("smithers.tasks")


def fields(**values: Any) -> str:
    """`key=value` pairs; a value with spaces, quotes or `=` is JSON-quoted, so one line
    stays one line and splits on spaces."""
    parts = []
    for key, value in values.items():
        text = str(value)
        if not text or any(c in text for c in ' "=\n\r\t'):
            text = json.dumps(text)
        parts.append(f"{key}={text}")
    return " ".join(parts)


def _with_traceback(line: str, error: Any) -> str:
    shown = error.get("traceback") if isinstance(error, dict) else None
    return f"{line}\n{shown.rstrip()}" if isinstance(shown, str) and shown else line


def _message(error: Any) -> str:
    return str(error.get("message", error) if isinstance(error, dict) else error)


def run_started(run_id: str, workflow: str, *, resumed: bool = False) -> None:
    event = "run resumed" if resumed else "run started"
    runs_logger.info("%s %s", event, fields(run=run_id, workflow=workflow))


def run_stopped(store: Store, run_id: str, outcome: str) -> None:
    """A line for how a run this process drove stands now: ended or parked (`run
    finished`, `run waiting-approval`, ...); none for a run still running elsewhere.
    `outcome` is the status its driver left it in: unless it failed, the run is read only
    when its line would be logged."""
    if outcome != "failed" and not runs_logger.isEnabledFor(logging.INFO):
        return
    try:
        run = queries.get_run(store, run_id)
    except Exception:  # a log line is not worth failing the engine for
        runs_logger.debug("cannot read run %s to log it", run_id, exc_info=True)
        return
    if run is None or run.status == "running":
        return
    status = run.status
    line = fields(run=run.run_id, workflow=run.workflow_name, status=status)
    if run.finished_at_ms is not None:
        started = run.started_at_ms or run.created_at_ms
        line += " " + fields(duration_ms=max(0, run.finished_at_ms - started))
    if status != "failed":
        runs_logger.info("run %s %s", status, line)
        return
    error = run.error if isinstance(run.error, dict) else {}
    where = {"node": error["nodeId"]} if error.get("nodeId") else {}
    line += " " + fields(**where, code=error.get("code", ""), error=_message(run.error))
    # A task's traceback was logged with its failure; a render's is only here.
    runs_logger.error("run failed %s", line if where else _with_traceback(line, error))


def task_failed(
    run_id: str,
    workflow: str,
    node_id: str,
    iteration: int,
    attempt: int,
    error: Any,
    *,
    retrying: bool,
) -> None:
    line = fields(
        run=run_id,
        workflow=workflow,
        node=node_id,
        iteration=iteration,
        attempt=attempt,
        code=error.get("code", "") if isinstance(error, dict) else "",
        error=_message(error),
    )
    if retrying:
        tasks_logger.warning("task failed, retrying %s", _with_traceback(line, error))
    else:
        tasks_logger.error("task failed %s", _with_traceback(line, error))
