"""Tools a task can call: sandboxed helpers that log their work to the run."""

from .bash import ToolCommandFailed, bash, bash_async

__all__ = ["ToolCommandFailed", "bash", "bash_async"]
