"""The `smithers` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import anyio
from sqlalchemy.exc import SQLAlchemyError

from smithers.errors import SmithersError, UsageError

EXIT_FINISHED, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (ours), not usage text plus the error."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _version() -> str:
    """The installed distribution's version (`smithers-asgi`)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("smithers-asgi")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="smithers", description="Durable workflow runs.")
    parser.add_argument("--version", action="version", version=f"smithers {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run a workflow file in the foreground")
    up.add_argument("workflow", help="path to the workflow's .py file")
    given = up.add_mutually_exclusive_group()
    given.add_argument("--input", help="the run input as JSON")
    given.add_argument("--input-file", help="a file holding the run input as JSON")
    up.add_argument(
        "--db", help="database URL or SQLite path (default: the workflow's db, else smithers.db)"
    )
    up.add_argument("--run-id", help="the run id (default: generated)")
    up.add_argument("--resume", action="store_true", help="resume the run given by --run-id")
    up.add_argument("--root", default=".", help="root directory for tools (default: .)")
    up.add_argument("--allow-network", action="store_true", help="let bash reach the network")
    up.add_argument("--serve", action="store_true", help="serve the run over HTTP while it runs")
    up.add_argument("--port", type=int, default=7331, help="with --serve (default 7331)")
    up.add_argument("--host", default="127.0.0.1", help="with --serve (default 127.0.0.1)")
    up.add_argument(
        "--exit-on-finish",
        action="store_true",
        help="with --serve: exit when the run ends instead of serving on",
    )
    server = sub.add_parser("server", help="serve the multi-workflow REST API")
    server.add_argument("--port", type=int, default=7331)
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--db", help="the server's database (URL or SQLite path)")
    server.add_argument("--root", default=".", help="workflows are loaded from inside this dir")
    server.add_argument(
        "--token-env",
        default="SMITHERS_API_KEY",
        help="environment variable holding the token (default SMITHERS_API_KEY)",
    )
    server.add_argument(
        "--insecure", action="store_true", help="allow a non-loopback bind without a token"
    )
    server.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a browser origin (scheme://host[:port]) allowed besides the server's own; repeatable",
    )
    server.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a browser origin (scheme://host[:port]) granted CORS (preflights, the token "
        "header); repeatable",
    )
    server.add_argument("--allow-network", action="store_true", help="let bash reach the network")
    server.add_argument("--max-body-bytes", type=int, default=1_048_576)
    server.add_argument("--headers-timeout", type=int, default=30_000, help="ms")
    server.add_argument("--request-timeout", type=int, default=60_000, help="ms")
    server.add_argument("--sse-keepalive", type=int, default=10_000, help="ms")
    server.add_argument(
        "--load-timeout", type=int, default=30_000, help="ms a workflow import may take"
    )
    server.add_argument("--max-streams", type=int, default=1000, help="open SSE streams, in all")
    server.add_argument("--max-streams-per-run", type=int, default=100, help="on one run")
    server.add_argument("--log-level", default="warning")

    from .operators import add_parsers

    add_parsers(sub)
    return parser


def _runs(args: argparse.Namespace) -> int:
    from .operators import run_command

    return run_command(args)


def _server(args: argparse.Namespace) -> int:
    import uvicorn

    from smithers import open_store
    from smithers.auth import configured_token
    from smithers.host import default_db_path
    from smithers_server.server import server_config

    root = Path(args.root)
    if not root.is_dir():
        raise UsageError(f"--root {args.root} is not a directory")
    # Open (and migrate) the database here, once, and hand it to the app: a refusal (say,
    # a schema newer than this version) is one line, not a traceback from the start-up.
    db = open_store(args.db) if args.db else None
    config = server_config(
        port=args.port,
        host=args.host,
        db=db,
        root_dir=root,
        max_body_bytes=args.max_body_bytes,
        allow_network=args.allow_network,
        headers_timeout=args.headers_timeout,
        request_timeout=args.request_timeout,
        insecure=args.insecure,
        token_env=args.token_env,
        log_level=args.log_level,
        sse_keepalive_ms=args.sse_keepalive,
        load_timeout=args.load_timeout,
        max_streams=args.max_streams,
        max_streams_per_run=args.max_streams_per_run,
        allowed_origins=args.allowed_origin,
        cors_origins=args.cors_origin,
    )
    server = uvicorn.Server(config)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{shown}:{args.port}"
    auth = "on" if configured_token(None, args.token_env) else "off"
    shown_db = (
        args.db or f"none; runs of workflows without a db go to {default_db_path(root.resolve())}"
    )
    print(
        f"smithers server on {url} (root {root.resolve()}, db {shown_db}, auth {auth})",
        flush=True,
    )
    print(
        f"start a run: curl -X POST {url}/v1/runs -H 'content-type: application/json' "
        f'-d \'{{"workflowPath": "hello.py", "input": {{"name": "you"}}}}\'',
        flush=True,
    )
    server.run()
    return 0 if server.started else 1


def _read_input(args: argparse.Namespace) -> Any:
    text = args.input
    if args.input_file:
        try:
            text = Path(args.input_file).read_text()
        except OSError as exc:
            raise UsageError(
                f"cannot read --input-file {args.input_file}: {exc.strerror}"
            ) from None
    if text is None:
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--input is not valid JSON: {exc.msg} at position {exc.pos}") from None


async def _up(args: argparse.Namespace) -> int:
    from .up import UpOptions, up

    if args.resume and not args.run_id:
        raise UsageError("--resume needs --run-id")
    options = UpOptions(
        workflow=args.workflow,
        input=_read_input(args),
        db=args.db,
        run_id=args.run_id,
        resume=args.resume,
        root=args.root,
        allow_network=args.allow_network,
        serve=args.serve,
        host=args.host,
        port=args.port,
        exit_on_finish=args.exit_on_finish,
    )
    return await up(options)


def _unwrap(exc: BaseException) -> BaseException:
    """The one error inside task-group wrappers, so it is reported as itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _report(exc: BaseException) -> int:
    """One line on stderr and the exit code for an error the user can act on."""
    if isinstance(exc, UsageError):
        print(f"smithers: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(exc, SmithersError):
        print(f"smithers: {exc.message}", file=sys.stderr)
        return EXIT_USAGE if exc.code in ("WORKFLOW_LOAD_FAILED", "INVALID_REQUEST") else 1
    if isinstance(exc, KeyboardInterrupt):
        print("smithers: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if isinstance(exc, BrokenPipeError):
        # The reader of our output went away (`| head`): not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    if isinstance(exc, OSError):
        print(f"smithers: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if isinstance(exc, SQLAlchemyError):
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        print(f"smithers: database error: {reason}", file=sys.stderr)
        return 1
    raise exc


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("SMITHERS_LOG_LEVEL", "WARNING"),
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        args = _parser().parse_args(argv)
    except UsageError as exc:
        return _report(exc)
    except SystemExit as exc:  # --help
        return int(exc.code or 0) and EXIT_USAGE
    try:
        if args.command == "up":
            return anyio.run(_up, args)
        if args.command == "runs":
            return _runs(args)
        if args.command == "server":
            return _server(args)
    except BaseException as exc:
        return _report(_unwrap(exc))
    return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
