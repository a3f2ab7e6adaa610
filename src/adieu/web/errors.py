"""The web door's one error map: every failure leaves here as an HTTP answer.

The path decides the form, as in datasette's ``handle_exception``: under
``/api/`` (and the other paths programs call) the JSON error shape
``{"error": {"status", "code", "message"}}``; under ``/admin`` the dashboard's
error page; anywhere else the recipient's page, in their language. The
status and the public code come from the error class (``adieu.errors``),
never from its name. Storage trouble is a 503 with ``Retry-After`` (nothing
was changed; the request may be repeated); anything unexpected a 500 without
a traceback (the server logs it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from adieu.errors import AdieuError, storage_trouble
from adieu.i18n import admin_text as _

SCHEMA_MISMATCH = _("The request does not match the API's schema.")
INTERNAL_ERROR = _("Something went wrong on our side. Please retry.")
UNAVAILABLE = _("The ledger cannot be reached just now. Nothing was changed; please retry.")
RETRY_AFTER_S = 5
#: Paths that programs call: their errors are JSON, whatever the error.
MACHINE_PATHS = ("/api/", "/metrics", "/healthz", "/hooks/", "/openapi.json")

#: Public codes of the HTTP-level errors (routing, size limits).
_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}
_HTTP_TEXT = {
    404: _("There is nothing at this address."),
    405: _("This address does not take that method."),
    413: _("The request is too large."),
}


class ApiError(AdieuError):
    """An error whose status and code are chosen where it is raised (auth, limits)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = status
        self.code = code
        self.headers = dict(headers or {})
        self.details = details


class FormRefused(Exception):
    """A state-changing page form that did not come from our own page."""

    def __init__(self, locale: str, context: dict[str, Any]) -> None:
        super().__init__("form refused")
        self.locale = locale
        self.context = context


@dataclass(frozen=True, slots=True)
class Failure:
    """What an exception means over HTTP."""

    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)
    details: list[dict[str, Any]] | None = None


def failure_of(exc: BaseException) -> Failure:
    """The one mapping from an exception to its HTTP status, code and message."""
    if isinstance(exc, ApiError):
        return Failure(exc.http_status, exc.code, str(exc), exc.headers, exc.details)
    if isinstance(exc, AdieuError) and not storage_trouble(exc):
        return Failure(exc.http_status, exc.code, str(exc))
    if isinstance(exc, RequestValidationError):
        details = [
            {"location": [str(part) for part in e.get("loc", ())], "message": str(e.get("msg", ""))}
            for e in exc.errors()[:50]
        ]
        return Failure(422, "invalid_request", SCHEMA_MISMATCH, details=details)
    if isinstance(exc, HTTPException):
        status = exc.status_code
        text = _HTTP_TEXT.get(status) or str(exc.detail)
        return Failure(status, _HTTP_CODES.get(status, "http_error"), text, dict(exc.headers or {}))
    if storage_trouble(exc):
        return Failure(503, "unavailable", UNAVAILABLE, {"Retry-After": str(RETRY_AFTER_S)})
    return Failure(500, "internal", INTERNAL_ERROR)


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    details: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    """The API's one error shape."""
    body: dict[str, Any] = {"status": status, "code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=dict(headers or {}))


#: Renders a page for a failure: (request, failure, exception) → response.
PageRenderer = Callable[[Request, Failure, BaseException], Response]


def install(
    app: FastAPI,
    *,
    page: PageRenderer,
    admin: PageRenderer,
    allowed_methods: Callable[[Request], set[str]],
) -> None:
    """Route every exception the app can raise through ``failure_of``."""

    async def handle(request: Request, exc: Exception) -> Response:
        failure = failure_of(exc)
        path = request.url.path
        if failure.status == 405 and path.startswith("/api/"):
            failure.headers["Allow"] = ", ".join(sorted(allowed_methods(request)))
        if path.startswith(MACHINE_PATHS):
            return error_response(
                failure.status,
                failure.code,
                failure.message,
                headers=failure.headers,
                details=failure.details,
            )
        if path == "/admin" or path.startswith("/admin/"):
            return admin(request, failure, exc)
        return page(request, failure, exc)

    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    # Named classes are answered by Starlette's exception middleware; the bare
    # ``Exception`` one by its outermost middleware, which logs the traceback.
    for kind in (
        Exception,
        HTTPException,
        RequestValidationError,
        AdieuError,
        FormRefused,
        DBAPIError,
        PoolTimeout,
    ):
        app.add_exception_handler(kind, handle)


__all__ = [
    "ApiError",
    "Failure",
    "FormRefused",
    "error_response",
    "failure_of",
    "install",
]
