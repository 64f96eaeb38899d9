"""Serving the operator console: where (`operator_ui`, `ui=True`), `GET /` redirecting to
it, its boot data and assets, a bad path refused; and `inputSchema` in `/workflows`."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from smithers.errors import SmithersError
from smithers_gateway import Gateway

from .conftest import Rpc, serve_gateway

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def test_the_console_is_served_with_its_paths_and_the_root_redirects(
    tmp_path: Path,
) -> None:
    async with (
        serve_gateway(tmp_path, operator_ui={"path": "/ops"}) as running,
        running.client(token=None) as client,
    ):
        root = await client.get("/")
        assert root.status_code == 302 and root.headers["location"] == "/ops/"
        page = await client.get("/ops/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        boot = page.text.split('id="smithers-console-boot">', 1)[1].split("</script>")[0]
        assert json.loads(boot) == {
            "apiVersion": "v1",
            "consolePath": "/ops",
            "rpcPath": "/v1/rpc",
            "wsPath": "/",
        }
        assert "script-src 'self';" in page.headers["content-security-policy"]
        bare = await client.get("/ops")
        assert bare.status_code == 308 and bare.headers["location"] == "/ops/"
        script = await client.get("/ops/app.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert (await client.get("/ops/missing.js")).status_code == 404
        assert (await client.get("/console/")).status_code == 404


async def test_ui_true_serves_it_at_console_and_without_it_the_root_is_an_index(
    tmp_path: Path,
) -> None:
    async with (
        serve_gateway(tmp_path, ui=True) as running,
        running.client(token=None) as client,
    ):
        assert (await client.get("/")).headers["location"] == "/console/"
        assert (await client.get("/console/style.css")).status_code == 200
    (tmp_path / "plain").mkdir()
    async with (
        serve_gateway(tmp_path / "plain") as running,
        running.client(token=None) as client,
    ):
        assert (await client.get("/")).json()["service"] == "smithers gateway"
        assert (await client.get("/console/")).status_code == 404


async def test_a_mounted_gateway_serves_the_console_under_its_prefix(tmp_path: Path) -> None:
    gateway = Gateway(db=f"sqlite:///{tmp_path / 'gw.db'}", workspace_root=tmp_path, ui=True)
    host = Starlette(routes=[Mount("/gateway", app=gateway.app)])
    transport = httpx.ASGITransport(app=host)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        root = await client.get("/gateway/")
        assert root.status_code == 302 and root.headers["location"] == "/gateway/console/"
        bare = await client.get("/gateway/console")
        assert bare.status_code == 308 and bare.headers["location"] == "/gateway/console/"
        page = (await client.get("/gateway/console/")).text
        boot = json.loads(page.split('id="smithers-console-boot">', 1)[1].split("</script>")[0])
        assert boot["consolePath"] == "/gateway/console"
        assert (boot["rpcPath"], boot["wsPath"]) == ("/gateway/v1/rpc", "/gateway/")
        assert (await client.get("/gateway/console/conn.js")).status_code == 200


@pytest.mark.parametrize("path", ["/", "console", "/a//b", "/a/../b", 5])
def test_a_bad_console_path_is_refused(path: object) -> None:
    with pytest.raises(SmithersError) as refused:
        Gateway(operator_ui={"path": path})
    assert refused.value.code == "INVALID_REQUEST"


async def test_workflows_list_their_input_schema(tmp_path: Path) -> None:
    from smithers.loader import load_workflow

    examples = Path(__file__).resolve().parents[2] / "examples"
    async with serve_gateway(tmp_path) as running:
        running.gateway.register("approval", load_workflow(str(examples / "approval.py")))
        async with running.client() as client:
            listed = {w["key"]: w for w in (await client.get("/workflows")).json()["workflows"]}
            schema = listed["approval"]["inputSchema"]
            assert schema["properties"]["msg"]["default"] == "hello"
            assert listed["hello"]["inputSchema"] is None
            by_rpc = {w["key"]: w for w in await Rpc(client)("listWorkflows")}
            assert by_rpc["approval"]["inputSchema"] == schema
