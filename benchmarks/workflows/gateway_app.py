"""The Gateway the WebSocket benchmarks serve (benchmarks/bench_ws.py, bench_ws_fanout.py):

    smithers gateway benchmarks/workflows/gateway_app.py:gateway --db DB --port PORT

Open auth (loopback only). Workflows:
- `hello`: one task returning a greeting (examples/hello.py, by key).
- `chatty`: one task that logs `count` lines at `rate` lines/s on an absolute schedule, each
  line `"<i> <time.time_ns()>"` taken just before `tctx.log` commits its `NodeOutput` event;
  with `gated`, an approval `go` comes first, so subscribers can attach before any line.

Environment: `BENCH_MAX_CONNECTIONS` (default 1000, the Gateway's own default);
`BENCH_LIFT_STREAM_LIMITS=1` lifts the spec's run-stream limits (64 per run, 256 per
gateway), which a 1,000-subscriber fan-out on one run would otherwise hit.
"""

import os
import time

from pydantic import BaseModel

from smithers import Approval, Task, Workflow, create_smithers
from smithers_gateway import Gateway


class Greeting(BaseModel):
    message: str


class Lines(BaseModel):
    lines: int


smithers, outputs = create_smithers(greeting=Greeting, lines=Lines)


@smithers
def hello(ctx):
    name = ctx.input.get("name", "world")
    return Workflow(
        "hello",
        [Task("greet", output=outputs.greeting, run=lambda: {"message": f"Hello, {name}!"})],
    )


@smithers
def chatty(ctx):
    count = int(ctx.input.get("count", 1000))
    rate = float(ctx.input.get("rate", 500))
    delay = float(ctx.input.get("delay_ms", 0)) / 1000

    def chat(tctx) -> dict[str, int]:
        time.sleep(delay)
        start = time.perf_counter()
        for i in range(count):
            wait = start + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            tctx.log(f"{i} {time.time_ns()}")
        return {"lines": count}

    steps = [Task("chat", output=outputs.lines, run=chat)]
    if ctx.input.get("gated"):
        steps.insert(0, Approval("go", request={"title": "Start talking?"}))
    return Workflow("chatty", steps)


def gateway() -> Gateway:
    if os.environ.get("BENCH_LIFT_STREAM_LIMITS") == "1":
        from smithers_gateway import sockets

        sockets.STREAMS_PER_RUN = sockets.STREAMS_PER_GATEWAY = 100_000
    max_connections = int(os.environ.get("BENCH_MAX_CONNECTIONS", "1000"))
    return (
        Gateway(max_connections=max_connections)
        .register("hello", hello, description="one task")
        .register("chatty", chatty, description="one task logging lines at a rate")
    )
