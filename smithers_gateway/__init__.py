"""smithers_gateway: the control plane (RPC over HTTP, auth and scopes, registered workflows)."""

from .gateway import Gateway
from .rpc import Call
from .server import GatewayServer

__all__ = ["Call", "Gateway", "GatewayServer"]
