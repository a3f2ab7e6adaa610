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

import logging
import sqlite3
import sys
import time
import traceback
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
FORM_TOO_LARGE = _("That form is too large.")
BODY_TOO_LARGE = _("The request body is over the limit of {limit} bytes.")
RETRY_AFTER_S = 5
#: Storage trouble is logged at most once in this many seconds.
UNAVAILABLE_LOG_S = 5.0
log = logging.getLogger("adieu.web")
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


class TooLarge(HTTPException):
    """A request body over its door's limit (413), refused as it arrived
    (``web.limits``): a form's, or an API call's."""

    def __init__(self, limit: int, *, form: bool) -> None:
        message = FORM_TOO_LARGE if form else BODY_TOO_LARGE.format(limit=limit)
        super().__init__(413, message)
        self.limit = limit


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
    if isinstance(exc, TooLarge):
        return Failure(413, "too_large", str(exc.detail))
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

    def answer(request: Request, exc: Exception) -> Response:
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

    async def handle(request: Request, exc: Exception) -> Response:
        """The named classes, answered by Starlette's exception middleware:
        nothing is re-raised, so what reaches the log is written here."""
        report(exc)
        return answer(request, exc)

    async def handle_unexpected(request: Request, exc: Exception) -> Response:
        """Anything else, answered by Starlette's outermost middleware, which
        then hands the exception to the server to log with its traceback."""
        return answer(request, exc)

    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    named: list[type[Exception]] = [
        HTTPException,
        RequestValidationError,
        AdieuError,
        FormRefused,
        DBAPIError,
        PoolTimeout,
        sqlite3.Error,  # the hot read path talks to the drivers directly
    ]
    psycopg = sys.modules.get("psycopg")  # loaded when the ledger is on PostgreSQL
    if psycopg is not None:
        named.append(psycopg.Error)
    app.add_exception_handler(Exception, handle_unexpected)
    for kind in named:
        app.add_exception_handler(kind, handle)


def report(exc: BaseException) -> None:
    """Log a failure the caller was answered for: storage trouble as one
    warning line (at most one every few seconds, with a count: an outage
    under load is not a flood of lines), anything else that answered 500 with
    its traceback. Database messages are cut to their first line: PostgreSQL's
    DETAIL lines carry the values of a row (addresses)."""
    if storage_trouble(exc):
        now = time.monotonic()
        _unavailable[1] += 1
        if now - _unavailable[0] >= UNAVAILABLE_LOG_S:
            times = f" ({_unavailable[1]} times since the last line)" if _unavailable[1] > 1 else ""
            log.warning("ledger unavailable%s: %s", times, brief(exc))
            _unavailable[:] = [now, 0]
    elif failure_of(exc).status >= 500:
        if _from_database(exc):  # where it failed, without what the database said
            frames = "".join(traceback.format_tb(exc.__traceback__))
            log.error("request failed: %s\n%s", brief(exc), frames)
        else:
            log.error("request failed: %s", brief(exc), exc_info=exc)


#: When storage trouble was last logged, and how often it happened since.
_unavailable: list[float] = [-UNAVAILABLE_LOG_S, 0]


def brief(exc: BaseException) -> str:
    """The class and first line of an exception, for a log line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


def _from_database(exc: BaseException) -> bool:
    from sqlalchemy.exc import DBAPIError

    psycopg = sys.modules.get("psycopg")
    drivers: tuple[type[BaseException], ...] = (sqlite3.Error,)
    if psycopg is not None:
        drivers += (psycopg.Error,)
    return isinstance(exc, (DBAPIError, *drivers))


__all__ = [
    "ApiError",
    "Failure",
    "FormRefused",
    "TooLarge",
    "error_response",
    "failure_of",
    "install",
    "report",
]
