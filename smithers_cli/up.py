"""`smithers up`: run a workflow file in the foreground, optionally serving it over HTTP.

Ctrl-C (SIGINT) and SIGTERM leave the run resumable: it is paused (a task in flight is cut
short and runs again on resume), `up` prints the command that resumes it and exits 130 or
143. With `--cancel-on-exit` the run is cancelled instead.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, TextIO

import anyio

from smithers import commands
from smithers.definition import SmithersWorkflow
from smithers.engine import in_thread
from smithers.errors import SmithersError
from smithers.lifecycle import generate_run_id
from smithers.loader import load_workflow
from smithers.queries import get_run, list_frames, run_events
from smithers.runtime import Runtime
from smithers.store.base import Store, open_store
from smithers.store.engines import shown_db_url
from smithers.subscriptions import subscribe

from .hints import resume_command, waiting_hint
from .progress import LiveView, PlainView

EXIT_FINISHED, EXIT_FAILED = 0, 1
EXIT_ON_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}  # the shell's 128 + number
SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


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
    cancel_on_exit: bool = False


@dataclass
class _Stop:
    """What the first SIGINT or SIGTERM did: `outcome` is `pause`'s or `cancel`'s answer
    (None while no signal came, or when the run had ended by itself)."""

    signal: signal.Signals | None = None
    outcome: str | None = None
    in_flight: bool = False  # the run was running: a task may be cut short
    requested: anyio.Event = field(default_factory=anyio.Event)
    following: anyio.CancelScope = field(default_factory=anyio.CancelScope)

    @property
    def paused(self) -> bool:
        return self.outcome in ("paused", "pause-requested")


async def _on_signals(store: Store, run_id: str, cancel_on_exit: bool, stop: _Stop) -> None:
    """Act on the first SIGINT or SIGTERM; swallow later ones while `up` stops (a second
    Ctrl-C must not break the shutdown with a KeyboardInterrupt)."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for received in signals:
            if stop.requested.is_set():
                continue
            stop.requested.set()
            run = await store.run(get_run, store, run_id)
            if run is None or run.is_terminal:
                continue  # it ended by itself: `up` exits as the run ended
            stop.in_flight = run.status == "running"
            try:
                if cancel_on_exit:
                    outcome = await commands.cancel(store, run_id)
                else:
                    outcome = await commands.pause(store, run_id)
            except SmithersError:  # it ended in between
                continue
            if outcome == "already-terminal":
                continue
            stop.signal, stop.outcome = received, outcome
            if stop.paused:
                # A cancelled run's log ends by itself; a paused one's goes on.
                stop.following.cancel()


async def _begin(
    runtime: Runtime, workflow: SmithersWorkflow, options: UpOptions, run_id: str
) -> tuple[int, list[dict[str, Any]]]:
    """Start the run, or resume it; the seq its events are followed after, and (resuming)
    the events before it."""
    if not options.resume:
        await runtime.start(workflow, input=options.input, run_id=run_id)
        return -1, []
    store = runtime.store
    previous = await store.run(get_run, store, run_id)
    after = previous.last_seq if previous is not None else -1
    events = await store.run(run_events, store, run_id)
    await runtime.resume(run_id, workflow)
    return after, [e.payload for e in events if e.seq <= after]


def _view(
    out: TextIO, store: Store, run_id: str, title: str, shown_db: str, url: str | None
) -> PlainView | LiveView:
    """The live view on a terminal, plain lines anywhere else (and on a dumb terminal,
    which cannot move its cursor)."""
    hint = waiting_hint(run_id, shown_db, url)
    if out.isatty() and os.environ.get("TERM") != "dumb":
        return LiveView(out, hint, lambda: _latest_frame(store, run_id), title)
    return PlainView(out, hint)


def _latest_frame(store: Store, run_id: str) -> dict[str, Any] | None:
    frames = list_frames(store, run_id, limit=1)
    return json.loads(frames[0]["xmlJson"]) if frames else None


async def up(options: UpOptions, out: TextIO = sys.stdout) -> int:
    workflow = load_workflow(options.workflow)
    db = options.db or workflow.db or "smithers.db"
    store = await in_thread(open_store, db)
    shown_db = shown_db_url(db)
    if options.resume and options.run_id is None:
        raise SmithersError("INVALID_REQUEST", "--resume needs --run-id")
    run_id: str = options.run_id or generate_run_id()

    def resolve(run: Any) -> SmithersWorkflow | None:
        return workflow if run.run_id == run_id else None

    stop = _Stop()
    async with anyio.create_task_group() as watching_signals:
        async with (
            Runtime(
                store,
                resolve=resolve,
                root_dir=os.path.abspath(options.root),
                allow_network=options.allow_network,
            ) as runtime,
            anyio.create_task_group() as tg,
        ):
            server = url = None
            if options.serve:
                # Bind before the run exists: a port in use must not leave a run behind.
                server, url = await _serve(tg, options, workflow, store, run_id, runtime)
            after, history = await _begin(runtime, workflow, options, run_id)
            serving = f", serving {url}" if url else ""
            print(f"run {run_id} ({workflow.name}) in {shown_db}{serving}", file=out, flush=True)
            watching_signals.start_soon(_on_signals, store, run_id, options.cancel_on_exit, stop)
            view = _view(out, store, run_id, f"{workflow.name} {run_id}", shown_db, url)
            try:
                view.replay(history)
                with stop.following:
                    async for event in subscribe(
                        store, run_id, after, is_local=lambda: runtime.is_live(run_id)
                    ):
                        view.on_event(event.payload)
            finally:
                view.close("paused" if stop.paused else None)
            result = await store.run(runtime.result, run_id)
            if stop.signal is None:
                if result.status == "finished":
                    print(json.dumps(result.outputs, indent=2, default=str), file=out, flush=True)
                if server is not None and not options.exit_on_finish:
                    print(
                        f"run {result.status}; still serving {url} (Ctrl-C to exit)",
                        file=out,
                        flush=True,
                    )
                    await stop.requested.wait()
            if server is not None:
                server.should_exit = True
                while server.started and not getattr(server, "_smithers_done", False):
                    await anyio.sleep(0.02)
            tg.cancel_scope.cancel()
        # The runtime has let go of the run: a pause asked mid-task is `paused` by now.
        watching_signals.cancel_scope.cancel()
    if stop.signal is None:
        return EXIT_FINISHED if result.status == "finished" else EXIT_FAILED
    if stop.paused:
        command = resume_command(
            options.workflow,
            run_id,
            shown_db if options.db else None,
            root=options.root,
            allow_network=options.allow_network,
        )
        print(
            f"run paused ({SIGNAL_NAMES[stop.signal]}); resume it with:\n  {command}",
            file=out,
            flush=True,
        )
    return _stopped(EXIT_ON_SIGNAL[stop.signal], stop, store, out)


def _stopped(code: int, stop: _Stop, store: Store, out: TextIO) -> int:
    """The exit code after a signal. A task cut short in a worker thread cannot be stopped,
    and Python would wait for it at exit: the run is safe in the database, so leave now."""
    for received in EXIT_ON_SIGNAL:
        signal.signal(received, signal.SIG_IGN)  # the way out is under way: no traceback
    others = [t for t in threading.enumerate() if t is not threading.current_thread()]
    if stop.in_flight and any(t.is_alive() and not t.daemon for t in others):
        store.close()
        out.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


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
