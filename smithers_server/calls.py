"""Requests and answers, shared by both clients: each method builds a `Call` (method, path,
query, body, and how to read the answer) with one function here, and `result` turns the
answer into a value or a `SmithersAPIError`."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from .client_errors import SmithersAPIError, SmithersConnectionError

T = TypeVar("T")
Json = dict[str, Any]

TOKEN_ENV = "SMITHERS_API_KEY"


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    read: Callable[[Any], T]
    params: dict[str, str | int] | None = None
    body: Json | None = None


def segment(value: str) -> str:
    return quote(value, safe="")


def run_path(run_id: str, *rest: str) -> str:
    return "/".join(["/v1/runs", segment(run_id), *rest])


def as_object(data: Any) -> Json:
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object, got {type(data).__name__}")
    return data


def items_of(key: str | None) -> Callable[[Any], list[Json]]:
    def read(data: Any) -> list[Json]:
        items = as_object(data)[key] if key else data
        if not isinstance(items, list):
            raise TypeError(f"expected a JSON array, got {type(items).__name__}")
        return items

    return read


def read_run_id(data: Any) -> str:
    return str(as_object(data)["runId"])


def present(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def client_options(base_url: str, token: str | None, timeout: float | None) -> dict[str, Any]:
    token = token or os.environ.get(TOKEN_ENV) or None
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return {"base_url": base_url.rstrip("/"), "headers": headers, "timeout": timeout}


def api_error(response: httpx.Response) -> SmithersAPIError:
    """The error of a non-2xx answer (its body read): the envelope, or the status and text."""
    status = response.status_code
    try:
        envelope = as_object(as_object(response.json())["error"])
        code = str(envelope["code"])
        message = str(envelope.get("message") or code)
        details = envelope.get("details")
        return SmithersAPIError(status, code, message, details if isinstance(details, dict) else {})
    except (ValueError, KeyError, TypeError):
        text = " ".join(response.text.split())[:200]
        message = f"HTTP {status} {response.reason_phrase}".rstrip()
        return SmithersAPIError(
            status, f"HTTP_{status}", f"{message}: {text}" if text else message, {"body": text}
        )


def unreachable(base_url: str, exc: httpx.TransportError) -> SmithersConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        reason = f"timed out ({type(exc).__name__})"
    else:
        reason = " ".join(str(exc).split()) or type(exc).__name__
    return SmithersConnectionError(
        f"cannot reach the Smithers server at {base_url}: {reason}",
        {"url": base_url, "reason": reason},
    )


def result(call: Call[T], response: httpx.Response) -> T:
    if not response.is_success:
        raise api_error(response)
    try:
        return call.read(response.json())
    except (ValueError, KeyError, TypeError) as exc:
        raise SmithersAPIError(
            response.status_code,
            "INVALID_RESPONSE",
            f"unexpected answer to {call.method} {call.path}: {exc}",
        ) from exc


def start_run_call(
    workflow_path: str,
    input: Mapping[str, Any] | None,
    run_id: str | None,
    resume: bool,
    max_concurrency: int | None,
) -> Call[str]:
    body: Json = {"workflowPath": workflow_path, "input": dict(input or {})}
    body.update(present(runId=run_id, resume=True if resume else None))
    if max_concurrency is not None:
        body["config"] = {"maxConcurrency": max_concurrency}
    return Call("POST", "/v1/runs", read_run_id, body=body)


def list_runs_call(limit: int | None, status: str | None, workflow: str | None) -> Call[list[Json]]:
    params = present(limit=limit, status=status, workflow=workflow)
    return Call("GET", "/v1/runs", items_of(None), params=params)


def decide_call(
    run_id: str,
    node_id: str,
    verb: str,
    iteration: int,
    note: str | None,
    decided_by: str | None,
    decision: Mapping[str, Any] | None,
) -> Call[Json]:
    body = {"iteration": iteration, **present(note=note, decidedBy=decided_by)}
    if decision is not None:
        body["decision"] = dict(decision)
    return Call("POST", run_path(run_id, "nodes", segment(node_id), verb), as_object, body=body)


def signal_call(
    run_id: str, name: str, data: Any, correlation_id: str | None, received_by: str | None
) -> Call[Json]:
    body = {
        "data": {} if data is None else data,
        **present(correlationId=correlation_id, receivedBy=received_by),
    }
    return Call("POST", run_path(run_id, "signals", segment(name)), as_object, body=body)


def frames_call(run_id: str, limit: int | None, after_frame_no: int | None) -> Call[list[Json]]:
    params = present(limit=limit, afterFrameNo=after_frame_no)
    return Call("GET", run_path(run_id, "frames"), items_of(None), params=params)


def outputs_call(run_id: str, node_id: str | None) -> Call[list[Json]]:
    params = present(nodeId=node_id)
    return Call("GET", run_path(run_id, "outputs"), items_of(None), params=params)


def workflows_call() -> Call[list[Json]]:
    return Call("GET", "/v1/workflows", items_of(None))


def simple_call(method: str, path: str, body: Json | None = None) -> Call[Json]:
    return Call(method, path, as_object, body=body)
