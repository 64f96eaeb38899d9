"""A failure's traceback as its user reads it: from their first frame, in their file names.

The frames of the engine that called the user's code (smithers, anyio, asyncio, threads)
say nothing about the failure and bury the line that raised: they are dropped. Frames
below the user's first (a library they called) stay, as in any Python traceback.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import traceback
from functools import cache
from pathlib import Path

# A traceback stored with an attempt (and carried by events) is capped: a deep recursion
# must not put megabytes into every NodeFailed event.
MAX_TRACEBACK_CHARS = 16_000
HEADER = "Traceback (most recent call last):\n"


@cache
def _library_dirs() -> tuple[str, ...]:
    """Where code that is not the user's lives: this package, the standard library and
    site-packages (of the environment and of the Python it was made from)."""
    bases = {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}
    dirs = {str(Path(__file__).resolve().parent)}
    for paths in (sysconfig.get_paths(), sysconfig.get_paths(vars=bases)):
        for key in ("stdlib", "platstdlib", "purelib", "platlib"):
            dirs.update({paths[key], os.path.realpath(paths[key])})
    return tuple(d.rstrip(os.sep) + os.sep for d in dirs)


def is_user_file(filename: str) -> bool:
    return not filename.startswith("<") and not filename.startswith(_library_dirs())


def shown_filename(filename: str, root: str | os.PathLike[str] | None) -> str:
    """A file as a traceback shows it: relative to the root when inside it (no host
    layout leaves a server for the user's own files), else as Python named it."""
    if root is None or filename.startswith("<"):
        return filename
    path, base = Path(filename), Path(root).resolve()
    return path.relative_to(base).as_posix() if path.is_relative_to(base) else filename


def user_traceback(exc: BaseException, root: str | os.PathLike[str] | None = None) -> str | None:
    """The formatted traceback of `exc` from the first frame in the user's code, ending
    with the exception line; None when no frame is the user's (the engine's own errors)."""
    formatted = traceback.TracebackException.from_exception(exc)
    frames = list(formatted.stack)
    start = next((i for i, f in enumerate(frames) if is_user_file(f.filename)), None)
    if start is None:
        return None
    kept = traceback.StackSummary.from_list(frames[start:])
    for frame in kept:
        _ = frame.line  # read the source line under the real name before renaming
        frame.filename = shown_filename(frame.filename, root)
    formatted.stack = kept
    return _capped("".join(formatted.format()))


def _capped(text: str) -> str:
    """The text, or its end (the raising frames and the exception) when too long."""
    if len(text) <= MAX_TRACEBACK_CHARS:
        return text
    tail = text[-MAX_TRACEBACK_CHARS:]
    tail = tail[tail.find("\n") + 1 :]
    return f"{HEADER}  ... (earlier lines cut)\n{tail}"
