"""The Gateway's metrics: the engine's `smithers_*` plus `smithers_gateway_*`, and the
global change counter (`stateVersion`) that every committed event moves."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from smithers.events import Event
from smithers.metrics import Metrics


class GatewayMetrics(Metrics):
    def __init__(self) -> None:
        super().__init__()
        r = self.registry
        self.rpc_calls = Counter(
            "smithers_gateway_rpc_calls_total",
            "RPC calls by method, transport and outcome (ok or the error code)",
            ["method", "transport", "outcome"],
            registry=r,
        )
        self.connections = Gauge(
            "smithers_gateway_connections", "Open authenticated WebSocket connections", registry=r
        )
        self.streams = Gauge("smithers_gateway_streams", "Open run event streams", registry=r)
        self.webhooks_rejected = Counter(
            "smithers_gateway_webhooks_rejected",
            "Webhook deliveries refused, by reason (signature, timestamp, body_too_large, ...)",
            ["reason"],
            registry=r,
        )
        self.cron_fires = Counter(
            "smithers_gateway_cron_fires_total",
            "Cron fires this process claimed, by outcome (started or failed)",
            ["outcome"],
            registry=r,
        )
        self.state_version = 0

    def observe_event(self, event: Event) -> None:
        self.state_version += 1
        super().observe_event(event)
