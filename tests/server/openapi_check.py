"""Every JSON response a test client receives, checked against the server's `/openapi.json`.

`ResponseCheck(document)` compiles the document once; `check(response)` finds the operation
by method and path template and validates the body against the schema of its status. A
status the operation does not list fails; a path or method no operation has (404, 405) must
still be the error envelope.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from jsonschema import Draft202012Validator

ENVELOPE = "#/components/schemas/ErrorEnvelope"


class ResponseCheck:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.prefix = (document.get("servers") or [{"url": ""}])[0]["url"].rstrip("/")
        self.routes = [
            (re.compile("^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(path)) + "$"), ops)
            for path, ops in document["paths"].items()
        ]
        self.validators: dict[str, Draft202012Validator] = {}
        self.checked = 0

    def validator(self, ref: str) -> Draft202012Validator:
        """One compiled validator per schema (by JSON pointer into the document)."""
        if ref not in self.validators:
            # The document's own parts sit beside the `$ref`, so its pointers resolve.
            root = {"$ref": ref, **{k: self.document[k] for k in ("components", "paths")}}
            self.validators[ref] = Draft202012Validator(root)
        return self.validators[ref]

    def schema_ref(self, method: str, path: str, status: int) -> str:
        """Where, in the document, the schema of this answer is."""
        if self.prefix and path.startswith(self.prefix):
            path = path[len(self.prefix) :]
        for pattern, ops in self.routes:
            if not pattern.match(path):
                continue
            template = next(p for p, o in self.document["paths"].items() if o is ops)
            op = ops.get(method.lower())
            if op is None:
                return ENVELOPE  # 405
            answer = op["responses"].get(str(status))
            assert answer is not None, f"{method} {template}: status {status} is not documented"
            if "$ref" in answer:
                return ENVELOPE
            assert "application/json" in answer["content"], (method, template, status)
            escaped = template.replace("~", "~0").replace("/", "~1")
            return (
                f"#/paths/{escaped}/{method.lower()}/responses/{status}"
                "/content/application~1json/schema"
            )
        return ENVELOPE  # no route: 404

    def check(self, response: httpx.Response) -> None:
        request = response.request
        content_type = response.headers.get("content-type", "")
        if request.method == "HEAD" or not content_type.startswith("application/json"):
            return
        response.read()
        if not response.content:
            return
        ref = self.schema_ref(request.method, request.url.path, response.status_code)
        errors = sorted(
            self.validator(ref).iter_errors(response.json()), key=lambda e: list(e.path)
        )
        assert not errors, (
            f"{request.method} {request.url.path} {response.status_code} does not match "
            f"{ref}: {errors[0].message} at {list(errors[0].path)}"
        )
        self.checked += 1
