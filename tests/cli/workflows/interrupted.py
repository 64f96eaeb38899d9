"""A task that blocks a worker thread on its first attempt, then an approval.

`smithers up` is stopped while the task blocks (a thread Python cannot stop), then
resumed: the task runs again (second attempt, quick), the run parks on `review`.
"""

import time

from pydantic import BaseModel

from smithers import Approval, Task, Workflow, create_smithers


class Attempt(BaseModel):
    attempt: int


smithers, outputs = create_smithers(attempt=Attempt)


@smithers
def workflow(ctx):
    def block(tctx) -> dict[str, int]:
        tctx.log(f"attempt {tctx.attempt}")
        if tctx.attempt == 1:
            time.sleep(600)
        return {"attempt": tctx.attempt}

    return Workflow(
        "interrupted",
        [
            Task("block", output=outputs.attempt, run=block),
            Approval("review", request={"title": "Go on?"}),
        ],
    )
