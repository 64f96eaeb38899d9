"""The RPC method table and its dispatch, shared by every transport (HTTP now, the
WebSocket protocol after it): method name -> required scope -> handler.

`dispatch` resolves a name (legacy aliases included), refuses a caller without the scope
(403 FORBIDDEN "Missing required scope X for M", `requiredScope`), and calls the handler
with a `Call`: the params, the caller's Principal and the Gateway's context. Handlers of
built-in methods are typed by a params model (`typed`); `extend`ed ones get the params as
a dict.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from smithers.errors import SmithersError
from smithers.principal import Principal
from smithers.service import RunService
from smithers.web.params import parse_model

from .context import GatewayContext

logger = logging.getLogger("smithers.gateway")

M = TypeVar("M", bound=BaseModel)
Handler = Callable[["Call"], Awaitable[Any]]
NAMESPACE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
METHOD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


@dataclass(frozen=True)
class Call:
    """One RPC call as a handler sees it."""

    method: str
    params: dict[str, Any]
    principal: Principal
    transport: str  # "http" or "ws"
    gateway: GatewayContext

    @property
    def service(self) -> RunService:
        return self.gateway.service

    @property
    def caller(self) -> Principal | None:
        """Who decides, for the checks an approval names (allowed users and scopes); None
        on an open Gateway, which knows no one."""
        return None if self.gateway.is_open else self.principal

    @property
    def user_id(self) -> str | None:
        return self.principal.user_id


@dataclass(frozen=True)
class Method:
    name: str
    scope: str
    handler: Handler
    aliases: tuple[str, ...] = ()
    ws_only: bool = False


def typed(
    name: str,
    scope: str,
    model: type[M],
    fn: Callable[[Call, M], Awaitable[Any]],
    *aliases: str,
    ws_only: bool = False,
) -> Method:
    """A method whose params are checked by `model` before `fn` sees them."""

    async def handler(call: Call) -> Any:
        return await fn(call, parse_model(model, call.params))

    return Method(name, scope, handler, aliases, ws_only)


@dataclass
class MethodTable:
    """Methods by name, and legacy names pointing at them."""

    methods: dict[str, Method] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def add(self, method: Method) -> None:
        for name in (method.name, *method.aliases):
            if name in self.methods or name in self.aliases:
                raise SmithersError("INVALID_REQUEST", f"RPC method {name!r} exists already")
        self.methods[method.name] = method
        for alias in method.aliases:
            self.aliases[alias] = method.name

    def add_all(self, methods: Iterable[Method]) -> None:
        for method in methods:
            self.add(method)

    def get(self, name: str) -> Method | None:
        return self.methods.get(self.aliases.get(name, name))

    def extend(self, namespace: str, definitions: Mapping[str, Any]) -> None:
        """Add `namespace.name` for each `{name: {"scope": ..., "handler": fn}}`; `fn(call)`
        may be sync or async and returns the payload (JSON-ready)."""
        if not isinstance(namespace, str) or not NAMESPACE.fullmatch(namespace):
            raise SmithersError("INVALID_REQUEST", f"namespace {namespace!r} is not a name")
        found = []
        for name, definition in definitions.items():
            if not isinstance(name, str) or not METHOD_NAME.fullmatch(name):
                raise SmithersError("INVALID_REQUEST", f"method name {name!r} is not a name")
            scope = definition.get("scope") if isinstance(definition, Mapping) else None
            fn = definition.get("handler") if isinstance(definition, Mapping) else None
            if not isinstance(scope, str) or not scope or not callable(fn):
                raise SmithersError(
                    "INVALID_REQUEST",
                    f"{namespace}.{name}: give {{'scope': 'run:read', 'handler': fn}}",
                )
            found.append(Method(f"{namespace}.{name}", scope, _as_async(fn)))
        self.add_all(found)


def _as_async(fn: Callable[[Call], Any]) -> Handler:
    async def handler(call: Call) -> Any:
        result = fn(call)
        return await result if inspect.isawaitable(result) else result

    return handler


def missing_scope(scope: str, method: str) -> SmithersError:
    return SmithersError(
        "FORBIDDEN",
        f"Missing required scope {scope} for {method}",
        {"requiredScope": scope, "method": method},
    )


async def dispatch(
    table: MethodTable,
    gateway: GatewayContext,
    principal: Principal,
    name: str,
    params: dict[str, Any],
    transport: str,
) -> Any:
    """Call method `name` for `principal`; raises SmithersError (METHOD_NOT_FOUND,
    FORBIDDEN, INVALID_REQUEST, the handler's own)."""
    method = table.get(name)
    outcome = "SERVER_ERROR"
    try:
        if method is None:
            raise SmithersError(
                "METHOD_NOT_FOUND", f"unknown method {name[:128]!r}", {"method": name[:128]}
            )
        allowed = principal.allows(method.scope, method.name) or principal.allows(
            method.scope, name
        )
        if not allowed:
            raise missing_scope(method.scope, name)
        if method.ws_only and transport != "ws":
            raise SmithersError("INVALID_REQUEST", f"{method.name} is WebSocket only")
        payload = await method.handler(Call(method.name, params, principal, transport, gateway))
        outcome = "ok"
        return payload
    except SmithersError as exc:
        outcome = exc.code
        raise
    finally:
        label = method.name if method is not None else "unknown"
        gateway.metrics.rpc_calls.labels(label, transport, outcome).inc()
