"""Read-side queries the apps serve: run views, run state, outputs, frames, approvals."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import lifecycle
from .clock import now_ms
from .encoding import dumps
from .events import Event
from .store import log as log_q
from .store import nodes as nodes_q
from .store import outputs as outputs_q
from .store import peek
from .store import runs as runs_q
from .store.base import Store
from .store.records import RunRecord
from .views import ViewCache

_STATE_BY_STATUS = {"finished": "succeeded"}


def run_state(store: Store, run: RunRecord, now: int | None = None) -> dict[str, Any]:
    """`runState`: what a run is doing now, including `stale` and `orphaned` owners."""
    now = now_ms() if now is None else now
    state: dict[str, Any] = {
        "state": _STATE_BY_STATUS.get(run.status, run.status),
        "computedAt": now,
    }
    if run.status == "running":
        health = lifecycle.liveness(run, now)
        if health == "orphaned":
            state["state"] = "orphaned"
            state["unhealthy"] = {"kind": "owner-gone", "ownerId": run.runtime_owner_id}
        elif health == "stale" and run.heartbeat_at_ms is not None:
            state["state"] = "stale"
            state["unhealthy"] = {
                "kind": "stale-heartbeat",
                "lastHeartbeatAtMs": run.heartbeat_at_ms,
                "staleDurationMs": now - run.heartbeat_at_ms,
            }
    elif run.status.startswith("waiting-"):
        blocked = _blocked(store, run)
        if blocked is not None:
            state["blocked"] = blocked
    return state


def _blocked(store: Store, run: RunRecord) -> dict[str, Any] | None:
    node_state = run.status
    with store.read() as conn:
        waiting = nodes_q.nodes_in_states(conn, run.run_id, (node_state,))
        if not waiting:
            return None
        first = min(waiting, key=lambda n: n.updated_at_ms)
        if node_state == "waiting-approval":
            appr = nodes_q.get_approval(conn, run.run_id, first.node_id, first.iteration)
            return {
                "kind": "approval",
                "nodeId": first.node_id,
                "iteration": first.iteration,
                "requestedAtMs": appr.requested_at_ms if appr else first.updated_at_ms,
            }
    if node_state == "waiting-event":
        wait = first.wait or {}
        return {
            "kind": "event",
            "nodeId": first.node_id,
            "iteration": first.iteration,
            "signalName": wait.get("signal"),
            "correlationId": wait.get("correlationId"),
            "timeoutAtMs": first.fires_at_ms,
        }
    return {
        "kind": "timer",
        "nodeId": first.node_id,
        "iteration": first.iteration,
        "firesAtMs": first.fires_at_ms,
    }


def get_run(store: Store, run_id: str) -> RunRecord | None:
    with store.read() as conn:
        return runs_q.get_run(conn, run_id)


def run_view(store: Store, run_id: str, cache: ViewCache | None = None) -> dict[str, Any] | None:
    """The JSON of `GET /v1/runs/{runId}`; an ended run's from `cache` while it is unchanged."""
    if cache is not None:
        marker = peek.run_marker(store, run_id)
        if marker is None:
            return None
        kept = cache.get(store, run_id, marker)
        if kept is not None:
            return kept
    return _read_view(store, run_id, cache)


def run_view_json(store: Store, run_id: str, cache: ViewCache) -> bytes | None:
    """`run_view`, encoded: an ended run's bytes from `cache` while it is unchanged."""
    marker = peek.run_marker(store, run_id)
    if marker is None:
        return None
    kept = cache.get_json(store, run_id, marker)
    if kept is not None:
        return kept
    view = cache.get(store, run_id, marker) or _read_view(store, run_id, cache)
    return None if view is None else dumps(view)


def _read_view(store: Store, run_id: str, cache: ViewCache | None) -> dict[str, Any] | None:
    with store.read() as conn:
        run = runs_q.get_run(conn, run_id)
        if run is None:
            return None
        summary = nodes_q.node_summary(conn, run_id)
    view: dict[str, Any] = {
        "runId": run.run_id,
        "workflowName": run.workflow_name,
        "status": run.status,
        "startedAtMs": run.started_at_ms,
        "finishedAtMs": run.finished_at_ms,
        "summary": summary,
        "runState": run_state(store, run),
    }
    if run.error is not None:
        view["error"] = run.error
    if cache is not None:
        cache.put(store, run_id, run, view)
    return view


def path_in_root(path: str | None, root: Path | None) -> str | None:
    """A run's recorded workflow path as a server shows it: relative to its root, or None
    when the file is not under that root (no host path leaves the server). Without a
    root, as recorded."""
    if path is None or root is None:
        return path
    recorded = Path(path)
    if not recorded.is_absolute():
        return recorded.as_posix()
    # Runs record the resolved path; one recorded otherwise is resolved here.
    for candidate in (recorded, Path(os.path.realpath(recorded))):
        if candidate.is_relative_to(root):
            return candidate.relative_to(root).as_posix()
    return None


def run_list_item(
    store: Store, run: RunRecord, now: int, root: Path | None = None
) -> dict[str, Any]:
    return {
        "runId": run.run_id,
        "workflowName": run.workflow_name,
        "workflowPath": path_in_root(run.workflow_path, root),
        "status": run.status,
        "createdAtMs": run.created_at_ms,
        "startedAtMs": run.started_at_ms,
        "finishedAtMs": run.finished_at_ms,
        "heartbeatAtMs": run.heartbeat_at_ms,
        "runState": run_state(store, run, now),
    }


