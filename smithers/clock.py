"""Wall-clock time as integer milliseconds since the epoch (the wire format)."""

from __future__ import annotations

import time


def now_ms() -> int:
    return time.time_ns() // 1_000_000
