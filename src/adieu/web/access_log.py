"""The request log of ``adieu serve --access-log``: one line per request on
standard error, with nothing in it that names a person.

A line is ``2026-12-04T16:07:02Z GET /u/… 200 1.4 ms``: the time (UTC), the
method, the path, the status and how long the answer took. A path segment
that may carry a token, an address or a contact's key (anything but a short
plain word) is written as ``…``, and a query string only as ``?…``; the
client's address is not written either.
"""

from __future__ import annotations

import re
import sys
import time
from datetime import UTC, datetime
from typing import TextIO

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: A path segment shown as it is: short, plain, and no "@" (the path is decoded).
_PLAIN = re.compile(r"[A-Za-z0-9._~-]{1,32}")
HIDDEN = "…"


def shown_path(path: str) -> str:
    """``path`` with every segment that is not a short plain word hidden."""
    return "/".join(s if not s or _PLAIN.fullmatch(s) else HIDDEN for s in path.split("/"))


class AccessLog:
    """ASGI middleware writing one line per HTTP request to ``out``."""

    def __init__(self, app: ASGIApp, out: TextIO | None = None) -> None:
        self.app = app
        self.out = out

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app fails before answering

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            took = (time.perf_counter() - started) * 1000
            path = shown_path(scope.get("path", "") or "/")
            query = "?" + HIDDEN if scope.get("query_string") else ""
            when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            out = self.out or sys.stderr
            out.write(f"{when} {scope.get('method', '-')} {path}{query} {status} {took:.1f} ms\n")
            out.flush()
