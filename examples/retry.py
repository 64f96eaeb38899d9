"""A task that fails twice and then succeeds (retries=2, exponential backoff).

The attempt count lives in a file so every attempt, in any process, sees it.
"""

import os
import tempfile
from pathlib import Path

from pydantic import BaseModel

from smithers import Task, Workflow, create_smithers


class Result(BaseModel):
    attempts: int


smithers, outputs = create_smithers(result=Result)


@smithers
def workflow(ctx):
    counter = Path(
        ctx.input.get("counter") or os.path.join(tempfile.gettempdir(), f"retry-{ctx.run_id}.count")
    )

    def flaky() -> dict[str, int]:
        count = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(count))
        if count < 3:
            raise RuntimeError(f"attempt {count} fails on purpose")
        return {"attempts": count}

    return Workflow(
        "retry",
        [
            Task("flaky", output=outputs.result, run=flaky, retries=2, retry_backoff_ms=20),
        ],
    )
