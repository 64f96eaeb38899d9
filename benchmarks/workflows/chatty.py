"""One task that logs `count` lines, `interval_ms` apart, each carrying `time.time_ns()`
taken just before `tctx.log` commits it (used by benchmarks/bench_event_latency.py)."""

import time

from pydantic import BaseModel

from smithers import Task, Workflow, create_smithers


class Lines(BaseModel):
    lines: int


smithers, outputs = create_smithers(lines=Lines)


@smithers
def workflow(ctx):
    count = int(ctx.input.get("count", 1000))
    interval = float(ctx.input.get("interval_ms", 2)) / 1000
    delay = float(ctx.input.get("delay_ms", 300)) / 1000

    def chat(tctx) -> dict[str, int]:
        time.sleep(delay)  # lets the SSE client subscribe before the first line
        for i in range(count):
            tctx.log(f"{i} {time.time_ns()}")
            time.sleep(interval)
        return {"lines": count}

    return Workflow("chatty", [Task("chat", output=outputs.lines, run=chat)])
