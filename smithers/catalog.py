"""The workflows under a root, as `GET /v1/workflows` lists them.

The files: every `.py` under the root, walked without entering symlinked folders, and
leaving out hidden files and folders, `__pycache__`, `node_modules`, virtual environments
(`site-packages`, a folder holding `pyvenv.cfg`), a symlinked file that resolves outside
the root, and any file that does not import from `smithers` (only those define workflows:
the listing imports the rest, and runs nothing else).

Each is loaded as a start loads it (cached by content). A module that defines no workflow
is left out; one that cannot be loaded is listed with `name: null` and its `error`. A
listing waits for the imports at most the load timeout: one still importing then is
listed with a timeout error while its import goes on, once per file however many
listings ask, in threads of its own (a hung import starves no start), and a later listing
finds it loaded. The timeout runs from the start of the import: a listing does not wait
again for an import that already overran it. A file that failed is not imported again by
a listing until a `.py` file under the root changes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread

from .definition import SmithersWorkflow
from .errors import SmithersError
from .loader import NO_WORKFLOW, load_workflow_async, loaded_version

logger = logging.getLogger("smithers.catalog")

SKIPPED_FOLDERS = frozenset({"__pycache__", "node_modules", "site-packages"})
MAX_FILES = 1000
MAX_SOURCE_BYTES = 1_048_576
IMPORTS_SMITHERS = re.compile(rb"^[ \t]*(?:from|import)[ \t]+smithers\b", re.MULTILINE)
# Listing imports run here, not in the loader's pool that starts and resumes use.
_listing_threads = anyio.CapacityLimiter(4)

Entry = dict[str, Any]


def _skipped_folder(folder: Path) -> bool:
    name = folder.name
    return (
        name.startswith(".")
        or name in SKIPPED_FOLDERS
        or folder.is_symlink()
        or (folder / "pyvenv.cfg").exists()
    )


def _source(path: Path, root: Path) -> bytes | None:
    """The bytes of a regular file inside the root, or None."""
    real = path.resolve()
    if not real.is_relative_to(root):
        return None
    try:
        info = real.stat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_SOURCE_BYTES:
            return None
        return real.read_bytes()
    except OSError:
        return None


@dataclass(frozen=True)
class Scan:
    """The files that may define a workflow, `(path relative to the root, sha256 of its
    bytes)`, sorted, at most MAX_FILES; and a fingerprint of every `.py` file walked
    (workflows or not: an import error may be a sibling's)."""

    files: list[tuple[str, str]]
    fingerprint: str


def workflow_files(root: Path) -> Scan:
    """Walk `root` (resolved) for the files a listing loads."""
    found: list[tuple[str, str]] = []
    walked = hashlib.sha256()
    for folder, folders, files in os.walk(root):
        here = Path(folder)
        folders[:] = sorted(name for name in folders if not _skipped_folder(here / name))
        for name in sorted(files):
            if name.startswith(".") or not name.endswith(".py"):
                continue
            data = _source(here / name, root)
            if data is None:
                continue
            path, digest = (here / name).relative_to(root).as_posix(), _digest(data)
            walked.update(f"{path}\0{digest}\0".encode())
            if IMPORTS_SMITHERS.search(data) and len(found) < MAX_FILES:
                found.append((path, digest))
    return Scan(found, walked.hexdigest())


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def input_schema(workflow: SmithersWorkflow, where: str) -> dict[str, Any] | None:
    """The JSON schema of the workflow's input model, or None (no model, or one pydantic
    cannot describe: the workflow is listed all the same)."""
    if workflow.input_model is None:
        return None
    try:
        return workflow.input_model.model_json_schema()
    except Exception:
        logger.warning("no JSON schema for the input model of %s", where, exc_info=True)
        return None


def described(path: str, workflow: SmithersWorkflow) -> Entry:
    return {"path": path, "name": workflow.name, "inputSchema": input_schema(workflow, path)}


def failed(path: str, error: SmithersError) -> Entry:
    return {"path": path, "name": None, "inputSchema": None, "error": error.to_json()}


@dataclass
class _Loading:
    deadline: float
    done: anyio.Event = field(default_factory=anyio.Event)
    entry: Entry | None = None


class Catalog:
    """The listing of one root, for the life of one host lifespan (its imports run in the
    host's task group, so they outlive the request that started them)."""

    def __init__(self, root: Path, timeout_s: float) -> None:
        self.root = root
        self.timeout_s = timeout_s
        self._loading: dict[tuple[str, str], _Loading] = {}
        self._failed: dict[tuple[str, str], Entry] = {}
        self._fingerprint = ""
        self._imports: set[anyio.CancelScope] = set()

    def close(self) -> None:
        """Stop waiting for the imports under way (their threads are abandoned), so the
        host's lifespan ends now, not when a hung import does."""
        for scope in self._imports:
            scope.cancel()

    async def listing(self, tg: anyio.abc.TaskGroup) -> list[Entry]:
        scan = await anyio.to_thread.run_sync(workflow_files, self.root)
        files = scan.files
        if scan.fingerprint != self._fingerprint:
            self._failed.clear()  # a file changed: what failed may load now
            self._fingerprint = scan.fingerprint
        entries: dict[tuple[str, str], Entry | None] = {}
        async with anyio.create_task_group() as waits:
            for key in files:
                waits.start_soon(self._entry, key, tg, entries)
        return [entry for key in files if (entry := entries[key]) is not None]

    async def _entry(
        self,
        key: tuple[str, str],
        tg: anyio.abc.TaskGroup,
        entries: dict[tuple[str, str], Entry | None],
    ) -> None:
        path, digest = key
        cached = loaded_version(path, digest, self.root)
        if cached is not None or key in self._failed:
            entries[key] = described(path, cached) if cached else self._failed[key]
            return
        loading = self._loading.get(key)
        if loading is None:
            loading = self._loading[key] = _Loading(anyio.current_time() + self.timeout_s)
            tg.start_soon(self._load, key, loading)
        # The import has the load timeout from when it started: a listing after the one
        # that started it waits only what is left of that.
        with anyio.move_on_after(loading.deadline - anyio.current_time()):
            await loading.done.wait()
        entries[key] = loading.entry if loading.done.is_set() else self._late(path)

    async def _load(self, key: tuple[str, str], loading: _Loading) -> None:
        path = key[0]
        with anyio.CancelScope() as scope:
            self._imports.add(scope)
            try:
                workflow = await load_workflow_async(
                    path, self.root, timeout_s=None, limiter=_listing_threads
                )
                loading.entry = described(path, workflow)
            except SmithersError as exc:
                if exc.details.get("reason") != NO_WORKFLOW:
                    loading.entry = self._failed[key] = failed(path, exc)
            except Exception as exc:  # never let one file end the host's task group
                logger.exception("listing %s failed", path)
                loading.entry = failed(path, SmithersError("WORKFLOW_LOAD_FAILED", str(exc)))
            finally:
                self._imports.discard(scope)
                del self._loading[key]
                loading.done.set()

    def _late(self, path: str) -> Entry:
        reason = f"the import did not finish within {self.timeout_s:g} s (still loading)"
        return failed(
            path,
            SmithersError(
                "WORKFLOW_LOAD_FAILED",
                f"cannot load workflow {path}: {reason}",
                {"workflowPath": path, "reason": reason},
            ),
        )
