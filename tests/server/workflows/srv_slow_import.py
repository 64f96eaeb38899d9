"""A module whose import blocks until the file `slow-import.go` exists beside it (at most
60 s), after leaving `slow-import.started` there: a stand-in for a heavy import."""

import os
import time

from pydantic import BaseModel

from smithers import Task, Workflow, create_smithers

_here = os.path.dirname(os.path.abspath(__file__))
open(os.path.join(_here, "slow-import.started"), "w").close()
_deadline = time.monotonic() + 60
while not os.path.exists(os.path.join(_here, "slow-import.go")) and time.monotonic() < _deadline:
    time.sleep(0.02)


class Done(BaseModel):
    ok: bool


smithers, outputs = create_smithers(srv_slow=Done)


@smithers
def workflow(ctx):
    return Workflow("slow-import", [Task("t", output=outputs.srv_slow, run={"ok": True})])
