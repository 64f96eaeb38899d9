"""A failure keeps the traceback of the user's code: with the attempt, in `NodeFailed`, in
the run's error and in the log lines of `smithers.tasks` and `smithers.runs`."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from smithers import Store, load_workflow, run_workflow
from smithers.errors import SmithersError, error_json
from smithers.store import log as log_q
from smithers.store.schema import attempts
from smithers.tracebacks import MAX_TRACEBACK_CHARS, user_traceback

pytestmark = pytest.mark.anyio

FLOW = """
import asyncio
import time

from pydantic import BaseModel

from smithers import Task, Workflow, create_smithers
from smithers.errors import SmithersError


class Found(BaseModel):
    value: str


smithers, outputs = create_smithers(found=Found)


def lookup(data):
    return {"value": data["missing"]}


def fetch():
    return lookup({})


async def fetch_later():
    await asyncio.sleep(0)
    return lookup({})


def refuse():
    raise SmithersError("TOOL_COMMAND_FAILED", "the tool said no")


def dawdle():
    time.sleep(1)


def found():
    return {"value": "x"}


@smithers
def workflow(ctx):
    kind = ctx.input.get("kind", "sync")
    if kind == "render":
        lookup({})
    runs = {"sync": fetch, "async": fetch_later, "smithers": refuse, "slow": dawdle, "ok": found}
    run = runs[kind]
    task = Task("fetch", output=outputs.found, run=run, retries=ctx.input.get("retries", 0))
    if kind == "slow":
        task.timeout_ms = 50
    return Workflow("lookup-flow", [task])
"""


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def lookup_frame() -> str:
    line = line_of(FLOW, 'data["missing"]')
    return f'File "flow.py", line {line}, in lookup'


async def run_flow(store: Store, root: Path, **input: Any) -> Any:
    (root / "flow.py").write_text(FLOW)
    workflow = load_workflow(root / "flow.py", root)
    input.setdefault("kind", "sync")
    return await run_workflow(workflow, input=input, store=store, root_dir=str(root))


def failed_events(store: Store, run_id: str) -> list[dict[str, Any]]:
    with store.read() as conn:
        events = log_q.events_after(conn, run_id, -1, limit=1000)
    return [e.payload for e in events if e.type == "NodeFailed"]


def attempt_errors(store: Store, run_id: str) -> list[Any]:
    query = sa.select(attempts.c.error_json).where(attempts.c.run_id == run_id)
    with store.read() as conn:
        return [json.loads(row[0]) for row in conn.execute(query.order_by(attempts.c.attempt))]


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_failed_task_keeps_the_traceback_of_the_users_code(
    store: Store, tmp_path: Path, kind: str
) -> None:
    result = await run_flow(store, tmp_path, kind=kind)
    assert result.status == "failed"
    error = result.error
    assert error["message"] == "KeyError: 'missing'" and error["nodeId"] == "fetch"
    shown = error["traceback"]
    lines = shown.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[1].startswith('  File "flow.py"')  # the task's own function comes first
    assert lookup_frame() in shown
    assert lines[-1] == "KeyError: 'missing'"
    for machinery in ("smithers/", "anyio", "asyncio", "threading"):
        assert machinery not in shown, shown
    # The same error with the attempt and in the event a client follows.
    assert [e["error"] for e in failed_events(store, result.run_id)] == [
        {k: v for k, v in error.items() if k not in ("nodeId", "iteration")}
    ]
    assert attempt_errors(store, result.run_id)[0]["traceback"] == shown


async def test_a_render_that_raises_fails_the_run_with_its_traceback(
    store: Store, tmp_path: Path
) -> None:
    result = await run_flow(store, tmp_path, kind="render")
    assert result.status == "failed" and result.error["code"] == "RENDER_FAILED"
    shown = result.error["traceback"]
    line = line_of(FLOW, "        lookup({})")
    assert f'File "flow.py", line {line}, in workflow' in shown
    assert lookup_frame() in shown and "smithers/" not in shown


async def test_a_smithers_error_raised_in_the_users_code_keeps_code_and_traceback(
    store: Store, tmp_path: Path
) -> None:
    result = await run_flow(store, tmp_path, kind="smithers")
    assert result.error["code"] == "TOOL_COMMAND_FAILED"
    assert ", in refuse\n" in result.error["traceback"]


async def test_the_engines_own_failures_have_no_traceback(store: Store, tmp_path: Path) -> None:
    result = await run_flow(store, tmp_path, kind="slow")
    assert result.error["code"] == "TASK_TIMEOUT"
    assert "traceback" not in result.error


def test_error_json_without_user_frames() -> None:
    assert error_json(SmithersError("TASK_TIMEOUT", "late")) == {
        "code": "TASK_TIMEOUT",
        "message": "late",
    }
    try:
        json.loads("{")  # raised in the standard library, called from here (a user file)
    except ValueError as exc:
        shown = error_json(exc)["traceback"]
    assert "in test_error_json_without_user_frames" in shown
    assert "json/decoder.py" in shown  # frames the user's code called stay


def ping(n: int) -> None:
    pong(n - 1)


def pong(n: int) -> None:
    if n <= 0:
        raise RuntimeError("deep")
    ping(n - 1)


def test_a_deep_traceback_is_cut_to_its_end() -> None:
    try:
        ping(400)  # alternating frames: Python does not fold them
    except RuntimeError as exc:
        shown = user_traceback(exc)
    assert shown is not None
    assert len(shown) <= MAX_TRACEBACK_CHARS + 100
    assert shown.startswith("Traceback (most recent call last):\n  ... (earlier lines cut)\n")
    assert shown.endswith('in pong\n    raise RuntimeError("deep")\nRuntimeError: deep\n')


async def test_failures_are_logged_with_the_traceback(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="smithers")
    result = await run_flow(store, tmp_path, retries=1)
    assert result.status == "failed"
    lines = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    mine = [line for line in lines if result.run_id in line[2]]
    assert [(name, level) for name, level, _ in mine] == [
        ("smithers.runs", logging.INFO),
        ("smithers.tasks", logging.WARNING),
        ("smithers.tasks", logging.ERROR),
        ("smithers.runs", logging.ERROR),
    ]
    started, retried, failed, ended = (text for _, _, text in mine)
    assert started == f"run started run={result.run_id} workflow=lookup-flow"
    first = f"run={result.run_id} workflow=lookup-flow node=fetch iteration=0"
    assert retried.startswith(f"task failed, retrying {first} attempt=1 code=TASK_FAILED")
    assert failed.startswith(f"task failed {first} attempt=2 code=TASK_FAILED")
    assert "error=\"KeyError: 'missing'\"\nTraceback (most recent call last):\n" in failed
    assert lookup_frame() in failed
    assert ended.startswith(f"run failed run={result.run_id} workflow=lookup-flow status=failed")
    assert "duration_ms=" in ended and "node=fetch" in ended and "\n" not in ended


async def test_a_finished_run_logs_its_start_and_end(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="smithers")
    result = await run_flow(store, tmp_path, kind="ok")
    assert result.status == "finished"
    mine = [r.getMessage() for r in caplog.records if result.run_id in r.getMessage()]
    assert mine[0] == f"run started run={result.run_id} workflow=lookup-flow"
    assert mine[1].startswith(f"run finished run={result.run_id} workflow=lookup-flow")
    assert "status=finished duration_ms=" in mine[1] and len(mine) == 2
