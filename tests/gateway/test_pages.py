"""Workflow pages: `register(..., ui=...)` serves the page with its boot data (encoded so
no value ends the script), a `static_dir`'s files and nothing outside it, lists the page in
`/workflows`, and refuses mount paths that are malformed or taken."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from smithers.errors import SmithersError
from smithers_gateway import Gateway

from . import workflows
from .conftest import Rpc, serve_gateway
from .sockets import open_socket

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

BOOT = re.compile(r"<script>window\.__SMITHERS_GATEWAY_UI__ = (.*?);</script>", re.DOTALL)
EVIL = {
    "quote": "</script><script>alert(1)</script>",
    "comment": "<!--",
    "amp": "a&b",
    "ls": "\u2028",
}
PAGE = (
    "<!doctype html><html><HEAD lang=en><script src=app.js></script></HEAD><body>hi</body></html>"
)


def boot_of(html: str) -> Any:
    found = BOOT.findall(html)
    assert len(found) == 1, html
    return json.loads(found[0])


async def raw_get(url: str, path: str) -> tuple[int, bytes]:
    """GET `path` exactly as written (an HTTP client would resolve its `..` first)."""
    host, port = url.removeprefix("http://").split(":")
    async with await anyio.connect_tcp(host, int(port)) as stream:
        head = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
        await stream.send(head.encode())
        answer = b""
        with anyio.fail_after(10):
            while True:
                try:
                    answer += await stream.receive()
                except anyio.EndOfStream:
                    break
    status = int(answer.split(b" ", 2)[1])
    return status, answer.partition(b"\r\n\r\n")[2]


async def test_an_html_page_gets_its_boot_data(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw, gw.client(token=None) as anonymous:
        gw.gateway.register("hello_page", workflows.hello, ui={"html": PAGE, "props": EVIL})
        gw.gateway.register(
            "titled",
            workflows.hello,
            ui={"path": "/apps/titled", "title": "A <b> title", "html": "<p>no head</p>"},
        )
        # A page needs no token: it is static, and what it calls is authenticated.
        res = await anonymous.get("/workflows/hello_page")
        assert res.status_code == 200 and res.headers["content-type"].startswith("text/html")
        assert res.headers["x-smithers-api-version"] == "v1"
        html = res.text
        assert html.count("</script>") == 2 and "<!--" not in html and "a&b" not in html
        assert boot_of(html) == {
            "apiVersion": "v1",
            "workflowKey": "hello_page",
            "mountPath": "/workflows/hello_page",
            "rpcPath": "/v1/rpc",
            "wsPath": "/",
            "props": EVIL,
        }
        # First in <head>, before the page's own scripts.
        assert html.index("__SMITHERS_GATEWAY_UI__") < html.index("app.js")
        assert (await anonymous.get("/workflows/hello_page/")).text == html
        assert (await anonymous.post("/v1/rpc/listRuns", json={})).status_code == 401

        titled = (await anonymous.get("/apps/titled")).text
        assert boot_of(titled)["mountPath"] == "/apps/titled" and boot_of(titled)["props"] is None
        assert "<title>A &lt;b&gt; title</title>" in titled and titled.endswith("<p>no head</p>")

        refused = await anonymous.post("/workflows/hello_page")
        assert (
            refused.status_code == 405 and refused.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
        )
        missing = await anonymous.get("/workflows/hello_page/app.js")  # an html page has no files
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
        assert (await anonymous.get("/workflows/hello")).status_code == 404  # registered, no ui

        listed = {w["key"]: w for w in (await anonymous.get("/workflows")).json()["workflows"]}
        assert (listed["hello_page"]["hasUi"], listed["hello_page"]["uiPath"]) == (
            True,
            "/workflows/hello_page",
        )
        assert (listed["titled"]["hasUi"], listed["titled"]["uiPath"]) == (True, "/apps/titled")
        assert (listed["hello"]["hasUi"], listed["hello"]["uiPath"]) == (False, None)
        async with gw.client() as client:
            by_rpc = {w["key"]: w for w in await Rpc(client)("listWorkflows")}
        assert by_rpc["titled"]["uiPath"] == "/apps/titled"

        # A WebSocket on a page's path is still the gateway's protocol.
        async with open_socket(gw.url + "/workflows/hello_page") as socket:
            assert (await socket.connect())["ok"] is True


async def test_a_static_dir_is_served_and_nothing_outside_it(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "css").mkdir(parents=True)
    (site / "index.html").write_text(PAGE)
    (site / "app.js").write_text("console.log('app')")
    (site / "css" / "site.css").write_text("body { color: red }")
    (tmp_path / "secret.txt").write_text("the secret")
    os.symlink(tmp_path / "secret.txt", site / "link.txt")
    async with serve_gateway(tmp_path) as gw, gw.client(token=None) as client:
        gw.gateway.register("site", workflows.hello, ui={"static_dir": "site", "props": {"n": 1}})

        bare = await client.get("/workflows/site?x=1")
        assert bare.status_code == 308 and bare.headers["location"] == "/workflows/site/?x=1"
        index = await client.get("/workflows/site/")
        assert index.status_code == 200 and boot_of(index.text)["props"] == {"n": 1}
        assert (await client.get("/workflows/site/index.html")).text == index.text
        script = await client.get("/workflows/site/app.js")
        assert script.status_code == 200 and script.text == "console.log('app')"
        assert (await client.get("/workflows/site/css/site.css")).text == "body { color: red }"
        assert (await client.get("/workflows/site/nope.js")).json()["error"]["code"] == "NOT_FOUND"

        assert await raw_get(gw.url, "/workflows/site/app.js") == (200, b"console.log('app')")
        for path in (
            "/workflows/site/../../secret.txt",
            "/workflows/site/%2e%2e/secret.txt",
            "/workflows/site/..%2fsecret.txt",
            "/workflows/site/css/../../secret.txt",
            "/workflows/site/%2fetc%2fpasswd",
            "/workflows/site/link.txt",  # a link out of the directory
        ):
            status, body = await raw_get(gw.url, path)
            assert status == 404 and b"secret" not in body and b"root:" not in body, path

        (site / "index.html").unlink()  # the page is read per request
        gone = await client.get("/workflows/site/")
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "NOT_FOUND"


async def test_a_mounted_gateway_serves_pages_under_its_prefix(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(PAGE)
    (site / "app.js").write_text("app")
    gateway = Gateway(workspace_root=tmp_path, db=f"sqlite:///{tmp_path / 'gw.db'}")
    gateway.register("site", workflows.hello, ui={"static_dir": site})
    host = Starlette(routes=[Mount("/gateway", app=gateway.app)])
    transport = httpx.ASGITransport(app=host)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        bare = await client.get("/gateway/workflows/site")
        assert bare.status_code == 308 and bare.headers["location"] == "/gateway/workflows/site/"
        boot = boot_of((await client.get("/gateway/workflows/site/")).text)
        assert boot["mountPath"] == "/gateway/workflows/site"
        assert (boot["rpcPath"], boot["wsPath"]) == ("/gateway/v1/rpc", "/gateway/")
        assert (await client.get("/gateway/workflows/site/app.js")).text == "app"


@pytest.mark.parametrize(
    "ui",
    [
        {"path": "workflows/x", "html": ""},
        {"path": "/a b", "html": ""},
        {"path": "/a?b", "html": ""},
        {"path": "/a/../b", "html": ""},
        {"path": "/a/./b", "html": ""},
        {"path": "/a//b", "html": ""},
        {"path": "/a/", "html": ""},
        {"path": "/" + "a" * 300, "html": ""},
        {"path": 7, "html": ""},
        {"path": "/", "html": ""},
        {"path": "/health", "html": ""},
        {"path": "/metrics", "html": ""},
        {"path": "/workflows", "html": ""},
        {"path": "/v1", "html": ""},
        {"path": "/v1/rpc/listRuns", "html": ""},
        {"path": "/rpc", "html": ""},
        {"path": "/webhooks/x", "html": ""},
        {"path": "/console", "html": ""},
        {"path": "/ops", "html": ""},  # the operator console's path in this gateway
        {"path": "/taken", "html": ""},
        {"path": "/taken/inner", "html": ""},
        {"path": "/outer", "html": ""},  # above the page at /outer/inner
        {"html": "", "static_dir": "site"},
        {"path": "/p"},
        {"html": b"<p>bytes</p>"},
        {"static_dir": "no-such-dir"},
        {"html": "", "props": {"f": object()}},
        {"html": "", "title": 3},
        {"html": "", "colour": "red"},
        "<p>not a dict</p>",
        True,
    ],
)
def test_bad_pages_are_refused_at_register(tmp_path: Path, ui: Any) -> None:
    (tmp_path / "site").mkdir()
    gateway = Gateway(workspace_root=tmp_path, operator_ui={"path": "/ops"})
    gateway.register("taken", workflows.hello, ui={"path": "/taken", "html": ""})
    gateway.register("inner", workflows.hello, ui={"path": "/outer/inner", "html": ""})
    with pytest.raises(SmithersError) as info:
        gateway.register("page", workflows.hello, ui=ui)
    assert info.value.code == "INVALID_REQUEST"
    assert "page" not in gateway.registry  # nothing registered: the key is free again
    gateway.register("page", workflows.hello, ui={"path": "/fine/page_1:v2.x-y", "html": ""})
    assert gateway.pages.path_of("page") == "/fine/page_1:v2.x-y"


def test_a_bad_key_is_refused_as_a_key(tmp_path: Path) -> None:
    gateway = Gateway(workspace_root=tmp_path)
    with pytest.raises(SmithersError) as info:
        gateway.register("no good", workflows.hello, ui={"html": ""})
    assert "workflow key" in info.value.message
    gateway.register("twice", workflows.hello, ui={"html": ""})
    with pytest.raises(SmithersError) as info:
        gateway.register("twice", workflows.hello)
    assert "registered already" in info.value.message
    assert gateway.pages.path_of("twice") == "/workflows/twice"  # the first one's page stays
