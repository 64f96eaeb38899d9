"""smithers_serve: one workflow and one run behind HTTP (`smithers up --serve`)."""

from .app import create_serve_app

__all__ = ["create_serve_app"]
