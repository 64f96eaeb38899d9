"""parse_json: what a request body may and may not be."""

from __future__ import annotations

import pytest

from smithers import SmithersError
from smithers.web.body import MAX_JSON_DEPTH, parse_json


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{bad", "INVALID_JSON"),
        (b'{"x": NaN}', "INVALID_JSON"),
        (b'{"x": -Infinity}', "INVALID_JSON"),
        (b"\xff\xfe{}", "INVALID_JSON"),
        (b'{"x": "\\ud800"}', "INVALID_JSON"),
        (b"[" * 10_000 + b"]" * 10_000, "INVALID_REQUEST"),
        (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), "INVALID_REQUEST"),
    ],
)
def test_refused(raw: bytes, code: str) -> None:
    with pytest.raises(SmithersError) as info:
        parse_json(raw)
    assert info.value.code == code


def test_accepted() -> None:
    assert parse_json(b"") == {}
    assert parse_json(b"  \n") == {}
    assert parse_json(b'{"a": [1, 2.5, "\\u00e9"]}') == {"a": [1, 2.5, "é"]}
    deepest = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert parse_json(deepest) is not None
