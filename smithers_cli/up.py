"""`smithers up`: run a workflow file in the foreground, optionally serving it over HTTP."""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any, TextIO

import anyio

from smithers.commands import cancel_run
from smithers.definition import SmithersWorkflow
from smithers.engine import in_thread
from smithers.errors import SmithersError
from smithers.lifecycle import generate_run_id
from smithers.loader import load_workflow
from smithers.queries import get_run, list_frames
from smithers.runtime import Runtime
from smithers.store.base import Store, open_store
from smithers.store.records import TERMINAL_STATUSES
from smithers.subscriptions import subscribe

from .progress import LiveView, PlainView

EXIT_FINISHED, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


@dataclass
class UpOptions:
    workflow: str
    input: Any
    db: str | None
    run_id: str | None
    resume: bool
    root: str
    allow_network: bool
    serve: bool = False
    host: str = "127.0.0.1"
    port: int = 7331
    exit_on_finish: bool = False
    token: str | None = None


def _hint(run_id: str, db_arg: str, url: str | None) -> Any:
    def hint(p: dict[str, Any]) -> str | None:
        node = p.get("nodeId")
        if p.get("type") == "ApprovalRequested":
            title = (p.get("request") or {}).get("title") or ""
            lines = [
                f"{node}: waiting for approval{': ' + title if title else ''}",
                f"  approve: smithers runs approve {run_id} {node} --db {db_arg}",
                f"  deny:    smithers runs deny {run_id} {node} --db {db_arg}",
            ]
            if url:
                lines.append(f"  or:      curl -X POST {url}/approve/{node}")
            return "\n".join(lines)
        if p.get("type") == "NodeWaitingEvent":
            name = p.get("signalName")
            lines = [
                f"{node}: waiting for signal {name}",
                f"  send: smithers runs signal {run_id} {name} --data '{{}}' --db {db_arg}",
            ]
            if url:
                lines.append(f"  or:   curl -X POST {url}/signals/{name} -d '{{\"data\": {{}}}}'")
            return "\n".join(lines)
        return None

    return hint


def _latest_frame(store: Store, run_id: str) -> dict[str, Any] | None:
    frames = list_frames(store, run_id, limit=1)
    return json.loads(frames[0]["xmlJson"]) if frames else None


async def up(options: UpOptions, out: TextIO = sys.stdout) -> int:
    workflow = load_workflow(options.workflow)
    db = options.db or workflow.db or "smithers.db"
    store = await in_thread(open_store, db)
    db_arg = db if "://" in db else f"sqlite:///{db}"
    run_id = options.run_id
    if options.resume and run_id is None:
        raise SmithersError("INVALID_REQUEST", "--resume needs --run-id")

    the_run: str = run_id or generate_run_id()

    def resolve(run: Any) -> SmithersWorkflow | None:
        return workflow if run.run_id == the_run else None

    interrupted = False
    async with (
        Runtime(
            store,
            resolve=resolve,
            root_dir=os.path.abspath(options.root),
            allow_network=options.allow_network,
        ) as runtime,
        anyio.create_task_group() as tg,
    ):
        server = None
        url = None
        if options.serve:
            # Bind before the run exists: a port in use must not leave a run behind.
            server, url = await _serve(tg, options, workflow, store, the_run, runtime)
        if options.resume:
            previous = await store.run(get_run, store, the_run)
            after = previous.last_seq if previous is not None else -1
            await runtime.resume(the_run, workflow)
        else:
            after = -1
            await runtime.start(workflow, input=options.input, run_id=the_run)
        print(
            f"run {the_run} ({workflow.name}) in {db_arg}" + (f", serving {url}" if url else ""),
            file=out,
            flush=True,
        )
        hint = _hint(the_run, db_arg, url)
        view: PlainView | LiveView = (
            LiveView(out, hint, lambda: _latest_frame(store, the_run), f"{workflow.name} {the_run}")
            if out.isatty()
            else PlainView(out, hint)
        )
        stop = anyio.Event()

        async def on_signals() -> None:
            nonlocal interrupted
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    run = await store.run(get_run, store, the_run)
                    if run is not None and run.status not in TERMINAL_STATUSES:
                        interrupted = True
                        await store.run(cancel_run, store, the_run)
                    stop.set()
                    return

        tg.start_soon(on_signals)
        async for event in subscribe(
            store, the_run, after, is_local=lambda: runtime.is_live(the_run)
        ):
            view.on_event(event.payload)
        view.close()
        result = await store.run(runtime.result, the_run)
        if result.status == "finished":
            print(json.dumps(result.outputs, indent=2, default=str), file=out, flush=True)
        if server is not None and not options.exit_on_finish and not interrupted:
            print(
                f"run {result.status}; still serving {url} (Ctrl-C to exit)",
                file=out,
                flush=True,
            )
            await stop.wait()
        if server is not None:
            server.should_exit = True
            while server.started and not getattr(server, "_smithers_done", False):
                await anyio.sleep(0.02)
        tg.cancel_scope.cancel()
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FINISHED if result.status == "finished" else EXIT_FAILED


async def _serve(
    tg: Any,
    options: UpOptions,
    workflow: SmithersWorkflow,
    store: Store,
    run_id: str,
    runtime: Runtime,
) -> tuple[Any, str]:
    from smithers.auth import configured_token
    from smithers.web.serving import EmbeddedServer, bind_socket, check_bind, uvicorn_config
    from smithers_serve import create_serve_app

    token = configured_token(options.token)
    check_bind(options.host, token, insecure=False)
    app = create_serve_app(
        workflow=workflow, store=store, run_id=run_id, runtime=runtime, auth_token=token
    )
    config = uvicorn_config(app, host=options.host, port=options.port, headers_timeout_ms=30_000)
    server = EmbeddedServer(config)
    sock = bind_socket(options.host, options.port)

    async def run_server() -> None:
        try:
            await server.serve(sockets=[sock])
        finally:
            server._smithers_done = True  # type: ignore[attr-defined]

    tg.start_soon(run_server)
    with anyio.fail_after(30):
        while not server.started:
            if getattr(server, "_smithers_done", False):
                raise SmithersError(
                    "SERVER_ERROR", f"cannot serve on {options.host}:{options.port}"
                )
            await anyio.sleep(0.01)
    port = sock.getsockname()[1]
    shown = f"[{options.host}]" if ":" in options.host else options.host
    return server, f"http://{shown}:{port}"
