"""CORS in-process (`smithers/web/cors.py`): on an open app (no token) and on the serve
app, with origins matched as the guard matches them. The real-server case, with a token,
is tests/server/test_cors.py."""

from __future__ import annotations

import httpx
import pytest

from smithers import SmithersError, Store
from smithers_server import create_app
from tests.serve.test_app import serving

pytestmark = pytest.mark.anyio

PAGE = "http://localhost:5173"


def asking(origin: str, method: str = "GET") -> dict[str, str]:
    return {"origin": origin, "access-control-request-method": method}


async def test_an_open_app_grants_listed_origins_only() -> None:
    app = create_app(cors_origins=[PAGE], metrics=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:7331") as c:
        granted = await c.options("/health", headers=asking(PAGE))
        assert granted.status_code == 200
        assert granted.headers["access-control-allow-origin"] == PAGE
        # The browser's serialisation may differ in case or spell the default port.
        same = await c.options("/health", headers=asking("HTTP://LOCALHOST:5173"))
        assert same.status_code == 200
        read = await c.get("/health", headers={"origin": PAGE})
        assert read.json() == {"ok": True}
        assert read.headers["access-control-allow-origin"] == PAGE

        other = await c.options("/health", headers=asking("http://localhost:8080"))
        assert other.status_code == 403 and other.json()["error"]["code"] == "FORBIDDEN"
        plain = await c.get("/health", headers={"origin": "http://localhost:8080"})
        assert plain.status_code == 403
        assert "access-control-allow-origin" not in plain.headers


async def test_the_serve_app_takes_cors_origins(store: Store) -> None:
    async with serving(store, "approval.py", cors_origins=[PAGE], auth_token="t") as (c, _, _):
        granted = await c.options("/approve/review", headers=asking(PAGE, "POST"))
        assert granted.status_code == 200
        assert granted.headers["access-control-allow-origin"] == PAGE
        view = await c.get("/", headers={"origin": PAGE, "x-smithers-key": "t"})
        assert view.status_code == 200
        assert view.headers["access-control-allow-origin"] == PAGE


def test_a_malformed_origin_is_refused_when_the_app_is_built() -> None:
    with pytest.raises(SmithersError) as exc:
        create_app(cors_origins=["localhost:5173"])
    assert exc.value.message.startswith("CORS origin 'localhost:5173' is not scheme://")
