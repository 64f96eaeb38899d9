"""Blocking calls from async code."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import anyio

T = TypeVar("T")


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call `fn` in a worker thread."""
    return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs))
