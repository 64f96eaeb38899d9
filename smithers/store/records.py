"""Typed rows the store hands out."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# Re-exported: modules that read run rows test their status against these.
from ..states import TERMINAL_STATUSES as TERMINAL_STATUSES
from ..states import WAITING_STATUSES as WAITING_STATUSES


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: str
    parent_run_id: str | None
    workflow_name: str
    workflow_path: str | None
    workflow_hash: str | None
    status: str
    created_at_ms: int
    started_at_ms: int | None
    finished_at_ms: int | None
    heartbeat_at_ms: int | None
    runtime_owner_id: str | None
    cancel_requested_at_ms: int | None
    pause_requested_at_ms: int | None
    input: Any
    error: Any
    config: dict[str, Any]
    auth: dict[str, Any] | None
    last_seq: int
    command_seq: int

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_row(cls, row: Any) -> RunRecord:
        m = getattr(row, "_mapping", row)
        return cls(
            run_id=m["run_id"],
            parent_run_id=m["parent_run_id"],
            workflow_name=m["workflow_name"],
            workflow_path=m["workflow_path"],
            workflow_hash=m["workflow_hash"],
            status=m["status"],
            created_at_ms=m["created_at_ms"],
            started_at_ms=m["started_at_ms"],
            finished_at_ms=m["finished_at_ms"],
            heartbeat_at_ms=m["heartbeat_at_ms"],
            runtime_owner_id=m["runtime_owner_id"],
            cancel_requested_at_ms=m["cancel_requested_at_ms"],
            pause_requested_at_ms=m["pause_requested_at_ms"],
            input=loads(m["input_json"]) if m["input_json"] is not None else {},
            error=loads(m["error_json"]),
            config=loads(m["config_json"]) or {},
            auth=loads(m["auth_json"]),
            last_seq=int(m["last_seq"]),
            command_seq=int(m["command_seq"]),
        )


@dataclass(frozen=True, slots=True)
class NodeRecord:
    node_id: str
    iteration: int
    state: str
    last_attempt: int
    updated_at_ms: int
    output_table: str | None
    label: str | None
    first_frame_no: int
    fires_at_ms: int | None
    wait: dict[str, Any] | None
    error: Any

    @classmethod
    def from_row(cls, row: Any) -> NodeRecord:
        m = getattr(row, "_mapping", row)
        return cls(
            node_id=m["node_id"],
            iteration=m["iteration"],
            state=m["state"],
            last_attempt=m["last_attempt"],
            updated_at_ms=m["updated_at_ms"],
            output_table=m["output_table"],
            label=m["label"],
            first_frame_no=m["first_frame_no"],
            fires_at_ms=m["fires_at_ms"],
            wait=loads(m["wait_json"]),
            error=loads(m["error_json"]),
        )


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    run_id: str
    node_id: str
    iteration: int
    status: str
    requested_at_ms: int
    decided_at_ms: int | None
    note: str | None
    decided_by: str | None
    request: dict[str, Any]
    decision: Any
    auto_approved: bool

    @classmethod
    def from_row(cls, row: Any) -> ApprovalRecord:
        m = getattr(row, "_mapping", row)
        return cls(
            run_id=m["run_id"],
            node_id=m["node_id"],
            iteration=m["iteration"],
            status=m["status"],
            requested_at_ms=m["requested_at_ms"],
            decided_at_ms=m["decided_at_ms"],
            note=m["note"],
            decided_by=m["decided_by"],
            request=loads(m["request_json"]) or {},
            decision=loads(m["decision_json"]),
            auto_approved=bool(m["auto_approved"]),
        )


@dataclass(frozen=True, slots=True)
class SignalRecord:
    run_id: str
    seq: int
    signal_name: str
    correlation_id: str | None
    data: Any
    received_at_ms: int
    received_by: str | None
    consumed_by_node_id: str | None
    consumed_iteration: int | None

    @classmethod
    def from_row(cls, row: Any) -> SignalRecord:
        m = getattr(row, "_mapping", row)
        return cls(
            run_id=m["run_id"],
            seq=m["seq"],
            signal_name=m["signal_name"],
            correlation_id=m["correlation_id"],
            data=loads(m["payload_json"]),
            received_at_ms=m["received_at_ms"],
            received_by=m["received_by"],
            consumed_by_node_id=m["consumed_by_node_id"],
            consumed_iteration=m["consumed_iteration"],
        )


@dataclass(frozen=True, slots=True)
class FrameRecord:
    run_id: str
    frame_no: int
    created_at_ms: int
    xml_json: str
    xml_hash: str
    encoding: str
    mounted_task_ids_json: str
    task_index_json: str
    note: str | None

    @classmethod
    def from_row(cls, row: Any) -> FrameRecord:
        m = getattr(row, "_mapping", row)
        return cls(**{k: m[k] for k in cls.__slots__})

    def to_json(self) -> dict[str, Any]:
        return {
            "runId": self.run_id,
            "frameNo": self.frame_no,
            "createdAtMs": self.created_at_ms,
            "xmlJson": self.xml_json,
            "xmlHash": self.xml_hash,
            "encoding": self.encoding,
            "mountedTaskIdsJson": self.mounted_task_ids_json,
            "taskIndexJson": self.task_index_json,
            "note": self.note,
        }
