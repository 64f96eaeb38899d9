"""smithers_cli: the `smithers` command line, above the core and the apps it serves."""

from .main import main

__all__ = ["main"]
