"""The errors of the Python clients: an answer that is a refusal, or no answer at all."""

from __future__ import annotations

from typing import Any

from smithers.errors import SmithersError


class SmithersAPIError(SmithersError):
    """The server answered with a non-2xx status (`status`, and its error envelope)."""

    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(code, message, details)
        self.http_status = status

    @property
    def status(self) -> int:
        return self.http_status

    def __str__(self) -> str:
        return f"{self.code} ({self.http_status}): {self.message}"

    def __repr__(self) -> str:
        return f"SmithersAPIError({self.http_status}, {self.code!r}, {self.message!r})"


class SmithersConnectionError(SmithersError):
    """No answer: the server could not be reached, timed out, or the stream kept failing."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__("UNREACHABLE", message, details)

    def __repr__(self) -> str:
        return f"SmithersConnectionError({self.message!r})"
