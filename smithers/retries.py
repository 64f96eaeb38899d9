"""retryTask: run a failed task again, and let its run go on.

One transaction, like the other commands (`commands`): it checks the node, reopens it as
`pending` (its attempts stay, so the next one is numbered after the last; finished nodes
are never touched), records `NodeRetrying` and sets the run going again. A failed run
becomes `running` and unowned, its tasks cut short by the failure reopened with it; the
host's runtime adopts it at once (the touch reaches it in-process, other processes through
their scans). A run parked on an approval, a signal or a timer is released the same way;
a live run's owner re-renders and starts the task; a paused run stays paused until it is
resumed.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import SmithersError, run_not_active
from .lifecycle import locked_run, release_parked, reopen_node, reopen_run
from .store import node_reads
from .store import nodes as nodes_q
from .store.base import Store, Tx
from .store.records import NodeRecord, RunRecord

# What a node's last attempt may have come to for a retry: it failed, or a failure of its
# run cut it short.
RETRYABLE = ("failed", "cancelled")


@dataclass(frozen=True)
class Retry:
    run_id: str
    node_id: str
    iteration: int
    attempt: int  # the number the new attempt will have


def retry_failed_task(store: Store, run_id: str, node_id: str, iteration: int = 0) -> Retry:
    """Reopen a failed task of `run_id` and set the run going. NOT_FOUND for no such
    node, INVALID_REQUEST for a node that is not a task, NODE_NOT_FAILED for a task that
    has not failed (pending, running, waiting, finished, skipped), RUN_NOT_ACTIVE for a
    run that finished or was cancelled."""
    with store.write() as tx:
        run = locked_run(tx, run_id)
        if run.status in ("finished", "cancelled"):
            raise run_not_active(run_id, run.status)
        rec = _task(tx, run, node_id, iteration)
        reopened = [rec]
        if run.status == "failed":
            cut_short = nodes_q.nodes_in_states(tx.conn, run_id, ("cancelled",))
            reopened += [r for r in cut_short if (r.node_id, r.iteration) != (node_id, iteration)]
        for node in reopened:
            reopen_node(tx, run_id, node)
            tx.emit(
                run_id,
                "NodeRetrying",
                nodeId=node.node_id,
                iteration=node.iteration,
                attempt=node.last_attempt + 1,
                requested=True,
            )
        if run.status == "failed":
            reopen_run(tx, run_id)  # a pause asked before the failure ended with it
            tx.emit(run_id, "RunStatusChanged", status="running")
        else:
            release_parked(tx, run)
        tx.touch(run_id)
    return Retry(run_id, node_id, iteration, rec.last_attempt + 1)


async def retry_task(store: Store, run_id: str, node_id: str, iteration: int = 0) -> Retry:
    """Run a failed task of `run_id` again and set the run going (`retry_failed_task`);
    whoever drives the store's runs (a runtime that adopts them) takes it up."""
    return await store.run(retry_failed_task, store, run_id, node_id, iteration)


def _task(tx: Tx, run: RunRecord, node_id: str, iteration: int) -> NodeRecord:
    """The node's row, when it is a task whose last attempt failed."""
    run_id = run.run_id
    details = {"runId": run_id, "nodeId": node_id, "iteration": iteration}
    rec = nodes_q.get_node(tx.conn, run_id, node_id, iteration)
    mounted = node_reads.frame_tasks(tx.conn, run_id)
    if rec is None and (node_id, iteration) not in mounted:
        raise SmithersError(
            "NOT_FOUND", f"run {run_id!r} has no node {node_id!r} (iteration {iteration})", details
        )
    # A task gated by a denied approval never ran: the frame still lists it.
    is_task = node_id in {n for n, _ in mounted} or node_reads.has_attempt(tx.conn, run_id, node_id)
    if not is_task:
        raise SmithersError("INVALID_REQUEST", f"node {node_id!r} is not a task", details)
    state = "pending" if rec is None else rec.state
    if rec is None or state not in RETRYABLE:
        raise SmithersError(
            "NODE_NOT_FAILED",
            f"task {node_id!r} (iteration {iteration}) is {state}: only a failed task is retried",
            {**details, "state": state},
        )
    return rec
