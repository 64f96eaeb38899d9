"""Requests uvicorn's parsers reject, over raw sockets against the real server app on both
HTTP protocols (httptools and h11): always the JSON error envelope, then a closed
connection, and never a 5xx."""

from __future__ import annotations

import json
import re
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from smithers.web.guard import MAX_HEAD_BYTES, MAX_URL_BYTES
from smithers.web.serving import (
    ServerHandle,
    SlowHeadersH11,
    _httptools_protocol,
    protocol_with_timeout,
    serve_in_thread,
)
from smithers_server.server import server_config
from tests.helpers import EXAMPLES

pytestmark = pytest.mark.timeout(60)

PROTOCOLS = {"h11": SlowHeadersH11, "httptools": _httptools_protocol()}
HOST = b"Host: 127.0.0.1\r\n"
JSON_POST = b"POST /v1/runs HTTP/1.1\r\n" + HOST + b"Content-Type: application/json\r\n"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    closed: bool

    def error(self) -> dict[str, Any]:
        """The envelope's `error`, after checking the common JSON headers."""
        assert self.headers["content-type"] == "application/json", self
        assert self.headers["cache-control"] == "no-store", self
        assert self.headers["x-content-type-options"] == "nosniff", self
        assert int(self.headers["content-length"]) == len(self.body), self
        envelope = json.loads(self.body)
        assert set(envelope) == {"error"}, envelope
        err: dict[str, Any] = envelope["error"]
        assert set(err) <= {"code", "message", "details"} and err["message"], err
        return err


def read_answer(sock: socket.socket, *, then_closed: bool = True) -> Answer:
    """One response (by Content-Length); with `then_closed`, also wait for the server to
    close the connection (`closed` says whether it did)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed without an answer after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "closed inside the body"
        body += chunk
    closed = False
    if then_closed:
        try:
            closed = sock.recv(1) == b""
        except ConnectionResetError:
            closed = True
    return Answer(int(status_line.split(" ")[1]), headers, body, closed)


def send(port: int, *parts: bytes) -> Answer:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for part in parts:
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break  # refused before all of it was sent: the answer is waiting
        return read_answer(sock)


@pytest.fixture(scope="module", params=sorted(PROTOCOLS))
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerHandle]:
    base = PROTOCOLS[request.param]
    assert base is not None, f"{request.param} is not installed"
    root = tmp_path_factory.mktemp("malformed")
    shutil.copy(EXAMPLES / "hello.py", root / "hello.py")
    config = server_config(port=0, db=f"sqlite:///{root / 's.db'}", root_dir=root)
    config.http = protocol_with_timeout(30.0, base)
    handle = serve_in_thread(config)
    yield handle
    handle.close()


def five_xx(server: ServerHandle) -> float:
    metrics = httpx.get(server.url + "/metrics", timeout=10).text
    found = re.findall(
        r'^smithers_http_requests_total\{[^}]*status_class="5xx"[^}]*\} (\S+)$', metrics, re.M
    )
    return sum(float(v) for v in found)


@pytest.fixture(autouse=True)
def no_5xx(server: ServerHandle) -> Iterator[None]:
    before = five_xx(server)
    yield
    assert five_xx(server) == before, "a 5xx was answered"


MALFORMED = {
    "content-length-not-a-number": JSON_POST + b"Content-Length: abc\r\n\r\n{}",
    "content-length-negative": JSON_POST + b"Content-Length: -1\r\n\r\n{}",
    "content-length-twice": JSON_POST + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    "content-length-and-chunked": JSON_POST
    + b"Content-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    "transfer-encoding-not-chunked": JSON_POST + b"Transfer-Encoding: gzip\r\n\r\n{}",
    "chunk-size-not-hex": JSON_POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    "method-not-a-token": b"G(T /health HTTP/1.1\r\n" + HOST + b"\r\n",
    "not-http": b"hello there\r\n\r\n",
    "nul-in-header": b"GET /health HTTP/1.1\r\n" + HOST + b"X-A: a\x00b\r\n\r\n",
    "no-host": b"GET /health HTTP/1.1\r\n\r\n",
    "host-twice": b"GET /health HTTP/1.1\r\n" + HOST + HOST + b"\r\n",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_request_gets_the_envelope(server: ServerHandle, case: str) -> None:
    answer = send(server.port, MALFORMED[case])
    assert answer.status == 400, answer
    assert answer.error()["code"] == "INVALID_REQUEST"
    assert answer.headers["connection"] == "close" and answer.closed


def test_url_of_100_kb_is_414(server: ServerHandle) -> None:
    url = b"/v1/runs?x=" + b"a" * 100_000
    whole = send(server.port, b"GET " + url + b" HTTP/1.1\r\n" + HOST + b"\r\n")
    # Never finished: the server answers while the request line is still arriving.
    unfinished = send(server.port, b"GET " + url)
    for answer in (whole, unfinished):
        assert answer.status == 414, answer
        err = answer.error()
        assert (err["code"], err["details"]) == ("URI_TOO_LONG", {"maxBytes": MAX_URL_BYTES})
        assert answer.closed
    # Just under the limit is served.
    url = b"/v1/runs?x=" + b"a" * (MAX_URL_BYTES - 20)
    ok = send(server.port, b"GET " + url + b" HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n")
    assert ok.status == 200, ok.body[:200]


def test_headers_of_100_kb_are_431(server: ServerHandle) -> None:
    head = b"GET /health HTTP/1.1\r\n" + HOST + b"X-Big: " + b"a" * 100_000
    whole = send(server.port, head + b"\r\n\r\n")
    unfinished = send(server.port, head)
    many = send(
        server.port,
        b"GET /health HTTP/1.1\r\n"
        + HOST
        + b"".join(b"X-%d: %s\r\n" % (i, b"b" * 90) for i in range(1000))
        + b"\r\n",
    )
    for answer in (whole, unfinished, many):
        assert answer.status == 431, answer
        err = answer.error()
        assert (err["code"], err["details"]) == ("HEADERS_TOO_LARGE", {"maxBytes": MAX_HEAD_BYTES})
        assert answer.closed


def test_malformed_after_a_good_request_on_one_connection(server: ServerHandle) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\n" + HOST + b"\r\n")
        first = read_answer(sock, then_closed=False)
        assert first.status == 200
        sock.sendall(b"GET /health HTTP/1.1\r\n" + HOST + b"Content-Length: x\r\n\r\n")
        second = read_answer(sock)
        assert second.status == 400 and second.error()["code"] == "INVALID_REQUEST"
        assert second.closed


def test_bad_chunk_inside_a_body_being_read(server: ServerHandle) -> None:
    """The app is already reading the body when the parser fails: one JSON answer, and the
    app's own reading ends as a refusal, not a 500."""
    answer = send(
        server.port,
        JSON_POST + b"Transfer-Encoding: chunked\r\n\r\n",
        b'5\r\n{"wor\r\n',
        b"nothex\r\n",
    )
    assert answer.status == 400 and answer.error()["code"] == "INVALID_REQUEST"
    assert answer.closed
