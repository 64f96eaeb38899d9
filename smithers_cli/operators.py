"""`smithers runs ...`: operator commands on a database (`--db`) or a server (`--url`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Any, TextIO

import anyio

from smithers.errors import UsageError

from .progress import LiveView, PlainView

Json = dict[str, Any]


def add_parsers(sub: Any) -> None:
    runs = sub.add_parser("runs", help="list, watch and act on runs (--db or --url)")
    actions = runs.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="runs, newest first")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--status")
    show = actions.add_parser("show", help="one run: status, node summary, state")
    show.add_argument("run_id")
    watch = actions.add_parser("watch", help="follow a run's events until it ends")
    watch.add_argument("run_id")
    for name in ("approve", "deny"):
        act = actions.add_parser(name, help=f"{name} a node that waits for approval")
        act.add_argument("run_id")
        act.add_argument("node_id")
        act.add_argument("--iteration", type=int, default=0)
        act.add_argument("--note")
        act.add_argument("--by", dest="decided_by")
        act.add_argument("--decision", help="the decision as JSON (select / rank modes)")
    sig = actions.add_parser("signal", help="deliver a named signal")
    sig.add_argument("run_id")
    sig.add_argument("name")
    sig.add_argument("--data", default="{}", help="the signal's data as JSON")
    sig.add_argument("--correlation-id")
    for name, text in (("cancel", "cancel a run"), ("resume", "resume a run (--url)")):
        actions.add_parser(name, help=text).add_argument("run_id")
    for act in actions.choices.values():
        where = act.add_mutually_exclusive_group(required=True)
        where.add_argument("--db", help="act on this database directly (URL or SQLite path)")
        where.add_argument("--url", help="act through this server (http://host:port)")
        act.add_argument("--token", help="the server's token (default: $SMITHERS_API_KEY)")
        act.add_argument("--json", action="store_true", help="print JSON for scripts")


def json_arg(flag: str, text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{flag} is not valid JSON: {exc.msg} at position {exc.pos}") from None


class DbRuns:
    """The operator commands on a database, through the run service. Its calls are async:
    a blocking portal runs them for this synchronous command line."""

    def __init__(self, db: str) -> None:
        from anyio.from_thread import start_blocking_portal

        from smithers import open_store
        from smithers.service import RunService

        self._portal = start_blocking_portal()
        self.portal = self._portal.__enter__()
        self.service = RunService.for_store(open_store(db))

    def close(self) -> None:
        self._portal.__exit__(None, None, None)

    def list(self, limit: int, status: str | None) -> list[Json]:
        return self.portal.call(partial(self.service.list_runs, limit=limit, status=status))

    def show(self, run_id: str) -> Json:
        return self.portal.call(partial(self.service.view, run_id, not_found="RUN_NOT_FOUND"))

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
        raise UsageError(
            "resume needs a process that runs the workflow: use --url, or "
            f"`smithers up WORKFLOW.py --run-id {run_id} --resume`"
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

    def list(self, limit: int, status: str | None) -> list[Json]:
        return self.client.list_runs(limit=limit, status=status)

    def show(self, run_id: str) -> Json:
        return self.client.get_run(run_id)

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

    def close(self) -> None:
        self.client.close()

    def latest_frame(self, run_id: str) -> Json | None:
        frames = self.client.frames(run_id, limit=1)
        return json.loads(frames[0]["xmlJson"]) if frames else None

    async def follow(self, run_id: str) -> AsyncIterator[Json]:
        from smithers_server.client import AsyncSmithersClient

        async with AsyncSmithersClient(self.url, token=self.token) as client:
            async for event in client.events(run_id):
                yield event


def _ms(value: Any) -> str:
    if not value:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(int(value) / 1000))


def print_table(rows: list[Json], out: TextIO) -> None:
    header = ("RUN ID", "WORKFLOW", "STATUS", "STATE", "STARTED", "FINISHED")
    lines = [
        (
            str(r.get("runId")),
            str(r.get("workflowName")),
            str(r.get("status")),
            str((r.get("runState") or {}).get("state", "")),
            _ms(r.get("startedAtMs")),
            _ms(r.get("finishedAtMs")),
        )
        for r in rows
    ]
    widths = [max([len(h), *(len(line[i]) for line in lines)]) for i, h in enumerate(header)]
    for line in (header, *lines):
        print(
            "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip(),
            file=out,
        )


def print_run(view: Json, out: TextIO) -> None:
    state = view.get("runState") or {}
    print(f"run       {view.get('runId')}", file=out)
    print(f"workflow  {view.get('workflowName')}", file=out)
    print(f"status    {view.get('status')} ({state.get('state')})", file=out)
    print(f"started   {_ms(view.get('startedAtMs'))}", file=out)
    print(f"finished  {_ms(view.get('finishedAtMs'))}", file=out)
    summary = ", ".join(f"{k} {v}" for k, v in sorted((view.get("summary") or {}).items()))
    print(f"nodes     {summary or '-'}", file=out)
    if state.get("blocked"):
        print(f"waits on  {json.dumps(state['blocked'])}", file=out)
    if view.get("error"):
        print_error(view["error"], out)


def print_error(error: Any, out: TextIO) -> None:
    """A run's error: its message, the node that failed it, and the traceback of the
    user's code when it has one."""
    if not isinstance(error, dict):
        print(f"error     {error}", file=out)
        return
    print(f"error     {error.get('message', error)}", file=out)
    if error.get("nodeId"):
        print(f"node      {error['nodeId']} (iteration {error.get('iteration', 0)})", file=out)
    shown = error.get("traceback")
    if isinstance(shown, str) and shown:
        print(shown.rstrip("\n"), file=out)


