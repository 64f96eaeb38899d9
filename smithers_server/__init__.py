"""smithers_server: the multi-workflow REST server and its Python client."""

from smithers.web.serving import ServerHandle

from .app import create_app
from .client import AsyncSmithersClient, SmithersAPIError, SmithersClient, SmithersConnectionError
from .server import start_server

__all__ = [
    "AsyncSmithersClient",
    "ServerHandle",
    "SmithersAPIError",
    "SmithersClient",
    "SmithersConnectionError",
    "create_app",
    "start_server",
]
