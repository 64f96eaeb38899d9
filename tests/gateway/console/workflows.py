"""Workflows the console tests register beside the examples: a `select` approval and a
`rank` approval, each before a task."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from smithers import Approval, Task, Workflow, create_smithers


class Picked(BaseModel):
    message: str


smithers, outputs = create_smithers(console_picked=Picked)
COLOURS = [{"key": k, "label": k.capitalize()} for k in ("blue", "green", "red")]


@smithers
def pick(ctx: Any) -> Workflow:
    def picked() -> dict[str, str]:
        decision = ctx.approval("colour")
        chosen = (decision.decision or {}).get("selected") if decision else None
        return {"message": f"painted {chosen}"}

    return Workflow(
        "pick",
        [
            Approval("colour", request={"title": "Which colour?"}, mode="select", options=COLOURS),
            Task("paint", output=outputs.console_picked, run=picked),
        ],
    )


@smithers
def ranked(ctx: Any) -> Workflow:
    def order() -> dict[str, str]:
        decision = ctx.approval("order")
        return {"message": " > ".join((decision.decision or {}).get("ranked") or [])}

    return Workflow(
        "ranked",
        [
            Approval("order", request={"title": "Rank them"}, mode="rank", options=COLOURS),
            Task("sorted", output=outputs.console_picked, run=order),
        ],
    )
