"""`smithers runs ...`: operator commands on a database (`--db`) or a server (`--url`)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import anyio

from smithers.auth import configured_token
from smithers.environment import DB_ENV, ROOT_ENV, URL_ENV, from_env
from smithers.errors import SmithersError, UsageError
from smithers.states import RunStatus

from .backends import ApiRuns, DbRuns
from .inputs import json_arg, read_input
from .progress import LiveView, PlainView

Json = dict[str, Any]


def run_status(text: str) -> str:
    """`--status`: one of the run statuses, else a one-line refusal naming them."""
    valid = [status.value for status in RunStatus]
    if text not in valid:
        raise argparse.ArgumentTypeError(f"unknown status {text!r}: one of {', '.join(valid)}")
    return text


def add_parsers(sub: Any) -> None:
    runs = sub.add_parser("runs", help="start, list, watch and act on runs (--db or --url)")
    actions = runs.add_subparsers(dest="action", required=True)
    start = actions.add_parser(
        "start", help="start a run (with --db: driven here until it ends or waits)"
    )
    start.add_argument(
        "workflow", help="the workflow's .py file (with --url: a path in the server's root)"
    )
    given = start.add_mutually_exclusive_group()
    given.add_argument("--input", help="the run input as JSON")
    given.add_argument("--input-file", help="a file holding the run input as JSON")
    start.add_argument("--run-id", help="the run id (default: generated)")
    start.add_argument(
        "--root",
        help="with --db: WORKFLOW is relative to it, tools run in it "
        "(default: $SMITHERS_ROOT, else .)",
    )
    start.add_argument(
        "--allow-network", action="store_true", help="with --db: let bash reach the network"
    )
    listing = actions.add_parser("list", help="runs, newest first")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--status", type=run_status, help="only runs in this status")
    listing.add_argument("--workflow", help="only runs of this workflow (name or .py path)")
    show = actions.add_parser("show", help="one run: status, node summary, state")
    show.add_argument("run_id")
    show.add_argument("--outputs", action="store_true", help="also what its tasks produced")
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
        where = act.add_mutually_exclusive_group()
        where.add_argument(
            "--db",
            help="act on this database directly (URL or SQLite path; default: $SMITHERS_DB)",
        )
        where.add_argument(
            "--url", help="act through this server (http://host:port; default: $SMITHERS_URL)"
        )
        act.add_argument("--token", help="the server's token (default: $SMITHERS_API_KEY)")
        act.add_argument("--json", action="store_true", help="print JSON for scripts")


def where(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """`(db, url)`, one of them set: the flags, else $SMITHERS_URL, else $SMITHERS_DB (a
    server, when there is one, is the way to its runs)."""
    if args.db or args.url:
        return args.db, args.url
    url, db = from_env(URL_ENV), from_env(DB_ENV)
    if url or db:
        return (None, url) if url else (db, None)
    raise UsageError(
        f"where are the runs? pass --url URL or --db URL (or set {URL_ENV} or {DB_ENV})"
    )


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


def print_outputs(items: list[Json], out: TextIO) -> None:
    """`outputs` lines: each finished node (`#iteration` past the first) and its output."""
    nodes = [
        f"{item.get('nodeId')}#{item['iteration']}"
        if item.get("iteration")
        else str(item.get("nodeId"))
        for item in items
    ]
    width = max(map(len, nodes), default=0)
    for index, (node, item) in enumerate(zip(nodes, items, strict=True)):
        label = "outputs" if index == 0 else ""
        output = json.dumps(item.get("output"), ensure_ascii=False)
        print(f"{label:<10}{node:<{width}}  {output}", file=out)
    if not items:
        print("outputs   -", file=out)


def run_command(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    db, url = where(args)
    backend: DbRuns | ApiRuns = (
        DbRuns(db) if db else ApiRuns(str(url), configured_token(args.token))
    )
    try:
        code = _run(backend, args, out)
    except BaseException as exc:
        backend.close(exc)
        raise
    backend.close()
    return code


def _start(backend: DbRuns | ApiRuns, args: argparse.Namespace, out: TextIO) -> int:
    from smithers.store.engines import shown_db_url

    from .start import error_message, next_lines, resume_command

    input = read_input(args)
    if isinstance(backend, ApiRuns):
        run_id = backend.start(args.workflow, input, args.run_id)
        print(json.dumps({"runId": run_id}) if args.json else run_id, file=out)
        return 0
    root = Path(args.root or from_env(ROOT_ENV) or ".").resolve()
    workflow = root / args.workflow
    db = shown_db_url(backend.db)
    started: list[str] = []

    def on_start(run_id: str) -> None:
        started.append(run_id)
        if not args.json:
            print(run_id, file=out, flush=True)

    try:
        result = backend.start(
            workflow,
            input,
            args.run_id,
            root=root,
            allow_network=args.allow_network,
            started=on_start,
        )
    except KeyboardInterrupt:
        if started and not args.json:  # this process lets the run go: say how it goes on
            go_on = resume_command(workflow, started[0], db)
            print(f"run {started[0]} let go; it goes on in: {go_on}", file=out, flush=True)
        raise
    if args.json:
        print(json.dumps(result, indent=2), file=out)
    else:
        blocked = (backend.show(result["runId"]).get("runState") or {}).get("blocked")
        for line in next_lines(result, blocked, workflow, db):
            print(line, file=out)
    if result["status"] in (RunStatus.FAILED, RunStatus.CANCELLED):
        said = error_message(result.get("error") or result["status"])
        raise SmithersError("RUN_FAILED", f"run {result['runId']} {result['status']}: {said}")
    return 0


def _run(backend: DbRuns | ApiRuns, args: argparse.Namespace, out: TextIO) -> int:
    def emit(data: Any) -> None:
        print(json.dumps(data, indent=2), file=out)

    action = args.action
    if action == "start":
        return _start(backend, args, out)
    if action == "list":
        rows = backend.list_runs(args.limit, args.status, args.workflow)
        emit(rows) if args.json else print_table(rows, out)
    elif action == "show":
        view = backend.show(args.run_id)
        outputs = backend.outputs(args.run_id) if args.outputs else None
        if args.json:
            emit(view if outputs is None else {**view, "outputs": outputs})
        else:
            print_run(view, out)
            if outputs is not None:
                print_outputs(outputs, out)
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
