"""The environment variables that stand in for arguments left out: the `smithers` command
reads them, and so does `create_app()` (so `uvicorn --factory smithers_server:create_app`
is configured by them). An argument given always wins."""

from __future__ import annotations

import os

from .auth import TOKEN_ENV

URL_ENV = "SMITHERS_URL"  # the server `smithers runs` talks to
DB_ENV = "SMITHERS_DB"  # the database of `smithers server`, `smithers runs`, create_app
ROOT_ENV = "SMITHERS_ROOT"  # the workflows' root of `smithers server` and create_app


def from_env(name: str) -> str | None:
    """The variable's value; None when it is unset or empty."""
    return os.environ.get(name) or None


__all__ = ["DB_ENV", "ROOT_ENV", "TOKEN_ENV", "URL_ENV", "from_env"]
