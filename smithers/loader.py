"""load_workflow(path): a workflow module loaded from the exact bytes it had when read.

The loader opens nothing but `.py` files inside the root: it never opens (and so never
closes) a database, WAL or SHM file, which would drop SQLite's POSIX locks for the whole
process. It writes nothing beside the user's source: the module is compiled from the bytes
it hashed, under the user's own file name, so tracebacks and errors name the user's file.

Loads of one file queue on that file's lock; loads of other files and cache hits never
wait behind a slow import. `load_workflow_async` bounds an import in time.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import stat
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import anyio
import anyio.to_thread

from .definition import SmithersWorkflow
from .errors import SmithersError

logger = logging.getLogger("smithers.loader")

DEFAULT_LOAD_TIMEOUT_S = 30.0
# The `details.reason` of a module that loads but defines no workflow (a helper module).
NO_WORKFLOW = "no workflow defined (a module attribute `workflow` built with create_smithers)"

_cache: dict[tuple[str, str], SmithersWorkflow] = {}
# What each path (as asked, inside its root) last loaded, by the file's stat then.
_seen: dict[tuple[str, str | None], _Seen] = {}
SEEN_MAX = 1024
# A file changed this recently may change again within one tick of a coarse filesystem
# clock, keeping its stat: it is read and hashed until it has been still this long.
SETTLED_NS = 2_000_000_000
_file_locks: dict[str, threading.Lock] = {}
_guard = threading.Lock()
_path_users: dict[str, int] = {}
# Imports run in threads of their own pool: one that hangs must not starve task threads.
_load_threads = anyio.CapacityLimiter(8)


def resolve_inside(path: str | os.PathLike[str], root_dir: str | os.PathLike[str] | None) -> Path:
    """The real path of `path` (relative to root), refused if it leaves the root."""
    raw = os.fspath(path)
    if "\x00" in raw:
        raise SmithersError(
            "WORKFLOW_PATH_OUTSIDE_ROOT",
            "workflow path contains a NUL byte",
            {"workflowPath": raw.replace("\x00", "\\0")},
        )
    if root_dir is None:
        return Path(raw).resolve()
    root = Path(root_dir).resolve()
    candidate = (root / raw).resolve()
    if candidate != root and root not in candidate.parents:
        raise SmithersError(
            "WORKFLOW_PATH_OUTSIDE_ROOT",
            "workflow path resolves outside the root directory",
            {"workflowPath": raw},
        )
    return candidate


def shown_path(real: Path, root_dir: str | os.PathLike[str] | None) -> str:
    """How a path appears on the wire: relative to the root, never the host's layout."""
    if root_dir is not None:
        root = Path(root_dir).resolve()
        if real.is_relative_to(root):
            return real.relative_to(root).as_posix()
    return real.name


def _fail(shown: str, reason: str) -> SmithersError:
    return SmithersError(
        "WORKFLOW_LOAD_FAILED",
        f"cannot load workflow {shown}: {reason}",
        {"workflowPath": shown, "reason": reason},
    )


def _read_source(real: Path, shown: str) -> bytes:
    """The bytes of a regular `.py` file; anything else is refused before it is opened."""
    if real.suffix != ".py":
        raise _fail(shown, "not a Python file (workflows are .py files)")
    try:
        mode = real.stat().st_mode
    except FileNotFoundError:
        raise _fail(shown, "file not found") from None
    except OSError as exc:
        raise _fail(shown, exc.strerror or type(exc).__name__) from None
    if stat.S_ISDIR(mode):
        raise _fail(shown, "is a directory")
    if not stat.S_ISREG(mode):
        raise _fail(shown, "not a regular file")
    try:
        return real.read_bytes()
    except OSError as exc:
        raise _fail(shown, exc.strerror or type(exc).__name__) from None


def _find_workflow(module: object, shown: str) -> SmithersWorkflow:
    candidate = getattr(module, "workflow", None)
    if isinstance(candidate, SmithersWorkflow):
        return candidate
    found = [v for v in vars(module).values() if isinstance(v, SmithersWorkflow)]
    if len(found) == 1:
        return found[0]
    reason = (
        NO_WORKFLOW if not found else "several workflows defined; name the one to run `workflow`"
    )
    raise _fail(shown, reason)


@dataclass(frozen=True)
class _Seen:
    signature: tuple[int, ...]
    workflow: SmithersWorkflow


def _seen_key(
    path: str | os.PathLike[str], root_dir: str | os.PathLike[str] | None
) -> tuple[str, str | None]:
    return (os.fspath(path), None if root_dir is None else os.fspath(root_dir))


def _signature(key: tuple[str, str | None]) -> tuple[int, ...] | None:
    """The stat of the file the path names now (through its symlinks): device, inode, size,
    modified and changed times. `ctime` moves on every write and cannot be set back."""
    raw, root = key
    try:
        st = os.stat(raw if root is None else os.path.join(root, raw))
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _unchanged(
    path: str | os.PathLike[str], root_dir: str | os.PathLike[str] | None
) -> SmithersWorkflow | None:
    """The workflow this path loaded last, while its file has not changed since: one stat
    instead of resolving, reading and hashing it on every start."""
    key = _seen_key(path, root_dir)
    seen = _seen.get(key)
    if seen is None or _signature(key) != seen.signature:
        return None
    return seen.workflow


def _note_seen(
    key: tuple[str, str | None], signature: tuple[int, ...] | None, workflow: SmithersWorkflow
) -> None:
    if signature is None or time.time_ns() - max(signature[3], signature[4]) < SETTLED_NS:
        return
    with _guard:
        while len(_seen) >= SEEN_MAX:  # paths come from requests: spellings are endless
            del _seen[next(iter(_seen))]
        _seen[key] = _Seen(signature, workflow)


