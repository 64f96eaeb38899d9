"""start_server: the app under uvicorn in a background thread."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy.engine import Engine

from smithers.auth import configured_token
from smithers.store.base import Store
from smithers.web.body import DEFAULT_MAX_BODY_BYTES
from smithers.web.serving import ServerHandle, check_bind, serve_in_thread, uvicorn_config

from .app import create_app


def start_server(
    port: int = 7331,
    host: str = "127.0.0.1",
    db: str | Engine | Store | None = None,
    auth_token: str | None = None,
    root_dir: str | os.PathLike[str] = ".",
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    allow_network: bool = False,
    headers_timeout: int = 30_000,
    request_timeout: int = 60_000,
    *,
    insecure: bool = False,
    **app_options: Any,
) -> ServerHandle:
    """Serve `create_app(...)` on host:port (0 = a free port); returns once listening."""
    check_bind(host, configured_token(auth_token), insecure)
    app = create_app(
        db=db,
        auth_token=auth_token,
        root_dir=root_dir,
        max_body_bytes=max_body_bytes,
        allow_network=allow_network,
        request_timeout=request_timeout,
        insecure=insecure,
        **app_options,
    )
    config = uvicorn_config(app, host=host, port=port, headers_timeout_ms=headers_timeout)
    return serve_in_thread(config)
