"""An approval `go`, then one task logging `lines` lines (`size` characters each, default
40) as fast as it can: streams attach while the run waits, then all get the same burst."""

from pydantic import BaseModel

from smithers import Approval, Task, Workflow, create_smithers


class Said(BaseModel):
    lines: int


smithers, outputs = create_smithers(srv_burst=Said)


@smithers
def workflow(ctx):
    count = int(ctx.input.get("lines", 200))
    pad = "x" * int(ctx.input.get("size", 40))

    def burst(tctx) -> dict[str, int]:
        for i in range(count):
            tctx.log(f"{i} {pad}")
        return {"lines": count}

    steps = [
        Approval("go", request={"title": "Start?"}),
        Task("burst", output=outputs.srv_burst, run=burst),
    ]
    return Workflow("fanout", steps)
