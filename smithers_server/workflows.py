"""The workflows route: what a client may start, and the input each one takes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from smithers.web.models import WorkflowItem
from smithers.web.openapi import operation
from smithers.web.responses import JSONResponse

from .context import ServerContext


def routes(ctx: ServerContext) -> list[Route]:
    service = ctx.service

    @operation(
        "The workflows under the root",
        list[WorkflowItem],
        description="A file that cannot be loaded (an import error, or an import that did "
        "not finish within the load timeout) is listed with name null and an error; a "
        "module that defines no workflow is left out.",
    )
    async def workflows(request: Request) -> Response:
        return JSONResponse(await service.workflows())

    return [Route("/v1/workflows", workflows, methods=["GET"])]
