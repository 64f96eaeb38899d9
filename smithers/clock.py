"""Wall-clock time as integer milliseconds since the epoch (the wire format), and how old
a heartbeat may grow before its run is anyone's."""

from __future__ import annotations

import os
import time

# A `running` run whose heartbeat is older than this may be claimed by anyone. Every
# process on one database must agree on it; SMITHERS_STALE_AFTER_MS changes it (tests
# shorten it; a deployment may lengthen it).
STALE_AFTER_MS = int(os.environ.get("SMITHERS_STALE_AFTER_MS") or 30_000)


def now_ms() -> int:
    return time.time_ns() // 1_000_000