def run_command(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    backend: DbRuns | ApiRuns = (
        DbRuns(args.db)
        if args.db
        else ApiRuns(args.url, args.token or os.environ.get("SMITHERS_API_KEY"))
    )

    try:
        return _run(backend, args, out)
    finally:
        backend.close()


def _run(backend: DbRuns | ApiRuns, args: argparse.Namespace, out: TextIO) -> int:
    def emit(data: Any) -> None:
        print(json.dumps(data, indent=2), file=out)

    action = args.action
    if action == "list":
        rows = backend.list(args.limit, args.status)
        emit(rows) if args.json else print_table(rows, out)
    elif action == "show":
        view = backend.show(args.run_id)
        emit(view) if args.json else print_run(view, out)
    elif action in ("approve", "deny"):
        emit(
            backend.decide(
                args.run_id,
                args.node_id,
                action == "approve",
                iteration=args.iteration,
                note=args.note,
                decided_by=args.decided_by,
                decision=json_arg("--decision", args.decision),
            )
        )
    elif action == "signal":
        emit(
            backend.signal(
                args.run_id, args.name, json_arg("--data", args.data), args.correlation_id
            )
        )
    elif action == "cancel":
        emit(backend.cancel(args.run_id))
    elif action == "resume":
        emit(backend.resume(args.run_id))
    elif action == "watch":
        return anyio.run(_watch, backend, args.run_id, args.json, out)
    return 0


async def _watch(backend: DbRuns | ApiRuns, run_id: str, as_json: bool, out: TextIO) -> int:
    def no_hint(payload: Json) -> str | None:
        if payload.get("type") == "ApprovalRequested":
            return f"{payload.get('nodeId')}: waiting for approval"
        return None

    view: PlainView | LiveView | None = None
    if not as_json:
        view = (
            LiveView(out, no_hint, lambda: backend.latest_frame(run_id), run_id)
            if out.isatty()
            else PlainView(out, no_hint)
        )
    last = None
    async for payload in backend.follow(run_id):
        last = payload.get("type")
        if view is None:
            print(json.dumps(payload), file=out, flush=True)
        else:
            view.on_event(payload)
    if view is not None:
        view.close()
    return 0 if last == "RunFinished" else 1
