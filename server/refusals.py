"""Refusals as the server writes them: ``trustkit.wire.ErrorBody`` in a JSON answer.

A route refuses by returning ``error_response(...)`` or by raising ``Refusal`` (which
the app turns into the same answer), so a check shared by several routes, such as the
repository name or the caller's token, can end a request from anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from fastapi.responses import JSONResponse

from trustkit.wire import ErrorBody

__all__ = ["Refusal", "error_response", "printable", "quoted"]

BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="trustkit"'}


def printable(text: str | None) -> str | None:
    """Text quoted from an upload, safe to encode: a lone surrogate becomes ``\\ud800``."""
    return None if text is None else text.encode("utf-8", "backslashreplace").decode()


def quoted(text: object) -> str:
    """A request-provided value as it goes into a log line: JSON-quoted, so a newline or
    a terminal escape in it shows as ``\\n`` or ``\\u001b`` and cannot forge a line."""
    return json.dumps(str(text))


def error_response(
    status: int,
    error: str,
    detail: str,
    role: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(error, printable(detail), printable(role))
    answer = JSONResponse(body.to_dict(), status_code=status)
    answer.headers.update(headers or {})
    return answer


class Refusal(Exception):
    """A refusal raised where it is found; the app answers it with ``response()``."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: str,
        role: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail, self.role = status, error, detail, role
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        return error_response(self.status, self.error, self.detail, self.role, self.headers)
