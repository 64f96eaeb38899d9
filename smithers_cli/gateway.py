"""`smithers gateway module:attr`: serve a Gateway defined in Python, in the foreground."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from smithers.errors import UsageError


def add_parser(sub: Any) -> None:
    gateway = sub.add_parser("gateway", help="serve a Gateway defined in Python")
    gateway.add_argument(
        "target", help="module:attribute or path/to/file.py:attribute naming a Gateway"
    )
    gateway.add_argument("--host", default="127.0.0.1")
    gateway.add_argument("--port", type=int, default=7331)
    gateway.add_argument("--db", help="the database (URL or SQLite path), instead of the app's")
    gateway.add_argument(
        "--insecure", action="store_true", help="allow a non-loopback bind without auth"
    )
    gateway.add_argument("--log-level", default="warning")
    gateway.add_argument(
        "--no-scheduler",
        action="store_true",
        help="only serve: fire no cron schedule and resume no run whose timer came due",
    )


def _import(module: str) -> Any:
    """A module by dotted name (from the current directory too), or a `.py` file."""
    if module.endswith(".py") or "/" in module:
        path = Path(module)
        if not path.is_file():
            raise UsageError(f"{module}: no such file")
        spec = importlib.util.spec_from_file_location(path.stem, path.resolve())
        if spec is None or spec.loader is None:
            raise UsageError(f"{module}: not a Python file")
        found = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = found
        sys.path.insert(0, str(path.resolve().parent))
        spec.loader.exec_module(found)
        return found
    sys.path.insert(0, ".")
    return importlib.import_module(module)


def load_gateway(target: str) -> Any:
    """The Gateway `target` names (`module:attr`; attr may be a function returning one)."""
    from smithers_gateway import Gateway

    module, colon, attr = target.rpartition(":")
    if not colon or not module or not attr:
        raise UsageError(f"{target!r} is not module:attribute (say app.py:gateway)")
    try:
        found = getattr(_import(module), attr)
    except AttributeError:
        raise UsageError(f"{module} has no attribute {attr!r}") from None
    except UsageError:
        raise
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise UsageError(f"cannot import {module}: {reason}") from None
    if callable(found) and not isinstance(found, Gateway):
        found = found()
    if not isinstance(found, Gateway):
        raise UsageError(f"{target} is a {type(found).__name__}, not a Gateway")
    return found


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from smithers import open_store

    gateway = load_gateway(args.target)
    if args.db:
        gateway.db = open_store(args.db)  # opened (and migrated) here: a refusal is one line
    if args.no_scheduler:
        gateway.scheduler = False
    config = gateway.config(args.port, args.host, insecure=args.insecure, log_level=args.log_level)
    server = uvicorn.Server(config)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    auth = gateway.authenticator.mode
    print(
        f"smithers gateway on http://{shown}:{args.port} ({len(gateway.registry)} workflows, "
        f"auth {auth})",
        flush=True,
    )
    if gateway.console_path is not None:
        print(f"console on http://{shown}:{args.port}{gateway.console_path}/", flush=True)
    server.run()
    return 0 if server.started else 1
