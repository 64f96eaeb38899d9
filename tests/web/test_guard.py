"""The guard every app wears: Host parsed strictly, Origin same-origin or allowed, JSON
bodies only. Parsing is tested as pure functions; the behaviour on the single-run app
(`create_serve_app`, the same `build_app` as the server's) against a real parked run."""

from __future__ import annotations

from pathlib import Path

import pytest

from smithers import SmithersError, Store
from smithers.auth import Authority, normalise_origins, parse_authority, parse_origin
from smithers.web.body import is_json_media_type
from smithers_cli import main
from tests.helpers import event_types
from tests.serve.test_app import serving, status_of


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("127.0.0.1", Authority("127.0.0.1", None)),
        ("127.0.0.1:7331", Authority("127.0.0.1", 7331)),
        ("LocalHost:80", Authority("localhost", 80)),
        ("app.localhost", Authority("app.localhost", None)),
        ("[::1]:8080", Authority("::1", 8080)),
        ("[::1]", Authority("::1", None)),
        ("[0:0:0:0:0:0:0:1]:80", Authority("::1", 80)),
        ("example.com.", Authority("example.com.", None)),
        ("my_box:65535", Authority("my_box", 65535)),
    ],
)
def test_host_accepted(value: str, parsed: Authority) -> None:
    assert parse_authority(value) == parsed


@pytest.mark.parametrize(
    "value",
    [
        "127.0.0.1:7331@evil.com",
        "evil.com@127.0.0.1",
        "user:pw@127.0.0.1",
        "127.0.0.1/x",
        "127.0.0.1:80/",
        "127.0.0.1 :80",
        "127.0.0.1:",
        "127.0.0.1:+80",
        "127.0.0.1:65536",
        "127.0.0.1:80:80",
        "localhost#.evil.com",
        "127.0.0.1?x",
        "::1",
        "[::1",
        "[::1]x",
        "[fe80::1%25eth0]",
        "[127.0.0.1]",
        "127.1",
        "1.2.3.256",
        "evil.123",
        "",
        ".",
        "-a.com",
        "a..com",
        "é.com",
        "a" * 64 + ".com",
        "http://127.0.0.1",
    ],
)
def test_host_refused(value: str) -> None:
    assert parse_authority(value) is None


def test_loopback() -> None:
    for value in ("127.0.0.1", "127.9.9.9:1", "localhost", "x.localhost", "[::1]", "localhost."):
        authority = parse_authority(value)
        assert authority is not None and authority.is_loopback(), value
    for value in ("10.0.0.1", "localhost.evil.com", "127.0.0.1.nip.io", "[::2]", "evil.com"):
        authority = parse_authority(value)
        assert authority is not None and not authority.is_loopback(), value


@pytest.mark.parametrize(
    ("value", "origin"),
    [
        ("http://127.0.0.1:7331", "http://127.0.0.1:7331"),
        ("HTTP://LOCALHOST:80", "http://localhost"),
        ("https://app.example.com:443", "https://app.example.com"),
        ("http://[::1]:5173", "http://[::1]:5173"),
        ("null", None),
        ("http://127.0.0.1:7331/", None),
        ("http://a@127.0.0.1", None),
        ("file://x", None),
        ("ws://127.0.0.1", None),
        ("http://127.0.0.1?x", None),
        ("127.0.0.1:7331", None),
    ],
)
def test_origin(value: str, origin: str | None) -> None:
    assert parse_origin(value) == origin


def test_configured_origins() -> None:
    assert normalise_origins(["https://App.Example.com/", "http://localhost:3000"]) == {
        "https://app.example.com",
        "http://localhost:3000",
    }
    assert normalise_origins("http://localhost:3000") == {"http://localhost:3000"}
    for bad in ("null", "*", "localhost:3000", "http://x/path", ""):
        with pytest.raises(SmithersError):
            normalise_origins([bad])


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("application/json", True),
        ("Application/JSON; charset=UTF-8", True),
        ('application/json;charset="utf-8"', True),
        ("application/merge-patch+json", True),
        ("application/json; charset=latin-1", False),
        ("text/plain", False),
        ("text/plain; charset=utf-8", False),
        ("application/x-www-form-urlencoded", False),
        ("multipart/form-data; boundary=x", False),
        ("text/json", False),
        ("application/jsonx", False),
        ("application", False),
        ("", False),
    ],
)
def test_json_media_type(value: str, ok: bool) -> None:
    assert is_json_media_type(value) is ok


def test_cli_refuses_a_bad_allowed_origin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["server", "--root", str(tmp_path), "--allowed-origin", "null"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "allowed origin 'null'" in err


@pytest.mark.anyio
async def test_serve_app_guard(store: Store) -> None:
    options = {"allowed_origins": ["http://localhost:5173"]}
    async with serving(store, "approval.py", **options) as (client, run_id, rt):
        await rt.wait(run_id)
        before = event_types(store, run_id)
        refused = {
            "host with userinfo": {"host": "127.0.0.1:80@evil.com"},
            "host with a path": {"host": "127.0.0.1/x"},
            "foreign host": {"host": "evil.com"},
            "another local port": {"origin": "http://127.0.0.1:9999"},
            "null origin": {"origin": "null"},
            "unlisted origin": {"origin": "http://localhost:5174"},
        }
        for why, headers in refused.items():
            res = await client.post("/approve/review", json={}, headers=headers)
            assert res.status_code in (400, 403), (why, res.text)
            code = res.json()["error"]["code"]
            assert code == ("INVALID_REQUEST" if res.status_code == 400 else "FORBIDDEN"), why
        for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
            headers = {"content-type": content_type} if content_type else {}
            res = await client.post("/approve/review", content=b"{}", headers=headers)
            assert res.status_code == 415, (content_type, res.text)
            assert res.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
        assert event_types(store, run_id) == before
        assert status_of(store, run_id) == "waiting-approval"
        for headers in ({"origin": "http://127.0.0.1"}, {"origin": "http://localhost:5173"}):
            assert (await client.get("/", headers=headers)).status_code == 200, headers
        res = await client.post(
            "/approve/review",
            content=b"{}",
            headers={
                "content-type": "application/json; charset=utf-8",
                "origin": "http://127.0.0.1",
            },
        )
        assert res.status_code == 200, res.text
