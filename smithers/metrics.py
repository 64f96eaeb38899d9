"""Prometheus metrics: one registry per app, fed by HTTP handling and by run events."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from .events import Event
from .http_metrics import HttpTally

DURATION_BUCKETS_MS = (
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1000,
    2500,
    5000,
    10000,
    30000,
    60000,
    300000,
    900000,
    3600000,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """The metrics of one app instance (two apps in a process do not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http = HttpTally(DURATION_BUCKETS_MS)
        r.register(self.http)
        # The guard calls this on every request: the tally's own method, no hop.
        self.observe_http = self.http.observe
        self.runs = Counter("smithers_runs_total", "Runs started", registry=r)
        self.runs_finished = Counter("smithers_runs_finished_total", "Runs finished", registry=r)
        self.runs_failed = Counter("smithers_runs_failed_total", "Runs failed", registry=r)
        self.runs_cancelled = Counter("smithers_runs_cancelled_total", "Runs cancelled", registry=r)
        self.runs_resumed = Counter("smithers_runs_resumed_total", "Runs resumed", registry=r)
        self.runs_active = Gauge("smithers_runs_active", "Runs started and not ended", registry=r)
        self.run_duration = Histogram(
            "smithers_run_duration_ms", "Run duration (ms)", buckets=DURATION_BUCKETS_MS, registry=r
        )
        self.nodes_started = Counter(
            "smithers_nodes_started_total", "Node attempts started", registry=r
        )
        self.nodes_finished = Counter("smithers_nodes_finished_total", "Nodes finished", registry=r)
        self.nodes_failed = Counter(
            "smithers_nodes_failed_total", "Node attempts failed", registry=r
        )
        self.node_duration = Histogram(
            "smithers_node_duration_ms",
            "Node attempt duration (ms)",
            buckets=DURATION_BUCKETS_MS,
            registry=r,
        )
        self.node_retries = Counter("smithers_node_retries_total", "Node retries", registry=r)
        self.approvals_requested = Counter(
            "smithers_approvals_requested_total", "Approvals requested", registry=r
        )
        self.approvals_granted = Counter(
            "smithers_approvals_granted_total", "Approvals granted", registry=r
        )
        self.approvals_denied = Counter(
            "smithers_approvals_denied_total", "Approvals denied", registry=r
        )
        self.approval_pending = Gauge(
            "smithers_approval_pending", "Approvals awaiting a decision", registry=r
        )
        self.approval_wait = Histogram(
            "smithers_approval_wait_duration_ms",
            "Time from approval request to decision (ms)",
            buckets=DURATION_BUCKETS_MS,
            registry=r,
        )
        self.events_emitted = Counter(
            "smithers_events_emitted_total", "Events appended", registry=r
        )
        self.tool_calls = Counter(
            "smithers_tool_calls_total", "Tool calls", ["tool", "status"], registry=r
        )
        self.sse_subscribers = Gauge("smithers_sse_subscribers", "Open SSE streams", registry=r)
        self._started: dict[str, int] = {}
        self._node_started: dict[tuple[str, str, int], int] = {}
        self._approval_requested: dict[tuple[str, str, int], int] = {}

    def observe_event(self, event: Event) -> None:
        """Count one committed event (the bus calls this for every event of the app's store)."""
        self.events_emitted.inc()
        p: dict[str, Any] = event.payload
        kind, ts, run_id = event.type, event.timestamp_ms, event.run_id
        node_key = (run_id, str(p.get("nodeId")), int(p.get("iteration") or 0))
        if kind == "RunStarted":
            if p.get("resumed"):
                self.runs_resumed.inc()
            else:
                self.runs.inc()
            if run_id not in self._started:
                self._started[run_id] = ts
                self.runs_active.inc()
        elif kind in ("RunFinished", "RunFailed", "RunCancelled"):
            {
                "RunFinished": self.runs_finished,
                "RunFailed": self.runs_failed,
                "RunCancelled": self.runs_cancelled,
            }[kind].inc()
            started = self._started.pop(run_id, None)
            if started is not None:
                self.runs_active.dec()
                self.run_duration.observe(ts - started)
        elif kind == "NodeStarted":
            self.nodes_started.inc()
            self._node_started[node_key] = ts
        elif kind in ("NodeFinished", "NodeFailed"):
            (self.nodes_finished if kind == "NodeFinished" else self.nodes_failed).inc()
            started = self._node_started.pop(node_key, None)
            if started is not None:
                self.node_duration.observe(ts - started)
        elif kind == "NodeCancelled":
            self._node_started.pop(node_key, None)
        elif kind == "NodeRetrying":
            self.node_retries.inc()
        elif kind == "ApprovalRequested":
            self.approvals_requested.inc()
            self.approval_pending.inc()
            self._approval_requested[node_key] = ts
        elif kind in ("ApprovalGranted", "ApprovalDenied", "ApprovalAutoApproved"):
            (self.approvals_denied if kind == "ApprovalDenied" else self.approvals_granted).inc()
            requested = self._approval_requested.pop(node_key, None)
            if requested is not None:
                self.approval_pending.dec()
                self.approval_wait.observe(ts - requested)
        elif kind == "ToolCallFinished":
            self.tool_calls.labels(str(p.get("toolName")), str(p.get("status"))).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
