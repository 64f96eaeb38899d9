"""load_workflow(path): a workflow module loaded from the exact bytes it had when read."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import sys
import threading
from pathlib import Path

from .definition import SmithersWorkflow
from .errors import SmithersError

_lock = threading.Lock()
_cache: dict[tuple[str, str], SmithersWorkflow] = {}


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


def _fail(path: Path, reason: str) -> SmithersError:
    return SmithersError(
        "WORKFLOW_LOAD_FAILED",
        f"cannot load workflow {path.name}: {reason}",
        {"workflowPath": str(path), "reason": reason},
    )


def _shadow_path(path: Path, digest: str) -> Path:
    return path.with_name(f".{path.stem}.smithers-{digest[:12]}.py")


def _find_workflow(module: object, path: Path) -> SmithersWorkflow:
    candidate = getattr(module, "workflow", None)
    if isinstance(candidate, SmithersWorkflow):
        return candidate
    found = [v for v in vars(module).values() if isinstance(v, SmithersWorkflow)]
    if len(found) == 1:
        return found[0]
    reason = (
        "no workflow defined (a module attribute `workflow` built with create_smithers)"
        if not found
        else "several workflows defined; name the one to run `workflow`"
    )
    raise _fail(path, reason)


def loaded_version(
    path: str | os.PathLike[str], content_hash: str, root_dir: str | os.PathLike[str] | None = None
) -> SmithersWorkflow | None:
    """The workflow of `path` as it was when it had `content_hash`, if this process loaded it."""
    try:
        real = resolve_inside(path, root_dir)
    except SmithersError:
        return None
    with _lock:
        return _cache.get((str(real), content_hash))


def load_workflow(
    path: str | os.PathLike[str], root_dir: str | os.PathLike[str] | None = None
) -> SmithersWorkflow:
    """Load the workflow in `path` (inside `root_dir` when given), cached by content hash.

    The module runs from a shadow copy `.{name}.smithers-{hash12}.py` beside the file,
    so sibling imports work and an edit made while it loads cannot tear it; an edited
    file is a new version on the next load, with no restart.
    """
    real = resolve_inside(path, root_dir)
    try:
        data = real.read_bytes()
    except FileNotFoundError:
        raise _fail(real, "file not found") from None
    except IsADirectoryError:
        raise _fail(real, "is a directory") from None
    except OSError as exc:
        raise _fail(real, exc.strerror or str(exc)) from None
    digest = hashlib.sha256(data).hexdigest()
    key = (str(real), digest)
    with _lock:
        cached = _cache.get(key)
        if cached is not None:
            return cached
        workflow = _exec(real, data, digest)
        _cache[key] = workflow
        for old in real.parent.glob(f".{real.stem}.smithers-*.py"):
            if old.name != _shadow_path(real, digest).name:
                old.unlink(missing_ok=True)
        return workflow


def _exec(real: Path, data: bytes, digest: str) -> SmithersWorkflow:
    shadow = _shadow_path(real, digest)
    try:
        shadow.write_bytes(data)
    except OSError:
        shadow = real  # a read-only directory: load the original
    name = f"smithers_workflow_{real.stem}_{digest[:12]}"
    spec = importlib.util.spec_from_file_location(name, shadow)
    if spec is None or spec.loader is None:
        raise _fail(real, "not a Python module")
    module = importlib.util.module_from_spec(spec)
    directory = str(real.parent)
    added = directory not in sys.path
    if added:
        sys.path.insert(0, directory)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        workflow = _find_workflow(module, real)
    except BaseException as exc:
        sys.modules.pop(name, None)
        if shadow != real:
            shadow.unlink(missing_ok=True)
        if isinstance(exc, KeyboardInterrupt):
            raise
        if isinstance(exc, SmithersError):
            raise exc if exc.code == "WORKFLOW_LOAD_FAILED" else _fail(real, exc.message) from None
        raise _fail(real, f"{type(exc).__name__}: {exc}") from None
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(directory)
    workflow.path = str(real)
    workflow.content_hash = digest
    if workflow.name in ("workflow", "render", "wf"):
        workflow.name = real.stem
    return workflow
