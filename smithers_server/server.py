"""Serving the app under uvicorn: `server_config` (what `smithers server` runs in the
foreground) and `start_server` (the same in a background thread, returning a handle)."""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec

import uvicorn
from sqlalchemy.engine import Engine

from smithers import Store
from smithers.auth import configured_token
from smithers.web.body import DEFAULT_MAX_BODY_BYTES
from smithers.web.serving import ServerHandle, check_bind, serve_in_thread, uvicorn_config

from .app import create_app

P = ParamSpec("P")


def server_config(
    port: int = 7331,
    host: str = "127.0.0.1",
    db: str | Engine | Store | None = None,
    auth_token: str | None = None,
    root_dir: str | os.PathLike[str] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    allow_network: bool = False,
    headers_timeout: int = 30_000,
    request_timeout: int = 60_000,
    *,
    insecure: bool = False,
    token_env: str = "SMITHERS_API_KEY",
    log_level: str = "warning",
    access_log: bool = False,
    allowed_origins: Iterable[str] = (),
    **app_options: Any,
) -> uvicorn.Config:
    """The uvicorn config serving `create_app(...)`; refuses an open non-loopback bind.

    `log_level` is uvicorn's (its loggers write to stderr); `access_log` adds a line per
    request (at INFO, whatever the level)."""
    check_bind(host, configured_token(auth_token, token_env), insecure)
    app = create_app(
        db=db,
        auth_token=auth_token,
        root_dir=root_dir,
        max_body_bytes=max_body_bytes,
        allow_network=allow_network,
        request_timeout=request_timeout,
        insecure=insecure,
        token_env=token_env,
        allowed_origins=allowed_origins,
        **app_options,
    )
    return uvicorn_config(
        app,
        host=host,
        port=port,
        headers_timeout_ms=headers_timeout,
        log_level=log_level,
        access_log=access_log,
    )


def _in_background(build: Callable[P, uvicorn.Config]) -> Callable[P, ServerHandle]:
    @functools.wraps(build)
    def start(*args: P.args, **kwargs: P.kwargs) -> ServerHandle:
        return serve_in_thread(build(*args, **kwargs))

    signature = inspect.signature(build).replace(return_annotation=ServerHandle)
    start.__signature__ = signature  # type: ignore[attr-defined]
    return start


start_server = _in_background(server_config)
start_server.__doc__ = """Serve `create_app(...)` on host:port (0 = a free port) in a background
thread; returns a handle (`.url`, `.port`, `.close()`) once the socket is bound. Takes the
arguments of `server_config`."""
