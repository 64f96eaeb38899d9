"""smithers_gateway: the control plane (RPC over HTTP, auth and scopes, registered workflows)."""

from .client import GatewayClient, GatewayError
from .gateway import Gateway
from .rpc import Call
from .server import GatewayServer
from .sync_client import SyncGatewayClient

__all__ = [
    "Call",
    "Gateway",
    "GatewayClient",
    "GatewayError",
    "GatewayServer",
    "SyncGatewayClient",
]
