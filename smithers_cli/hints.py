"""The exact commands `smithers up` prints: what decides a waiting run, how to resume one."""

from __future__ import annotations

import shlex
from collections.abc import Callable

from .lines import Payload, where


def waiting_hint(run_id: str, db_url: str, url: str | None) -> Callable[[Payload], str | None]:
    """For an event that asks a person for something, the lines that say how to answer."""
    run, db = shlex.quote(run_id), shlex.quote(db_url)

    def hint(p: Payload) -> str | None:
        node = p.get("nodeId")
        if p.get("type") == "ApprovalRequested":
            title = (p.get("request") or {}).get("title") or ""
            it = int(p.get("iteration") or 0)
            target = f"{node} --iteration {it}" if it else f"{node}"
            lines = [
                f"{where(p)}: waiting for approval{': ' + title if title else ''}",
                f"  approve: smithers runs approve {run} {target} --db {db}",
                f"  deny:    smithers runs deny {run} {target} --db {db}",
            ]
            if url:
                body = f" -d '{{\"iteration\": {it}}}'" if it else ""
                lines.append(f"  or:      curl -X POST {url}/approve/{node}{body}")
            return "\n".join(lines)
        if p.get("type") == "NodeWaitingEvent":
            name = p.get("signalName")
            lines = [
                f"{node}: waiting for signal {name}",
                f"  send: smithers runs signal {run} {name} --data '{{}}' --db {db}",
            ]
            if url:
                lines.append(f"  or:   curl -X POST {url}/signals/{name} -d '{{\"data\": {{}}}}'")
            return "\n".join(lines)
        return None

    return hint


def resume_command(
    workflow: str, run_id: str, db_url: str | None, *, root: str = ".", allow_network: bool = False
) -> str:
    """`smithers up FILE --run-id RUN --resume`, with what it needs to find the same run and
    run its tasks the same way (`db_url`: None when the default finds the database)."""
    words = ["smithers", "up", workflow, "--run-id", run_id, "--resume"]
    if db_url is not None:
        words += ["--db", db_url]
    if root != ".":
        words += ["--root", root]
    if allow_network:
        words.append("--allow-network")
    return shlex.join(words)
