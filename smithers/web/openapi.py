"""An OpenAPI 3.1 document generated from an app's routes.

Each endpoint declares what it reads and answers with `operation(...)` (or `by_method` for a
route that answers several methods); `openapi_document` walks the routes and takes each
declared body, query and response model's JSON schema, and the error statuses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast, get_args, get_origin

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .models import ErrorEnvelope, OpenAPIDocument
from .responses import JSONResponse

E = TypeVar("E", bound=Callable[..., Any])
ModelMode = tuple[type[BaseModel], JsonSchemaMode]
Refs = Mapping[ModelMode, dict[str, Any]]
Endpoint = Callable[[Request], Awaitable[Any]]

REF = "#/components/schemas/{model}"
# What the guard may answer on any route: a refused head, a foreign Host or Origin, a URL
# or head over the limits; and without a token, nothing.
HEAD_ERRORS = (400, 403, 414, 431)
AUTH_ERRORS = (401,)
# What reading a JSON body may answer besides a 400.
BODY_ERRORS = (400, 408, 413, 415)


@dataclass(frozen=True)
class Operation:
    """What one method of a route reads and answers. `response` is a model, `list[model]`,
    or None with `media_type` for a body that is not JSON (SSE, metrics)."""

    summary: str
    response: Any = None
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    media_type: str = "application/json"
    public: bool = False
    description: str | None = None


def operation(
    summary: str,
    response: Any = None,
    *,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    errors: Iterable[int] = (),
    media_type: str = "application/json",
    public: bool = False,
    description: str | None = None,
) -> Callable[[E], E]:
    """Declare an endpoint's operation for every method its route answers."""
    declared = Operation(
        summary, response, body, query, tuple(errors), media_type, public, description
    )

    def mark(endpoint: E) -> E:
        endpoint.__openapi__ = declared  # type: ignore[attr-defined]
        return endpoint

    return mark


def by_method(endpoints: dict[str, Endpoint]) -> Endpoint:
    """One endpoint for a route answering several methods, each with its own operation."""

    async def dispatch(request: Request) -> Any:
        return await endpoints[request.method](request)

    dispatch.__openapi__ = {  # type: ignore[attr-defined]
        method: getattr(endpoint, "__openapi__", None) for method, endpoint in endpoints.items()
    }
    return dispatch


def declared(route: Route) -> dict[str, Operation]:
    """The operations of a route by method (HEAD is GET's, and not listed)."""
    found = getattr(route.endpoint, "__openapi__", None)
    if isinstance(found, Operation):
        methods = sorted((route.methods or {"GET"}) - {"HEAD"})
        return {method: found for method in methods}
    if isinstance(found, dict):
        return {method: op for method, op in found.items() if isinstance(op, Operation)}
    return {}


def _models(op: Operation) -> list[ModelMode]:
    found: list[ModelMode] = []
    if op.body is not None:
        found.append((op.body, "validation"))
    response = _item(op.response)
    if response is not None:
        found.append((response, "serialization"))
    return found


def _item(response: Any) -> type[BaseModel] | None:
    if get_origin(response) is list:
        (response,) = get_args(response)
    return response if isinstance(response, type) and issubclass(response, BaseModel) else None


def _json(schema: dict[str, Any], description: str = "ok") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _responses(op: Operation, refs: Refs) -> dict[str, Any]:
    model = _item(op.response)
    if model is None:
        ok: dict[str, Any] = {"description": "ok", "content": {op.media_type: {}}}
    else:
        ref = refs[(model, "serialization")]
        ok = _json({"type": "array", "items": ref} if model is not op.response else ref)
    responses: dict[str, Any] = {"200": ok}
    statuses = {*HEAD_ERRORS, *op.errors}
    if not op.public:
        statuses |= set(AUTH_ERRORS)
    if op.body is not None:
        statuses |= set(BODY_ERRORS)
    if op.query is not None:
        statuses.add(400)
    for status in sorted(statuses):
        responses[str(status)] = {"$ref": "#/components/responses/Error"}
    return responses


def _parameters(route: Route, op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in route.param_convertors
    ]
    if op.query is not None:
        schema = op.query.model_json_schema(ref_template=REF)
        for name, prop in schema.get("properties", {}).items():
            params.append(
                {
                    "name": name,
                    "in": "query",
                    "required": name in schema.get("required", ()),
                    "schema": _not_null(prop),
                }
            )
    return params


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or text: `X | None` is described as X."""
    kept = {k: v for k, v in schema.items() if k not in ("title", "anyOf")}
    branches = [b for b in schema.get("anyOf", ()) if b != {"type": "null"}]
    if len(branches) == 1:
        kept.update(branches[0])
    elif branches:
        kept["anyOf"] = branches
    if kept.get("default", 0) is None:
        del kept["default"]
    return kept


def openapi_document(
    routes: Sequence[BaseRoute], *, title: str, version: str, root_path: str = ""
) -> dict[str, Any]:
    """The document of every route with declared operations; `root_path` (the mount
    prefix) is the one server URL, so clients resolve the paths under it."""
    operations = [
        (route, method, op)
        for route in routes
        if isinstance(route, Route)
        for method, op in declared(route).items()
    ]
    wanted: set[ModelMode] = {(ErrorEnvelope, "serialization")}
    for _, _, op in operations:
        wanted.update(_models(op))
    found, defs = models_json_schema(
        sorted(wanted, key=lambda pair: (pair[0].__name__, pair[1])), ref_template=REF
    )
    refs = cast(Refs, found)
    paths: dict[str, dict[str, Any]] = {}
    for route, method, op in operations:
        entry: dict[str, Any] = {"summary": op.summary, "responses": _responses(op, refs)}
        if op.description:
            entry["description"] = op.description
        if op.public:
            entry["security"] = []
        params = _parameters(route, op)
        if params:
            entry["parameters"] = params
        if op.body is not None:
            entry["requestBody"] = {
                "required": False,
                "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
            }
        paths.setdefault(route.path, {})[method.lower()] = entry
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "key": {"type": "apiKey", "in": "header", "name": "x-smithers-key"},
            },
            "schemas": defs.get("$defs", {}),
            "responses": {
                "Error": _json(
                    refs[(ErrorEnvelope, "serialization")],
                    "refused: the error envelope; `error.code` says why",
                )
            },
        },
        "security": [{"bearer": []}, {"key": []}],
    }
    if root_path:
        document["servers"] = [{"url": root_path}]
    return document


def openapi_endpoint(title: str, version: str) -> Endpoint:
    """`GET /openapi.json` of the app serving it, built once per mount prefix."""
    built: dict[str, dict[str, Any]] = {}

    @operation("This document (OpenAPI 3.1)", OpenAPIDocument)
    async def openapi(request: Request) -> Response:
        root_path: str = request.scope.get("root_path", "")
        if root_path not in built:
            built[root_path] = openapi_document(
                request.app.routes, title=title, version=version, root_path=root_path
            )
        return JSONResponse(built[root_path])

    return openapi
