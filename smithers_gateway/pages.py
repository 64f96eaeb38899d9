"""Workflow pages: `register(key, workflow, ui={"path", "title", "static_dir" or "html",
"props"})` serves the workflow's own page at `/workflows/<key>` (or `path`).

The page's HTML gets the boot data `window.__SMITHERS_GATEWAY_UI__ = {"apiVersion",
"workflowKey", "mountPath", "rpcPath", "wsPath", "props"}` in a script at the top of its
`<head>`, encoded so that no value closes the script (`<`, `>`, `&`, U+2028/9 escaped).
A `static_dir` is served by Starlette's StaticFiles under the mount path (its
`index.html` is the page; nothing outside the directory is reachable).

Pages need no token: they are static, their boot data holds no secret, and every call
they make (RPC, WebSocket) is authenticated as any other. A mount path is checked when
the workflow is registered: it matches `MOUNT_PATH`, has no empty, `.` or `..` segment,
and is none of the gateway's own routes nor another page (nor inside or above one).
"""

from __future__ import annotations

import html as html_
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from smithers.errors import SmithersError
from smithers.registry import KEY_PATTERN
from smithers.web.responses import error_response

from .frames import API_VERSION

MOUNT_PATH = re.compile(r"/[A-Za-z0-9/_:.-]*")
MAX_PATH = 256
BOOT_NAME = "__SMITHERS_GATEWAY_UI__"
UI_KEYS = frozenset({"path", "title", "static_dir", "html", "props"})
# The gateway's own routes: a page is none of these, nor under the ones that are trees.
OWN_EXACT = frozenset({"/", "/workflows"})
OWN_TREES = ("/health", "/metrics", "/rpc", "/v1", "/webhooks", "/console")
PAGE_HEADERS = {"cache-control": "no-cache", "x-content-type-options": "nosniff"}
HEAD_TAG = re.compile(r"<head(?:\s[^>]*)?>", re.IGNORECASE)
TITLE_TAG = re.compile(r"<title[\s>]", re.IGNORECASE)


@dataclass(frozen=True)
class Page:
    key: str
    path: str
    title: str | None = None
    html: str | None = None
    static_dir: Path | None = None
    props: Any = None
    files: StaticFiles | None = field(default=None, compare=False)

    def boot(self, prefix: str = "") -> dict[str, Any]:
        """The boot data; `prefix`: where a host app mounts the gateway (its paths then
        begin with it)."""
        return {
            "apiVersion": API_VERSION,
            "workflowKey": self.key,
            "mountPath": prefix + self.path,
            "rpcPath": prefix + "/v1/rpc",
            "wsPath": prefix + "/",
            "props": self.props,
        }


