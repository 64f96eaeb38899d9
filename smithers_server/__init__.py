"""smithers_server: the multi-workflow REST server."""

from smithers.web.serving import ServerHandle

from .app import create_app
from .server import start_server

__all__ = ["ServerHandle", "create_app", "start_server"]
