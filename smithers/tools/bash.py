"""`bash`: run one program (no shell) confined to the run's root, streaming its output lines.

The confinement itself is `sandbox.py`; this module resolves the working directory,
spawns bwrap, streams and bounds the output, and enforces the timeout and cancellation
by killing the bwrap process we spawned, which takes the command's whole PID namespace
with it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel

from ..errors import SmithersError
from ..tasks import TaskContext, current_task
from .sandbox import Confinement, confined, require_bwrap, sandbox_unavailable

_POLL_S = 0.1
_READ_CHUNK = 65_536
_TAIL_BYTES = 4_096
_MAX_LINE_BYTES = 65_536
# Once bwrap has exited its PID namespace is gone; a pipe still open after this long
# belongs to nothing we wait for.
_EXIT_GRACE_S = 1.0


class ToolCommandFailed(SmithersError):
    """The command ran and exited non-zero (or could not be executed)."""

    def __init__(self, message: str, exit_code: int, details: dict[str, Any]) -> None:
        super().__init__("TOOL_COMMAND_FAILED", message, {"exitCode": exit_code, **details})
        self.exit_code = exit_code


class _Stream:
    """One output pipe: keeps the first `limit` bytes, a rolling tail, and emits lines."""

    def __init__(self, name: str, limit: int, on_line: Callable[[str, str], None]) -> None:
        self.name = name
        self.limit = limit
        self.on_line = on_line
        self.kept = bytearray()
        self.tail = bytearray()
        self.partial = bytearray()
        self.truncated = False

    def feed(self, chunk: bytes) -> None:
        self.tail += chunk
        del self.tail[:-_TAIL_BYTES]
        if self.truncated:
            return  # keep draining so the child never blocks on a full pipe
        room = self.limit - len(self.kept)
        cut = len(chunk) > room
        chunk = chunk[:room]
        self.kept += chunk
        self.partial += chunk
        *lines, rest = self.partial.split(b"\n")
        for line in lines:
            self.on_line(line.decode(errors="replace"), self.name)
        self.partial = bytearray(rest)
        if cut:
            self.truncated = True
            self.flush()
            self.on_line(f"[{self.name} truncated at {self.limit} bytes]", self.name)
        elif len(self.partial) >= _MAX_LINE_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.partial:
            self.on_line(self.partial.decode(errors="replace"), self.name)
            self.partial.clear()

    def text(self) -> str:
        return self.kept.decode(errors="replace")

    def tail_text(self) -> str:
        return self.tail.decode(errors="replace")


def _has_exited(pid: int) -> bool:
    # WNOWAIT leaves the zombie in place: its pid, and so the process group id, cannot be
    # reused before we have killed the group.
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _pump(
    proc: subprocess.Popen[bytes],
    streams: list[_Stream],
    deadline: float,
    stops: list[threading.Event],
) -> str | None:
    """Read both pipes until the command is done; `"timeout"`/`"cancelled"` if cut short."""
    assert proc.stdout is not None and proc.stderr is not None
    with selectors.DefaultSelector() as sel:
        for pipe, stream in zip((proc.stdout, proc.stderr), streams, strict=True):
            sel.register(pipe.fileno(), selectors.EVENT_READ, stream)
        exited_at: float | None = None
        while True:
            if any(stop.is_set() for stop in stops):
                return "cancelled"
            now = time.monotonic()
            if now >= deadline:
                return "timeout"
            if exited_at is None and _has_exited(proc.pid):
                exited_at = now
                _kill_group(proc.pid)  # background children do not outlive the call
            if exited_at is not None and (not sel.get_map() or now - exited_at > _EXIT_GRACE_S):
                return None
            wait = min(_POLL_S, deadline - now)
            if not sel.get_map():
                time.sleep(wait)
                continue
            for key, _ in sel.select(wait):
                chunk = os.read(key.fd, _READ_CHUNK)
                if chunk:
                    key.data.feed(chunk)
                else:
                    sel.unregister(key.fd)


@dataclass(frozen=True)
class _Call:
    """One call's arguments, as given (None: from the task, or the default)."""

    cmd: str
    args: Sequence[str]
    cwd: str | None
    timeout_ms: int
    max_output_bytes: int
    allow_network: bool | None
    root_dir: str | None


def _run(tctx: TaskContext | None, stop: threading.Event | None, call: _Call) -> str:
    call_id = "tc_" + secrets.token_hex(8)

    def emit(type_: str, **fields: Any) -> None:
        if tctx is not None:
            tctx.emit(
                type_,
                nodeId=tctx.node_id,
                iteration=tctx.iteration,
                toolCallId=call_id,
                toolName="bash",
                **fields,
            )

    emit("ToolCallStarted")
    try:
        out = _execute(tctx, stop, call)
    except SmithersError as exc:
        emit("ToolCallFinished", status="error", error=exc.to_json())
        raise
    except BaseException as exc:
        emit("ToolCallFinished", status="error", error={"code": "TOOL_FAILED", "message": str(exc)})
        raise
    emit("ToolCallFinished", status="ok")
    return out


