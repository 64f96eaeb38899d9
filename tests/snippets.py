"""Run the code blocks of README.md and docs/*.md as a reader would.

```python blocks of one document run in order in one namespace, in a fresh process whose
working folder holds a copy of `examples/` (top-level `await` allowed, as in the asyncio
REPL). A document whose blocks define `test_*` functions is a test module: pytest runs it,
and every test must pass (a skip is a failure: the reader's copy would not skip).

```sh blocks run line by line in a shell, as a reader types them into terminals (`export`s
hold for the lines after them): a command that exits must exit 0; one still running after
`SETTLE_S` (a server, or `smithers up` parked on an approval) goes on in the background, as
in "another shell", and the next line runs. Each port 73xx becomes a free port. `RUN_ID`
becomes the last run id a command printed. Background commands must still be alive, or have
exited 0, when the block ends. A server started without `--port` gets the free port too.
`make run` runs the repository's Makefile with the database in the reader's folder; `make
test` is what `.ci/run` runs, so CI itself is its test.

A python block whose first line is a comment naming a file (`# app.py`) is also written to
that file in the reader's folder, for the commands of the document to use.

```console blocks are terminal sessions: their `$ ` lines run as the lines of an sh block
(what follows them is sample output, not checked).

```text, ```json and unlabelled blocks are output or synopses, not code.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import ROOT

RUNNABLE = {"python", "sh", "console"}
SETTLE_S = 4.0
COMMAND_TIMEOUT_S = 60.0
RUN_ID = re.compile(r"\bsmi_[0-9A-Za-z_-]+")


@dataclass(frozen=True)
class Block:
    doc: str  # path relative to the repository
    line: int  # line of the opening fence
    lang: str
    code: str

    @property
    def name(self) -> str:
        return f"{self.doc}:{self.line}"


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(path: Path) -> list[Block]:
    found: list[Block] = []
    lang: str | None = None
    start = 0
    body: list[str] = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fence = line.lstrip()
        if fence.startswith("```"):
            if lang is None:
                lang, start, body = fence[3:].strip() or "text", number, []
            else:
                doc = str(path.relative_to(ROOT))
                found.append(Block(doc, start, lang, textwrap.dedent("\n".join(body)) + "\n"))
                lang = None
        elif lang is not None:
            body.append(line)
    assert lang is None, f"{path}: a code block opened at line {start} is never closed"
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def reader_folder(tmp: Path) -> Path:
    """A working folder as a reader's checkout: the examples, nothing of ours."""
    shutil.copytree(ROOT / "examples", tmp / "examples", ignore=shutil.ignore_patterns("*.db*"))
    return tmp


def reader_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMITHERS_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["XDG_STATE_HOME"] = str(tmp / "state")
    env["PYTHONPATH"] = str(ROOT)
    env["NO_COLOR"] = "1"
    return env


# Blocks with top-level `await` run on one event loop that lives through the document (what
# they start stays usable by the next block); the others run as plain code, so a block may
# call `anyio.run` itself.
PYTHON_RUNNER = """\
import ast, asyncio, inspect, json, sys, threading

loop = asyncio.new_event_loop()
threading.Thread(target=loop.run_forever, daemon=True).start()
namespace = {"__name__": "__main__"}
for name, code in json.load(open(sys.argv[1])):
    compiled = compile(code, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    if compiled.co_flags & inspect.CO_COROUTINE:
        asyncio.run_coroutine_threadsafe(eval(compiled, namespace), loop).result()
    else:
        exec(compiled, namespace)
"""

FILE_NAME = re.compile(r"# ([\w./-]+\.py)\n")


def write_files(doc: str, folder: Path) -> None:
    """A python block whose first line names a file (`# app.py`) is that file, for the
    commands of the document to use."""
    for block in blocks(ROOT / doc):
        named = FILE_NAME.match(block.code) if block.lang == "python" else None
        if named:
            (folder / named.group(1)).write_text(block.code)


def run_python(doc_blocks: list[Block], tmp: Path) -> subprocess.CompletedProcess[str]:
    import json

    folder = reader_folder(tmp)
    write_files(doc_blocks[0].doc, folder)
    env = reader_env(tmp)
    if any(re.search(r"^(async )?def test_", b.code, re.M) for b in doc_blocks):
        module = folder / "test_snippets.py"
        module.write_text("\n\n".join(f"# {b.name}\n{b.code}" for b in doc_blocks))
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(module)]
    else:
        (folder / "blocks.json").write_text(json.dumps([[b.name, b.code] for b in doc_blocks]))
        (folder / "run_blocks.py").write_text(PYTHON_RUNNER)
        command = [sys.executable, "run_blocks.py", "blocks.json"]
    return subprocess.run(
        command,
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S * 2,
    )


