"""Workflows the gateway tests register: one that reports its `ctx.auth`, one with
restricted approvals of each kind, one that waits for a signal, one that waits on a gate,
one whose task fails once, one a schedule starts, two that wait on a 2 s timer."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from smithers import Approval, Parallel, Signal, Task, Timer, Workflow, create_smithers


class Greeting(BaseModel):
    message: str


class Who(BaseModel):
    triggeredBy: str | None
    role: str | None
    scopes: list[str]
    createdAt: int | None


class Paid(BaseModel):
    amount: int


smithers, outputs = create_smithers(gw_greeting=Greeting, gw_who=Who, gw_paid=Paid)
OPTIONS = [{"key": k, "label": k.upper()} for k in ("blue", "green")]


@smithers
def hello(ctx: Any) -> Workflow:
    name = ctx.input.get("name", "world")
    auth = ctx.auth or {}
    who = {key: auth.get(key) for key in ("triggeredBy", "role", "createdAt")}
    return Workflow(
        "hello",
        [
            Task("greet", output=outputs.gw_greeting, run={"message": f"Hello, {name}!"}),
            Task("who", output=outputs.gw_who, run={**who, "scopes": auth.get("scopes") or []}),
        ],
    )


@smithers
def review(ctx: Any) -> Workflow:
    return Workflow(
        "review",
        [
            Parallel(
                [
                    Approval(
                        "owner",
                        request={"title": "Alice's call", "summary": "only alice"},
                        allowed_users=["alice"],
                    ),
                    Approval(
                        "release",
                        request={"title": "Release?"},
                        allowed_scopes=["release:approve"],
                    ),
                    Approval("colour", request={"title": "Which?"}, mode="select", options=OPTIONS),
                ]
            ),
            Task("done", output=outputs.gw_greeting, run={"message": "reviewed"}),
        ],
    )


@smithers
def payment(ctx: Any) -> Workflow:
    return Workflow(
        "payment",
        [
            Signal("paid", output=outputs.gw_paid),
            Task("receipt", output=outputs.gw_greeting, run={"message": "thanks"}),
        ],
    )


@smithers
def gate(ctx: Any) -> Workflow:
    return Workflow(
        "gate",
        [
            Approval("go", request={"title": "Go?"}),
            Task("went", output=outputs.gw_greeting, run={"message": "went"}),
        ],
    )


def _sleep(seconds: float) -> Any:
    def run() -> dict[str, str]:
        time.sleep(seconds)
        return {"message": "slept"}

    return run


@smithers
def slow(ctx: Any) -> Workflow:
    seconds = float(ctx.input.get("seconds", 0.3))
    return Workflow(
        "slow",
        [
            Task("first", output=outputs.gw_greeting, run=_sleep(seconds)),
            Task("second", output=outputs.gw_greeting, run=_sleep(seconds)),
        ],
    )


def _fails_once(flag: Path) -> Any:
    """A task that fails while `flag` does not exist (and creates it), then succeeds."""

    def run() -> dict[str, str]:
        if not flag.exists():
            flag.write_text("failed once")
            raise RuntimeError("the first attempt fails")
        return {"message": "second time lucky"}

    return run


@smithers
def flaky(ctx: Any) -> Workflow:
    return Workflow(
        "flaky",
        [
            Task("prep", output=outputs.gw_greeting, run={"message": "prepared"}),
            Task("shaky", output=outputs.gw_greeting, run=_fails_once(Path(ctx.input["flag"]))),
        ],
    )


@smithers
def tick(ctx: Any) -> Workflow:
    return Workflow("tick", [Task("done", output=outputs.gw_greeting, run={"message": "tick"})])


@smithers
def timed(ctx: Any) -> Workflow:
    return Workflow(
        "timed",
        [
            Task("before", output=outputs.gw_greeting, run={"message": "waiting"}),
            Timer("wait", duration_ms=2000),
            Task("after", output=outputs.gw_greeting, run={"message": "woke"}),
        ],
    )


@smithers
def timed_busy(ctx: Any) -> Workflow:
    """A 2 s timer that waits while a task runs: the run stays owned by its process."""
    return Workflow(
        "timed_busy",
        [
            Parallel(
                [
                    Timer("wait", duration_ms=2000),
                    Task("busy", output=outputs.gw_greeting, run=_sleep(1.0)),
                ]
            ),
            Task("after", output=outputs.gw_greeting, run={"message": "woke"}),
        ],
    )
