"""The operator console: static HTML, CSS and JavaScript in `smithers_gateway/console/`,
served at `operator_ui={"path": "/console"}` (or `ui=True`), with `GET /` redirecting to it.

The page gets its paths in a JSON data block (`<script type="application/json"
id="smithers-console-boot">{"apiVersion", "consolePath", "rpcPath", "wsPath"}</script>`, the
prefix of a host app that mounts the gateway included), so a Content-Security-Policy can
refuse every inline script; it holds no secret: the operator signs in with a token, kept in
the browser's session storage, and every call it makes is authenticated like any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from smithers.errors import SmithersError

from .frames import API_VERSION
from .pages import MOUNT_PATH, PAGE_HEADERS, script_json

CONSOLE_DIR = Path(__file__).parent / "console"
DEFAULT_PATH = "/console"
BOOT_ID = "smithers-console-boot"
# Only the package's own files: no inline script or style, no other origin, no framing.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def console_path(ui: Any, operator_ui: Any) -> str | None:
    """Where the console is served (None: not served). `operator_ui={"path"}` names the
    path; `ui=True` or `operator_ui=True` serve it at `/console`."""
    if isinstance(operator_ui, Mapping):
        path = operator_ui.get("path", DEFAULT_PATH)
    elif operator_ui is True or ui is True:
        path = DEFAULT_PATH
    else:
        return None
    if not isinstance(path, str) or path == "/" or not MOUNT_PATH.fullmatch(path):
        raise SmithersError(
            "INVALID_REQUEST",
            f"operator_ui path {path!r} must match {MOUNT_PATH.pattern} (and not be '/')",
            {"field": "operator_ui"},
        )
    if any(part in ("", ".", "..") for part in path.split("/")[1:]):
        raise SmithersError(
            "INVALID_REQUEST",
            f"operator_ui path {path!r} has an empty, '.' or '..' segment",
            {"field": "operator_ui"},
        )
    return path


def console_routes(path: str) -> list[BaseRoute]:
    """`path/` answers the page with its boot data (`path` redirects there), `path/<file>`
    its assets."""

    async def page(request: Request) -> Response:
        prefix = request.scope.get("root_path", "")
        boot = {
            "apiVersion": API_VERSION,
            "consolePath": prefix + path,
            "rpcPath": prefix + "/v1/rpc",
            "wsPath": prefix + "/",
        }
        document = await anyio.Path(CONSOLE_DIR / "index.html").read_text(encoding="utf-8")
        script = f'<script type="application/json" id="{BOOT_ID}">{script_json(boot)}</script>'
        document = document.replace("<!--boot-->", script, 1)
        return HTMLResponse(document, headers={**PAGE_HEADERS, "content-security-policy": CSP})

    async def bare(request: Request) -> Response:
        # The page's files are linked relative to `path/`.
        return RedirectResponse(request.scope.get("root_path", "") + path + "/", 308)

    return [
        Route(path, bare, methods=["GET", "HEAD"]),
        Route(path + "/", page, methods=["GET", "HEAD"]),
        Mount(path, StaticFiles(directory=CONSOLE_DIR)),
    ]


def redirect_to(path: str) -> Route:
    """`GET /`: 302 to the console."""

    async def index(request: Request) -> Response:
        return RedirectResponse(request.scope.get("root_path", "") + path + "/", 302)

    return Route("/", index, methods=["GET"])
