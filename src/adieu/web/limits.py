"""Bounded request bodies: every door has a size limit, enforced as bytes arrive.

The limit sits in front of everything else (one-click, authentication, the
framework's body parsing), so no request can make the server hold more than
its door allows. A request whose ``Content-Length`` is over the limit is
refused before a byte of its body is read; one without (chunked) as soon as
the bytes read pass it. The refusal is ``web.errors.TooLarge``, an HTTP 413
raised from ``receive``: the error map answers it in the door's own shape
(the recipient's page, the dashboard's page, the API's JSON error), and
one-click in plain text. The rest of such a body is read and dropped by the
server, a buffer at a time, so the connection stays in step and the answer
reaches the client.

| door | limit |
|---|---|
| pages and their forms (``/u/…``, ``/p/…``, anything else) | 64 KiB |
| the dashboard's forms (``/admin…``) | 16 KiB |
| ``/api/v1`` | 10 MiB: 10,000 addresses a call (the batch limit) at up to 1 KiB each |
| ``POST /api/v1/suppressions/import`` | 512 MiB, streamed to disk |
| ``POST /hooks/{provider}`` | 8 MiB: the largest batch a provider posts (SendGrid's, SparkPost's) |
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adieu.web.admin.schemas import MAX_BATCH
from adieu.web.errors import TooLarge

#: A public page's form (the largest, the preference center, is far smaller).
PAGE_LIMIT = 64 * 1024
#: A dashboard form (sign-in, a lookup, a replay).
ADMIN_LIMIT = 16 * 1024
#: One API call: the batch limit of addresses, with room for each one's JSON.
API_LIMIT = MAX_BATCH * 1024
#: A suppression list streamed in (spooled to disk, never held in memory).
IMPORT_LIMIT = 512 * 1024 * 1024
IMPORT_PATH = "/api/v1/suppressions/import"
#: An email service provider's webhook: a batch of events (``adieu.esp.hooks``).
HOOKS_LIMIT = 8 * 1024 * 1024


#: Where a request without Content-Length or Transfer-Encoding has no body.
_HTTP1 = ("1.1", "1.0")


def limit_for(path: str) -> int:
    """The body limit of the door ``path`` belongs to."""
    if path.startswith("/api/"):
        return IMPORT_LIMIT if path == IMPORT_PATH else API_LIMIT
    if path.startswith("/hooks/"):
        return HOOKS_LIMIT
    if path.startswith("/admin"):
        return ADMIN_LIMIT
    return PAGE_LIMIT


class BodyLimit:
    """Plain ASGI middleware: the body limit of each door (see the module)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.app(scope, limited(scope, receive), send)


def limited(scope: Scope, receive: Receive) -> Receive:
    """``receive`` with the limit of the request's door: as it is when the
    body cannot exceed it, one that refuses at once a body declared larger,
    or one that counts the bytes as they come (``TooLarge`` past the limit)."""
    limit = limit_for(scope["path"])
    declared = -1
    framed = False  # a Content-Length or Transfer-Encoding: a body may follow
    for name, value in scope["headers"]:
        if name == b"content-length":
            framed = True
            if value.isdigit():  # (more digits than any limit has: over it)
                declared = int(value) if len(value) <= 18 else limit + 1
            break
        if name == b"transfer-encoding":
            framed = True
    if 0 <= declared <= limit or (not framed and scope.get("http_version") in _HTTP1):
        # The server delivers no more than Content-Length, and in HTTP/1 a
        # request with neither header has no body (RFC 9112 §6.3): nothing
        # to count (most GETs, the landing page's among them).
        return receive
    if declared > limit:
        return _refuse(limit, scope["path"])
    return _counted(receive, limit, scope["path"])


def _refused(limit: int, path: str) -> TooLarge:
    return TooLarge(limit, form=not path.startswith(("/api/", "/hooks/")))


def _refuse(limit: int, path: str) -> Receive:
    """A receive for a body declared too large: it reads nothing."""

    async def refused() -> Message:
        raise _refused(limit, path)

    return refused


def _counted(receive: Receive, limit: int, path: str) -> Receive:
    """A receive that refuses the body once more than ``limit`` bytes came."""
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _refused(limit, path)
        return message

    return counted
