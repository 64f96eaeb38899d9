"""The `smithers` command line."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

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
    up.add_argument(
        "--cancel-on-exit",
        action="store_true",
        help="Ctrl-C or SIGTERM cancels the run (default: pause it, resumable with --resume)",
    )
    server = sub.add_parser("server", help="serve the multi-workflow REST API")
    server.add_argument("--port", type=int, default=7331)
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument(
        "--db", help="the server's database (URL or SQLite path; default: $SMITHERS_DB)"
    )
    server.add_argument(
        "--root", help="workflows are loaded from inside this dir (default: $SMITHERS_ROOT, else .)"
    )
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
    server.add_argument(
        "--log-level",
        default="warning",
        choices=("critical", "error", "warning", "info", "debug", "trace"),
        help="of the server's log on stderr (default warning: failures; info adds runs)",
    )
    server.add_argument("--access-log", action="store_true", help="log a line per request")

    from .gateway import add_parser as add_gateway_parser
    from .operators import add_parsers

    add_parsers(sub)
    add_gateway_parser(sub)
    return parser


def _runs(args: argparse.Namespace) -> int:
    from .operators import run_command

    return run_command(args)


def _server(args: argparse.Namespace) -> int:
    from smithers import open_store
    from smithers.auth import configured_token
    from smithers.environment import DB_ENV, ROOT_ENV, from_env
    from smithers.web.serving import SmithersServer, bind_socket
    from smithers_server.server import server_config

    from .banner import banner

    given_root = args.root or from_env(ROOT_ENV)
    root = Path(given_root or ".")
    if not root.is_dir():
        flag = "--root" if args.root else ROOT_ENV
        raise UsageError(f"{flag} {given_root} is not a directory")
    db_url = args.db or from_env(DB_ENV)
    # Open (and migrate) the database here, once, and hand it to the app: a refusal (say,
    # a schema newer than this version) is one line, not a traceback from the start-up.
    db = open_store(db_url) if db_url else None
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
        access_log=args.access_log,
        sse_keepalive_ms=args.sse_keepalive,
        load_timeout=args.load_timeout,
        max_streams=args.max_streams,
        max_streams_per_run=args.max_streams_per_run,
        allowed_origins=args.allowed_origin,
        cors_origins=args.cors_origin,
    )
    _log_runs_at(args.log_level)
    # Listen before saying so: a port in use is one line, with no banner before it.
    sock = bind_socket(args.host, args.port)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{shown}:{sock.getsockname()[1]}"
    token_env = args.token_env if configured_token(None, args.token_env) else None
    for line in banner(url, root.resolve(), db_url, token_env):
        print(line, flush=True)
    server = SmithersServer(config)
    server.run(sockets=[sock])
    return 0 if server.started else 1


def _log_runs_at(log_level: str) -> None:
    """The `smithers.*` loggers follow --log-level (or SMITHERS_LOG_LEVEL, if lower)."""
    from uvicorn.config import LOG_LEVELS

    level = min(LOG_LEVELS[log_level], logging.getLogger().getEffectiveLevel())
    logging.getLogger("smithers").setLevel(level)


async def _up(args: argparse.Namespace) -> int:
    from .inputs import read_input
    from .up import UpOptions, up

    if args.resume and not args.run_id:
        raise UsageError("--resume needs --run-id")
    options = UpOptions(
        workflow=args.workflow,
        input=read_input(args),
        db=args.db,
        run_id=args.run_id,
        resume=args.resume,
        root=args.root,
        allow_network=args.allow_network,
        serve=args.serve,
        host=args.host,
        port=args.port,
        exit_on_finish=args.exit_on_finish,
        cancel_on_exit=args.cancel_on_exit,
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


LEVEL_NAMES = ("debug", "info", "warning", "error", "critical")


def main(argv: Sequence[str] | None = None) -> int:
    level = os.environ.get("SMITHERS_LOG_LEVEL", "warning").strip().lower()
    if level not in LEVEL_NAMES:
        print(
            f"smithers: SMITHERS_LOG_LEVEL={level!r} is not one of {', '.join(LEVEL_NAMES)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    logging.basicConfig(level=level.upper(), format="%(levelname)s %(name)s: %(message)s")
    given = list(sys.argv[1:] if argv is None else argv)
    if given in ([], ["runs"]):
        # Nothing to do: the help of `smithers` (or `smithers runs`), and the usage exit.
        with contextlib.suppress(SystemExit):
            _parser().parse_args([*given, "--help"])
        return EXIT_USAGE
    try:
        args = _parser().parse_args(given)
    except UsageError as exc:
        return _report(exc)
    except SystemExit as exc:  # --help
        return int(exc.code or 0) and EXIT_USAGE
    if args.command != "server" and "SMITHERS_LOG_LEVEL" not in os.environ:
        # The server's log of runs and failed tasks: `up` and `runs` show both in their
        # own output already (a failing task's traceback in the view, once).
        for name in ("smithers.runs", "smithers.tasks"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        if args.command == "up":
            return anyio.run(_up, args)
        if args.command == "runs":
            return _runs(args)
        if args.command == "server":
            return _server(args)
        if args.command == "gateway":
            from .gateway import run as run_gateway

            return run_gateway(args)
    except BaseException as exc:
        return _report(_unwrap(exc))
    return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