def shell_lines(code: str, lang: str = "sh") -> list[str]:
    """Commands of a block: continuation lines joined, blank lines and comments dropped."""
    lines: list[str] = []
    pending = ""
    raws = code.splitlines()
    if lang == "console":
        commands: list[str] = []
        for raw in raws:
            if raw.startswith("$ "):
                commands.append(raw[2:])
            elif commands and commands[-1].endswith("\\"):
                commands.append(raw)
        raws = commands
    for raw in raws:
        line = pending + raw
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if line.strip() and not line.lstrip().startswith("#"):
            lines.append(line.strip())
    return lines


@dataclass
class Session:
    """The terminals of one sh block."""

    folder: Path
    env: dict[str, str]
    transcript: list[str]
    background: list[tuple[str, subprocess.Popen[str], Path]]
    run_id: str | None = None
    ports: dict[str, int] = field(default_factory=dict)

    def port(self, shown: str = "7331") -> int:
        return self.ports.setdefault(shown, free_port())

    def run(self, line: str) -> None:
        line = self._as_run(line)
        if line is None:
            return
        self.transcript.append(f"$ {line}")
        output = self.folder / f".out-{len(self.transcript)}"
        with output.open("w") as sink:
            proc = subprocess.Popen(
                ["bash", "-c", line],
                cwd=self.folder,
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        try:
            proc.wait(timeout=SETTLE_S)
        except subprocess.TimeoutExpired:
            self.background.append((line, proc, output))
            self._wait_for_port(proc, line)
            self._record(output.read_text())
            return
        out = output.read_text()
        self._record(out)
        assert proc.returncode == 0, f"`{line}` exited {proc.returncode}:\n{out}"

    def _as_run(self, line: str) -> str | None:
        if line.startswith("export "):
            line = re.sub(r"\b73\d\d\b", lambda m: str(self.port(m.group())), line)
            for assignment in shlex.split(line)[1:]:
                name, _, value = assignment.partition("=")
                self.env[name] = value
            self.transcript.append(f"$ {line}")
            return None
        if line.startswith("make test"):
            assert "make test" in (ROOT / ".ci" / "run").read_text()
            return None
        if line.startswith("make run"):
            db = f"sqlite:///{self.folder / 'smithers.db'}"
            line = f"make -C {ROOT} run DB={db} PORT={self.port()}" + line[len("make run") :]
        line = line.partition(" #")[0].strip()  # the comment is for the reader
        line = re.sub(r"\b73\d\d\b", lambda m: str(self.port(m.group())), line)
        serves = line.startswith("smithers server") or (
            line.startswith("smithers up") and "--serve" in line
        )
        if serves and "--port" not in line:
            line = f"{line} --port {self.port()}"
        if self.run_id is not None:
            line = line.replace("RUN_ID", self.run_id)
        return line

    def _wait_for_port(self, proc: subprocess.Popen[str], line: str) -> None:
        """A server in the background: the next line may talk to it."""
        ports = [p for p in self.ports.values() if re.search(rf"\b{p}\b", line)]
        if not ports:
            return  # not a server: a parked `up`, say
        deadline = time.monotonic() + COMMAND_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", ports[0])) == 0:
                    return
            time.sleep(0.05)

    def _record(self, out: str) -> None:
        self.transcript.append(out)
        ids = RUN_ID.findall(out)
        if ids:
            self.run_id = ids[-1]

    def close(self) -> None:
        failures = []
        for line, proc, output in self.background:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                self.transcript.append(f"[{line}, interrupted]\n{output.read_text()}")
                continue
            self.transcript.append(f"[{line}, exited {proc.returncode}]\n{output.read_text()}")
            if proc.returncode != 0:
                failures.append(f"`{line}` exited {proc.returncode}")
        assert not failures, "; ".join(failures) + "\n" + "\n".join(self.transcript)


def run_shell(block: Block, tmp: Path) -> list[str]:
    session = Session(reader_folder(tmp), reader_env(tmp), [], [])
    write_files(block.doc, session.folder)
    try:
        for line in shell_lines(block.code, block.lang):
            session.run(line)
    except BaseException:
        for _, proc, _ in session.background:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        raise
    session.close()
    return session.transcript