def loaded_version(
    path: str | os.PathLike[str], content_hash: str, root_dir: str | os.PathLike[str] | None = None
) -> SmithersWorkflow | None:
    """The workflow of `path` as it was when it had `content_hash`, if this process loaded it."""
    try:
        real = resolve_inside(path, root_dir)
    except SmithersError:
        return None
    return _cache.get((str(real), content_hash))


def load_workflow(
    path: str | os.PathLike[str], root_dir: str | os.PathLike[str] | None = None
) -> SmithersWorkflow:
    """Load the workflow in `path` (inside `root_dir` when given), cached by content hash.

    The module runs from the bytes read, so an edit made while it loads cannot tear it;
    an edited file is a new version on the next load, with no restart. A file whose stat
    has not changed since it was read (and had settled then) is not read again.
    """
    unchanged = _unchanged(path, root_dir)
    if unchanged is not None:
        return unchanged
    seen_key = _seen_key(path, root_dir)
    signature = _signature(seen_key)  # before reading: a later write changes it
    real = resolve_inside(path, root_dir)
    shown = shown_path(real, root_dir)
    data = _read_source(real, shown)
    digest = hashlib.sha256(data).hexdigest()
    key = (str(real), digest)
    workflow = _cache.get(key)
    if workflow is None:
        with _guard:
            lock = _file_locks.setdefault(str(real), threading.Lock())
        with lock:
            workflow = _cache.get(key)
            if workflow is None:
                workflow = _exec(real, shown, data, digest, root_dir)
                _cache[key] = workflow
    _note_seen(seen_key, signature, workflow)
    return workflow


async def load_workflow_async(
    path: str | os.PathLike[str],
    root_dir: str | os.PathLike[str] | None = None,
    *,
    timeout_s: float | None = DEFAULT_LOAD_TIMEOUT_S,
    limiter: anyio.CapacityLimiter | None = None,
) -> SmithersWorkflow:
    """`load_workflow` in a worker thread, refused after `timeout_s` (the import goes on in
    its thread, and a later load of the same bytes finds it cached once it finishes).
    The threads are the loader's own pool, or `limiter`'s; a file unchanged since its last
    load is answered here, with one stat."""
    unchanged = _unchanged(path, root_dir)
    if unchanged is not None:
        return unchanged
    with anyio.move_on_after(timeout_s) as scope:
        return await anyio.to_thread.run_sync(
            load_workflow, path, root_dir, abandon_on_cancel=True, limiter=limiter or _load_threads
        )
    assert scope.cancelled_caught
    raise _fail(
        shown_path(resolve_inside(path, root_dir), root_dir),
        f"the import did not finish within {timeout_s:g} s",
    )


class _BytesLoader(importlib.abc.Loader):
    """Executes a module from bytes already read, under the user's file name."""

    def __init__(self, real: Path, data: bytes) -> None:
        self.real = real
        self.data = data

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        code = compile(self.data, str(self.real), "exec", dont_inherit=True)
        exec(code, module.__dict__)


def _where(exc: BaseException, real: Path, shown: str) -> str:
    """` (flow.py, line 12)`: the user's own line the error came from, when known."""
    if isinstance(exc, SyntaxError) and exc.filename == str(real) and exc.lineno:
        return f" ({shown}, line {exc.lineno})"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(real)]
    return f" ({shown}, line {frames[-1].lineno})" if frames else ""


def _scrub(text: str, root_dir: str | os.PathLike[str] | None, real: Path) -> str:
    """Host paths out of a message: the root's prefix goes, the file is named as shown."""
    base = Path(root_dir).resolve() if root_dir is not None else real.parent
    return text.replace(str(base) + os.sep, "").replace(str(base), ".")


def _exec(
    real: Path, shown: str, data: bytes, digest: str, root_dir: str | os.PathLike[str] | None
) -> SmithersWorkflow:
    tag = hashlib.sha256(f"{real}\0{digest}".encode()).hexdigest()[:12]
    name = f"smithers_workflow_{real.stem}_{tag}"
    spec = importlib.util.spec_from_loader(name, _BytesLoader(real, data), origin=str(real))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(real)
    directory = str(real.parent)
    _use_path(directory)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        workflow = _find_workflow(module, shown)
    except BaseException as exc:
        sys.modules.pop(name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        if isinstance(exc, SmithersError) and exc.code == "WORKFLOW_LOAD_FAILED":
            raise
        logger.error("cannot load workflow %s", shown, exc_info=exc)
        message = exc.message if isinstance(exc, SmithersError) else str(exc)
        reason = _scrub(f"{type(exc).__name__}: {message}", root_dir, real)
        raise _fail(shown, reason + _where(exc, real, shown)) from None
    finally:
        _release_path(directory)
    workflow.path = str(real)
    workflow.content_hash = digest
    if workflow.name in ("workflow", "render", "wf"):
        workflow.name = real.stem
    return workflow


def _use_path(directory: str) -> None:
    """Put the workflow's folder on sys.path (so sibling imports work) while loads of files
    in it run; counted, as loads of different files run at once. An entry that was there
    already is not ours and stays."""
    with _guard:
        if directory in _path_users:
            _path_users[directory] += 1
        elif directory not in sys.path:
            sys.path.insert(0, directory)
            _path_users[directory] = 1


def _release_path(directory: str) -> None:
    with _guard:
        users = _path_users.get(directory)
        if users is None:
            return
        if users > 1:
            _path_users[directory] = users - 1
            return
        del _path_users[directory]
        with contextlib.suppress(ValueError):
            sys.path.remove(directory)
