"""JSON bytes as every HTTP answer is written: compact, UTF-8, orjson where it can."""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["dumps"]


def dumps(content: Any) -> bytes:
    try:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # what orjson refuses (an int past 64 bits) json still writes
        return json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()
