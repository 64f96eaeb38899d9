"""`POST /webhooks/{key}`: a signed delivery for a registered workflow goes as a signal to
its runs waiting for it, else starts a run.

In order: an unknown key (or one without `webhook=`) is 404; the body is read within the
body limit (an oversized one is 413 before any HMAC is computed); the signature and the
timestamp are checked (401); the body is parsed as JSON (400); the delivery id is claimed
in the database (a replay is 200 `"duplicate": true` with nothing done); then the signal
goes out, or a run starts. Each refusal counts in
`smithers_gateway_webhooks_rejected_total{reason}`.

The delivery id is claimed in its own transaction before the delivery, not in the
delivery's transactions: a delivery may signal several runs (one transaction each) and
start one (the host's own), so no single transaction holds it all. Claiming first makes a
replay racing on two gateways deliver once (one insert wins the primary key); a delivery
that fails before doing anything gives its claim back, so the sender's retry is taken. A
process that dies between the claim and the delivery loses that one delivery: at most
once, which is what a replay guard promises.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from smithers import deliveries
from smithers.clock import now_ms
from smithers.errors import SmithersError
from smithers.web.body import parse_json, read_body
from smithers.web.responses import JSONResponse, error_response

from .context import GatewayContext
from .webhook_config import WebhookConfig, pick, rejection

MAX_DELIVERY_ID = 256  # the column's width
MAX_RUN_ID = 128


@dataclass(frozen=True)
class Delivery:
    """What a verified body asks for, read by the webhook's dot paths."""

    payload: Any
    correlation_id: str | None
    run_id: str | None
    input: dict[str, Any] | None


class Refused(Exception):
    def __init__(self, reason: str, error: SmithersError) -> None:
        self.reason, self.error = reason, error


def _text(value: Any, what: str, limit: int) -> str | None:
    """An id picked from the body: a string (a number reads as its digits), or None."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value or len(value) > limit or "\x00" in value:
        raise SmithersError("INVALID_REQUEST", f"the webhook's {what} must be a short string")
    return value


def read_delivery(config: WebhookConfig, body: Any) -> Delivery:
    signal, run = config.signal, config.run
    input = None
    if config.starts_runs and run is not None:
        input = pick(body, run.inputPath)
        if input is not None and not isinstance(input, dict):
            raise SmithersError("INVALID_REQUEST", "the webhook's run input must be an object")
    if signal is None:
        return Delivery(None, None, None, input)
    correlation = pick(body, signal.correlationIdPath) if signal.correlationIdPath else None
    run_id = pick(body, signal.runIdPath) if signal.runIdPath else None
    return Delivery(
        payload=pick(body, signal.payloadPath),
        correlation_id=_text(correlation, "correlation id", 256),
        run_id=_text(run_id, "run id", MAX_RUN_ID),
        input=input,
    )


Delivered = tuple[list[dict[str, Any]], dict[str, Any] | None]


async def deliver(ctx: GatewayContext, key: str, config: WebhookConfig, d: Delivery) -> Delivered:
    """`(delivered, started)`: the signals sent, and the run started when none was. It
    raises only when it did nothing."""
    store = ctx.service.require_run_list()
    delivered: list[dict[str, Any]] = []
    if config.signal is not None:
        name = config.signal.name
        targets = await store.run(
            deliveries.signal_targets, store, key, name, d.correlation_id, d.run_id
        )
        refused: SmithersError | None = None
        for run_id in targets:
            try:
                sent = await ctx.service.signal(
                    run_id,
                    name,
                    d.payload,
                    correlation_id=d.correlation_id,
                    received_by=f"webhook:{key}",
                )
            except SmithersError as exc:
                if exc.code not in ("RUN_NOT_ACTIVE", "NOT_FOUND"):  # else it ended meanwhile
                    refused = refused or exc
                continue
            delivered.append(sent)
        if refused is not None and not delivered:
            raise refused  # the waiting runs refuse the payload: the sender's 400
    started = None
    if not delivered and config.starts_runs:
        auth = {"triggeredBy": f"webhook:{key}", "role": "system", "scopes": []}
        run_id = await ctx.service.launch(key, input=d.input, auth={**auth, "createdAt": now_ms()})
        started = {"runId": run_id, "workflow": key}
    return delivered, started


def webhook_routes(ctx: GatewayContext) -> list[BaseRoute]:
    counter = ctx.metrics.webhooks_rejected

    async def verified(request: Request, key: str) -> tuple[WebhookConfig, bytes]:
        entry = ctx.registry.get(key)
        config = None if entry is None else entry.options.get("webhook")
        if not isinstance(config, WebhookConfig):
            raise Refused("unknown_key", SmithersError("NOT_FOUND", f"no webhook {key!r}"))
        try:
            raw = await read_body(request, ctx.limits.max_body_bytes, ctx.limits.request_timeout_s)
        except SmithersError as exc:
            too_large = exc.code == "PAYLOAD_TOO_LARGE"
            raise Refused("body_too_large" if too_large else "invalid_request", exc) from None
        reason = rejection(config, request.headers, raw, time.time())
        if reason is not None:
            message = "signature mismatch" if reason == "signature" else "timestamp refused"
            raise Refused(reason, SmithersError("UNAUTHORIZED", message))
        return config, raw

    async def webhook(request: Request) -> Response:
        key = request.path_params["key"]
        try:
            config, raw = await verified(request, key)
            try:
                delivery = read_delivery(config, parse_json(raw))
                delivery_id = _text(
                    request.headers.get(config.deliveryIdHeader), "delivery id", MAX_DELIVERY_ID
                )
            except SmithersError as exc:
                invalid = SmithersError("INVALID_REQUEST", exc.message, exc.details)
                raise Refused("invalid_request", invalid) from None
        except Refused as refused:
            counter.labels(refused.reason).inc()
            return error_response(refused.error)
        store = ctx.service.require_run_list()
        claimed = delivery_id is None or await store.run(
            deliveries.claim_delivery, store, key, delivery_id
        )
        if not claimed:
            counter.labels("duplicate").inc()
            return JSONResponse({"ok": True, "duplicate": True})
        try:
            delivered, started = await deliver(ctx, key, config, delivery)
        except BaseException:
            if delivery_id is not None:  # nothing was done: a retry may try again
                with anyio.CancelScope(shield=True):
                    await store.run(deliveries.release_delivery, store, key, delivery_id)
            raise
        return JSONResponse({"ok": True, "delivered": delivered, "started": started})

    return [Route("/webhooks/{key}", webhook, methods=["POST"])]
