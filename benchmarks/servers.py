"""Shared pieces of the HTTP benchmarks: a server subprocess and a small raw HTTP/1.1 client.

Not a benchmark itself. The server under test runs in its own process (`smithers server`)
so that the client and the server do not share a GIL; the client is plain asyncio streams
(keep-alive, chunked decoding, SSE parsing) so that it costs little next to the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """A server in a subprocess, stopped with SIGINT (then SIGKILL) on close."""

    def __init__(
        self,
        argv: Sequence[str],
        port: int,
        *,
        cwd: Path = ROOT,
        env: dict[str, str] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.port = port
        self.cwd = cwd
        self.extra_env = dict(env or {})
        self.log_fd, self.log_path = tempfile.mkstemp(prefix="bench-server-", suffix=".log")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 30.0) -> ServerProcess:
        env = {**os.environ, **self.extra_env}
        env.setdefault("SMITHERS_LOG_LEVEL", "WARNING")
        self.proc = subprocess.Popen(
            self.argv, cwd=self.cwd, stdout=self.log_fd, stderr=subprocess.STDOUT, env=env
        )
        os.close(self.log_fd)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=1) as sock:
                    sock.sendall(f"GET /health HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
                    if sock.recv(64).startswith(b"HTTP/1.1 200"):
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.close()
                raise SystemExit(f"server did not start in {timeout} s:\n{self.output()}")
            time.sleep(0.05)

    def output(self) -> str:
        return Path(self.log_path).read_text(errors="replace")[-4000:]

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        Path(self.log_path).unlink(missing_ok=True)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            print(f"--- server output (tail) ---\n{self.output()}", file=sys.stderr)
        self.close()


def prepare_root(root: Path, *workflows: Path) -> None:
    """Copy workflow files into a scratch root dir (the server writes shadow copies beside
    each workflow it loads, so the repo's own files are left alone)."""
    for workflow in workflows:
        shutil.copy(workflow, root / workflow.name)


def smithers_server(db: str, root: Path = ROOT, port: int | None = None) -> ServerProcess:
    """`smithers server` on a free loopback port, serving workflows under `root`."""
    port = port or free_port()
    argv = [sys.executable, "-m", "smithers_cli", "server", "--host", HOST, "--port", str(port)]
    argv += ["--db", db, "--root", str(root)]
    return ServerProcess(argv, port)


def rss_bytes(pid: int) -> int:
    """Resident set size of a process now (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class HttpError(Exception):
    pass


class Connection:
    """One keep-alive HTTP/1.1 connection: requests in turn, or one SSE stream at a time."""

    def __init__(self, port: int, host: str = HOST) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> Connection:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
            self.writer = None

    async def _send(self, method: str, path: str, body: bytes | None, extra: str = "") -> None:
        if self.writer is None:
            await self.open()
        assert self.writer is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{extra}"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + (body or b""))

    async def _head(self) -> tuple[int, dict[str, str]]:
        assert self.reader is not None
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        return status, headers

    async def _chunks(self, headers: dict[str, str]) -> AsyncIterator[bytes]:
        assert self.reader is not None
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readline()  # the blank line after the last chunk
                    return
                data = await self.reader.readexactly(size + 2)
                yield data[:-2]
        else:
            length = int(headers.get("content-length", "0"))
            if length:
                yield await self.reader.readexactly(length)

    async def request(
        self, method: str, path: str, payload: Any = None
    ) -> tuple[int, dict[str, Any]]:
        body = None if payload is None else json.dumps(payload).encode()
        await self._send(method, path, body)
        status, headers = await self._head()
        data = b"".join([chunk async for chunk in self._chunks(headers)])
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, (json.loads(data) if data else {})

    async def events(self, path: str) -> AsyncIterator[tuple[dict[str, Any], int]]:
        """An SSE stream: each event's data with `time.time_ns()` when its chunk arrived."""
        await self._send("GET", path, None, "Accept: text/event-stream\r\n")
        status, headers = await self._head()
        if status != 200:
            data = b"".join([chunk async for chunk in self._chunks(headers)])
            raise HttpError(f"GET {path}: {status} {data[:200]!r}")
        buffer = b""
        async for chunk in self._chunks(headers):
            received = time.time_ns()
            buffer += chunk
            while b"\n\n" in buffer:
                frame, buffer = buffer.split(b"\n\n", 1)
                for line in frame.split(b"\n"):
                    if line.startswith(b"data: "):
                        yield json.loads(line[6:]), received


TERMINAL_EVENTS = frozenset({"RunFinished", "RunFailed", "RunCancelled"})


async def start_run(conn: Connection, workflow: str, run_input: dict[str, Any]) -> str:
    status, body = await conn.request(
        "POST", "/v1/runs", {"workflowPath": workflow, "input": run_input}
    )
    if status != 200:
        raise HttpError(f"POST /v1/runs: {status} {body}")
    return str(body["runId"])


async def wait_terminal(conn: Connection, run_id: str) -> tuple[str, int]:
    """Follow the run's SSE stream to its end (the server closes it after the terminal
    event); returns the terminal event's type and `time.time_ns()` when it arrived."""
    terminal: tuple[str, int] | None = None
    last = ""
    async for event, received in conn.events(f"/v1/runs/{run_id}/events"):
        last = event["type"]
        if last in TERMINAL_EVENTS and terminal is None:
            terminal = (last, received)
    if terminal is None:
        raise HttpError(f"run {run_id}: SSE stream ended after {last!r}, not a terminal event")
    return terminal


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, q in [0, 100]."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


def summary_ms(values: Sequence[float]) -> str:
    return (
        f"median {statistics.median(values):7.2f} ms   p90 {percentile(values, 90):7.2f} ms   "
        f"p99 {percentile(values, 99):7.2f} ms   min {min(values):7.2f} ms   "
        f"max {max(values):7.2f} ms"
    )
