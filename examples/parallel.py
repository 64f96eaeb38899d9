"""Three tasks at once (at most two at a time), then one that joins their results."""

import time

from pydantic import BaseModel

from smithers import Parallel, Task, Workflow, create_smithers


class Part(BaseModel):
    name: str
    length: int


class Total(BaseModel):
    total: int


smithers, outputs = create_smithers(part=Part, total=Total)

WORDS = ["alpha", "beta", "gamma"]


@smithers
def workflow(ctx):
    def measure(word: str):
        def run() -> dict[str, object]:
            time.sleep(0.05)
            return {"name": word, "length": len(word)}

        return run

    return Workflow(
        "parallel",
        [
            Parallel(
                [Task(f"measure-{w}", output=outputs.part, run=measure(w)) for w in WORDS],
                max_concurrency=2,
            ),
            Task(
                "sum",
                output=outputs.total,
                run=lambda: {"total": sum(p.length for p in ctx.outputs(outputs.part))},
            ),
        ],
    )