def script_json(value: Any) -> str:
    """JSON that is safe inside a `<script>` element: nothing in it ends the element or
    opens a comment, and the line separators JavaScript once refused are escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text


def with_boot(document: str, page: Page, prefix: str = "") -> str:
    """The page's HTML with its boot data first in `<head>` (before the page's scripts),
    and its `title` when the HTML has none."""
    script = f"<script>window.{BOOT_NAME} = {script_json(page.boot(prefix))};</script>"
    if page.title is not None and not TITLE_TAG.search(document):
        script += f"<title>{html_.escape(page.title)}</title>"
    head = HEAD_TAG.search(document)
    if head is None:
        return script + document
    return document[: head.end()] + script + document[head.end() :]


def _invalid(key: str, message: str) -> SmithersError:
    return SmithersError(
        "INVALID_REQUEST", f"register({key!r}, ui=...): {message}", {"field": "ui"}
    )


def _clashes(path: str, other: str) -> bool:
    """One path is the other or lies under it."""
    return path == other or path.startswith(other + "/") or other.startswith(path + "/")


class Pages:
    """The pages of a gateway's workflows, by mount path; `static_dir`s relative to `root`."""

    def __init__(self, root: Path = Path("."), reserved: Iterable[str] = ()) -> None:
        self.root = root
        self.reserved = (*OWN_TREES, *reserved)
        self._by_path: dict[str, Page] = {}
        self._by_key: dict[str, Page] = {}

    def check(self, key: str, ui: Any) -> Page | None:
        """The page `ui` describes (None for no `ui`, or a key the registry will refuse),
        or INVALID_REQUEST."""
        if ui is None or ui is False or not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
            return None
        if not isinstance(ui, Mapping):
            raise _invalid(key, "give a dict: {'path', 'title', 'static_dir' or 'html', 'props'}")
        unknown = sorted(str(name) for name in set(ui) - UI_KEYS)
        if unknown:
            raise _invalid(key, f"unknown setting {', '.join(unknown)}")
        path = self._path(key, ui.get("path", f"/workflows/{key}"))
        title, document, static_dir = ui.get("title"), ui.get("html"), ui.get("static_dir")
        if title is not None and not isinstance(title, str):
            raise _invalid(key, "title must be a string")
        if (document is None) == (static_dir is None):
            raise _invalid(key, "give either static_dir or html")
        if document is not None and not isinstance(document, str):
            raise _invalid(key, "html must be a string")
        try:
            script_json(ui.get("props"))
        except (TypeError, ValueError) as exc:
            raise _invalid(key, f"props must be JSON: {exc}") from None
        files = directory = None
        if static_dir is not None:
            if not isinstance(static_dir, str | os.PathLike):
                raise _invalid(key, "static_dir must be a path")
            directory = (self.root / static_dir).resolve()
            if not directory.is_dir():
                raise _invalid(key, f"static_dir {str(directory)!r} is not a directory")
            files = StaticFiles(directory=directory)
        return Page(key, path, title, document, directory, ui.get("props"), files)

    def _path(self, key: str, path: Any) -> str:
        if not isinstance(path, str) or len(path) > MAX_PATH or not MOUNT_PATH.fullmatch(path):
            raise _invalid(key, f"path {path!r} must match {MOUNT_PATH.pattern}")
        if any(part in ("", ".", "..") for part in path.split("/")[1:]):
            raise _invalid(key, f"path {path!r} has an empty, '.' or '..' segment")
        if path in OWN_EXACT or any(_clashes(path, own) for own in self.reserved):
            raise _invalid(key, f"path {path!r} is one of the gateway's own routes")
        for other in self._by_path.values():
            if _clashes(path, other.path):
                raise _invalid(key, f"path {path!r} clashes with the page of {other.key!r}")
        return path

    def add(self, page: Page) -> None:
        self._by_path[page.path] = page
        self._by_key[page.key] = page

    def path_of(self, key: str) -> str | None:
        page = self._by_key.get(key)
        return None if page is None else page.path

    def find(self, path: str) -> tuple[Page, str] | None:
        """The page serving `path`, and the rest of the path after its mount path."""
        for mount, page in self._by_path.items():
            if path == mount or path.startswith(mount + "/"):
                return page, path[len(mount) :]
        return None


def route_path(scope: Scope) -> str:
    """The path inside the app (without the prefix of a host app that mounts it)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root + "/") else path


class PageRoutes(BaseRoute):
    """Every page, found at request time (workflows may be registered after the app is
    built). HTTP only: a WebSocket on a page's path is the gateway's protocol."""

    def __init__(self, pages: Pages) -> None:
        self.pages = pages

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and self.pages.find(route_path(scope)) is not None:
            return Match.FULL, {}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self.pages.find(route_path(scope))
        assert found is not None
        page, rest = found
        if rest in ("", "/", "/index.html"):
            response = await self._page(scope, page, rest)
            await response(scope, receive, send)
        elif page.files is not None:
            root = scope.get("root_path", "") + page.path
            await page.files({**scope, "root_path": root}, receive, send)
        else:
            await error_response(SmithersError("NOT_FOUND", "Route not found"))(
                scope, receive, send
            )

    async def _page(self, scope: Scope, page: Page, rest: str) -> Response:
        if scope["method"] not in ("GET", "HEAD"):
            refusal = SmithersError("METHOD_NOT_ALLOWED", "Method not allowed")
            return error_response(refusal, {"allow": "GET, HEAD"})
        if page.static_dir is not None and rest == "":
            # Relative links of the directory's files resolve under the mount path.
            query = scope.get("query_string", b"").decode("latin-1")
            target = scope.get("root_path", "") + page.path + "/" + (f"?{query}" if query else "")
            return RedirectResponse(target, 308)
        document = page.html
        if document is None:
            assert page.static_dir is not None
            index = anyio.Path(page.static_dir / "index.html")
            if not await index.is_file():
                return error_response(SmithersError("NOT_FOUND", "the page has no index.html"))
            document = await index.read_text(encoding="utf-8")
        boot = with_boot(document, page, scope.get("root_path", ""))
        return HTMLResponse(boot, headers=PAGE_HEADERS)