def _execute(tctx: TaskContext | None, stop: threading.Event | None, call: _Call) -> str:
    cmd, args, cwd, timeout_ms = call.cmd, call.args, call.cwd, call.timeout_ms
    root_dir, allow_network = call.root_dir, call.allow_network
    if root_dir is None:
        root_dir = tctx.root_dir if tctx is not None else os.getcwd()
    if allow_network is None:
        allow_network = tctx.allow_network if tctx is not None else False
    root = Path(root_dir).resolve()
    workdir = (root / (cwd or ".")).resolve()
    if not workdir.is_relative_to(root):
        raise SmithersError(
            "TOOL_PATH_ESCAPE",
            f"bash: cwd {cwd!r} resolves outside the root",
            {"cwd": cwd},
        )
    if not workdir.is_dir():
        raise SmithersError("INVALID_REQUEST", f"bash: cwd {cwd!r} is not a directory")
    bwrap = require_bwrap()
    box = Confinement(root, workdir, allow_network)

    def on_line(text: str, stream: str) -> None:
        if tctx is not None:
            tctx.log(text, stream=stream)

    streams = [_Stream(name, call.max_output_bytes, on_line) for name in ("stdout", "stderr")]

    def tails() -> dict[str, Any]:
        return {
            "cmd": cmd,
            "stdoutTail": streams[0].tail_text(),
            "stderrTail": streams[1].tail_text(),
        }

    stops = [e for e in (stop, tctx.cancelled if tctx is not None else None) if e is not None]
    if any(e.is_set() for e in stops):
        raise SmithersError("TOOL_CANCELLED", "bash: cancelled before start", {"cmd": cmd})
    with confined(bwrap, box, [cmd, *args]) as (argv, fds):
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=fds,
                start_new_session=True,
            )
        except OSError as exc:
            raise sandbox_unavailable(f"cannot start {bwrap}: {exc.strerror}") from exc
    with proc:
        try:
            reason = _pump(proc, streams, time.monotonic() + timeout_ms / 1000, stops)
        finally:
            if proc.returncode is None:  # not reaped yet, so the group id is still ours
                _kill_group(proc.pid)
            proc.wait()
    for stream in streams:
        stream.flush()
    if reason == "timeout":
        raise SmithersError(
            "TOOL_TIMEOUT", f"bash: {cmd!r} timed out after {timeout_ms} ms", tails()
        )
    if reason == "cancelled":
        raise SmithersError("TOOL_CANCELLED", f"bash: {cmd!r} was cancelled", tails())
    if proc.returncode != 0:
        raise ToolCommandFailed(
            f"bash: {cmd!r} exited with status {proc.returncode}", proc.returncode, tails()
        )
    return streams[0].text()


def bash(
    cmd: str,
    args: Sequence[str] = (),
    cwd: str | None = None,
    timeout_ms: int = 60_000,
    max_output_bytes: int = 200_000,
    allow_network: bool | None = None,
    root_dir: str | None = None,
) -> str:
    """Run `[cmd, *args]` (no shell) in the run's root and return its stdout."""
    call = _Call(cmd, args, cwd, timeout_ms, max_output_bytes, allow_network, root_dir)
    return _run(current_task.get(), None, call)


async def bash_async(
    cmd: str,
    args: Sequence[str] = (),
    cwd: str | None = None,
    timeout_ms: int = 60_000,
    max_output_bytes: int = 200_000,
    allow_network: bool | None = None,
    root_dir: str | None = None,
) -> str:
    """`bash` on a worker thread; cancelling the caller kills the command's process group."""
    stop = threading.Event()
    run = functools.partial(
        _run,
        current_task.get(),
        stop,
        _Call(cmd, args, cwd, timeout_ms, max_output_bytes, allow_network, root_dir),
    )

    async def stop_when_cancelled() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            stop.set()

    outcome: str | Exception
    async with anyio.create_task_group() as tg:
        tg.start_soon(stop_when_cancelled)
        # Not abandonable: the thread always runs to the end, so on cancellation the group
        # is killed and reaped before the cancellation reaches our caller.
        try:
            outcome = await anyio.to_thread.run_sync(run)
        except Exception as exc:
            outcome = exc
        tg.cancel_scope.cancel()
    await anyio.lowlevel.checkpoint_if_cancelled()
    if isinstance(outcome, Exception):
        raise outcome
    return outcome
