"""Errors of the OpenAI-compatible API, in OpenAI's body::

    {"error": {"message": "...", "type": "invalid_request_error", "param": "n", "code": null}}

``ApiError`` carries the HTTP status and those four fields; ``install(app)`` registers
its handler. Invalid request bodies on OpenAI paths are answered the same way (400,
``param`` the first invalid field) by the app's validation handler (app.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

OPENAI_PREFIXES = ("/v1/chat/", "/v1/completions", "/v1/models")


class ApiError(Exception):
    """An error answered in OpenAI's error body."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message = status, message
        self.type, self.param, self.code = type_, param, code

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(self.body(), self.status, headers=headers)


def is_openai_path(path: str) -> bool:
    return path.startswith(OPENAI_PREFIXES)


def validation_error(exc: RequestValidationError) -> ApiError:
    """The first problem of an invalid body, as OpenAI reports it (400)."""
    errors = list(exc.errors())
    if not errors:
        return ApiError(400, "invalid request")
    first = errors[0]
    loc = [str(part) for part in first.get("loc", ()) if part not in ("body",)]
    param = ".".join(loc) or None
    where = f"{param}: " if param else ""
    return ApiError(400, f"{where}{first.get('msg', 'invalid value')}", param=param)


def install(app: FastAPI) -> None:
    """Answer ApiError in OpenAI's body."""

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()