def list_runs(
    store: Store,
    *,
    limit: int = 50,
    status: str | None = None,
    workflow: str | None = None,
    root: Path | None = None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Runs newest first. `workflow` is a workflow name or, given `root`, a `.py` path
    relative to it; with `root`, each `workflowPath` is relative to it (`path_in_root`)."""
    if workflow is not None and root is not None and workflow.endswith(".py"):
        workflow = os.path.realpath(root / workflow)  # as runs record it
    with store.read() as conn:
        found = runs_q.list_runs(conn, limit=limit, status=status, workflow=workflow, offset=offset)
    now = now_ms()
    return [run_list_item(store, run, now, root) for run in found]


def pending_approvals(store: Store, limit: int = 1000) -> list[dict[str, Any]]:
    """Requested approvals of live runs, oldest request first."""
    now = now_ms()
    with store.read() as conn:
        rows = nodes_q.pending_approvals(conn, limit)
    return [
        {
            "runId": appr.run_id,
            "nodeId": appr.node_id,
            "iteration": appr.iteration,
            "workflowName": m["workflow_name"],
            "runStatus": m["run_status"],
            "label": m["label"],
            "requestTitle": appr.request.get("title"),
            "requestSummary": appr.request.get("summary"),
            "requestedAtMs": appr.requested_at_ms,
            "waitingMs": max(0, now - appr.requested_at_ms),
            "note": appr.note,
            "decidedBy": appr.decided_by,
        }
        for appr, m in rows
    ]


def approval_requests(
    store: Store, *, run_id: str | None = None, workflow: str | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    """Requested approvals of live runs with what a decider needs to know (mode, options,
    who may decide), oldest request first; of one run or one workflow when given."""
    with store.read() as conn:
        rows = nodes_q.pending_approvals(conn, limit, run_id=run_id, workflow=workflow)
    return [
        {
            "runId": appr.run_id,
            "workflowKey": m["workflow_name"],
            "nodeId": appr.node_id,
            "iteration": appr.iteration,
            "label": m["label"],
            "requestTitle": appr.request.get("title"),
            "requestSummary": appr.request.get("summary"),
            "requestedAtMs": appr.requested_at_ms,
            "approvalMode": appr.request.get("mode", "approve"),
            "options": appr.request.get("options") or [],
            "allowedScopes": appr.request.get("allowedScopes") or [],
            "allowedUsers": appr.request.get("allowedUsers") or [],
        }
        for appr, m in rows
    ]


def list_frames(
    store: Store, run_id: str, *, limit: int = 50, after_frame_no: int | None = None
) -> list[dict[str, Any]]:
    with store.read() as conn:
        return [
            f.to_json()
            for f in log_q.list_frames(conn, run_id, limit=limit, after_frame_no=after_frame_no)
        ]


def events_page(store: Store, run_id: str, after_seq: int, limit: int) -> list[Event]:
    """At most `limit` of the run's events after `after_seq`, in order."""
    with store.read() as conn:
        return log_q.events_after(conn, run_id, after_seq, limit)


def run_events(store: Store, run_id: str, after_seq: int = -1) -> list[Event]:
    """The run's event log after `after_seq`, in order."""
    found: list[Event] = []
    with store.read() as conn:
        while True:
            page = log_q.events_after(conn, run_id, after_seq, 1000)
            found += page
            if len(page) < 1000:
                return found
            after_seq = page[-1].seq


def _output_json(store: Store, table_name: str, mapping: dict[str, Any]) -> dict[str, Any]:
    model = store.output_models.get(table_name)
    if model is not None:
        return outputs_q.from_row(model, mapping)
    return {k: v for k, v in mapping.items() if k not in ("run_id", "node_id", "iteration")}


def run_outputs(store: Store, run_id: str) -> dict[str, Any]:
    """Each finished node's output (latest iteration), by node id, as JSON."""
    with store.read() as conn:
        rows = outputs_q.finished_outputs(conn, run_id, store.output_tables)
    return {node_id: _output_json(store, table, row) for node_id, _, table, _, row in rows}


def output_list(store: Store, run_id: str, node_id: str | None = None) -> list[dict[str, Any]]:
    """What the run's tasks produced, one item per finished node and iteration, in the order
    they finished: `{nodeId, iteration, outputKey, output, finishedAtMs}`."""
    with store.read() as conn:
        rows = outputs_q.finished_outputs(conn, run_id, store.output_tables, node_id)
    return [
        {
            "nodeId": found_id,
            "iteration": iteration,
            "outputKey": table,
            "output": _output_json(store, table, row),
            "finishedAtMs": finished_at,
        }
        for found_id, iteration, table, finished_at, row in rows
    ]


__all__ = [
    "approval_requests",
    "get_run",
    "list_frames",
    "list_runs",
    "output_list",
    "pending_approvals",
    "run_outputs",
    "run_state",
    "run_view",
]


def last_seq(store: Store, run_id: str) -> int:
    """The seq of the run's last stored event (-1 for none)."""
    with store.read() as conn:
        run = runs_q.get_run(conn, run_id)
    return -1 if run is None else run.last_seq
