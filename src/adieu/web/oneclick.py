"""RFC 8058 one-click as a plain ASGI app in front of the pages.

Mailbox providers POST to the List-Unsubscribe URL in bursts; this path does
only what the RFC asks (open the token, commit the unsubscribe, answer a
plain 200) without the framework's routing and dependency machinery, which
measured at about half of the cost of each request. The landing page's own
form posts to the same URL; those requests are handed on, body included, to
the page routes.

The landing page (GET and HEAD of the same URL) is the page every scanner and
every reader opens; it is answered here too, by the page's own handler
without the routing in between. Whatever it cannot answer (a link that is
not valid, a ledger that cannot be read) goes on to the routes, whose error
pages say so in the reader's language.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adieu.errors import InvalidToken
from adieu.i18n import gettext
from adieu.ledger import Channel
from adieu.metrics import route_of, timer
from adieu.service import Adieu
from adieu.web.commit import GroupCommit, from_link
from adieu.web.errors import TooLarge, failure_of, report
from adieu.web.forms import FORM_TYPE
from adieu.web.limits import limited
from adieu.web.render import Pages

_PATH = re.compile(r"/u/([A-Za-z0-9_-]{1,1024})")
_PAGE_METHODS = ("GET", "HEAD")
_PLAIN = [(b"content-type", b"text/plain; charset=utf-8")]


class OneClick:
    """The outermost layer of the app (``AdieuApp``): it answers one-click
    POSTs and landing-page GETs itself, with the security headers and the
    latency metric the layers inside would have given, and hands everything
    else to them."""

    def __init__(
        self,
        app: ASGIApp,
        adieu: Adieu,
        committer: GroupCommit,
        pages: Pages,
        landing: Callable[[str, str, list[tuple[bytes, bytes]]], Awaitable[bytes]],
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        self.app = app
        self.adieu = adieu
        self.committer = committer
        self.pages = pages
        self.landing = landing
        self._html = [(b"content-type", b"text/html; charset=utf-8"), *headers]
        self._plain = [*_PLAIN, *headers]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _PATH.fullmatch(scope["path"]) if scope["type"] == "http" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        start = time.perf_counter()
        handed: Receive | None = receive  # what the layers inside are given to read
        if method in _PAGE_METHODS:
            if await self.landing_page(scope, send, method, match.group(1)):
                handed = None
        elif method == "POST":
            handed = await self.post(scope, receive, send, match.group(1))
        if handed is None:
            timer(route_of(scope["path"]), method).observe(time.perf_counter() - start)
        else:
            await self.app(scope, handed, send)

    async def landing_page(self, scope: Scope, send: Send, method: str, token: str) -> bool:
        """The landing page, or False for the routes to answer (a link that
        is not valid, anything unexpected: their error pages say so)."""
        try:
            page = await self.landing(method, token, scope["headers"])
        except Exception:
            return False
        length = (b"content-length", str(len(page)).encode())
        await send({"type": "http.response.start", "status": 200, "headers": [length, *self._html]})
        await send({"type": "http.response.body", "body": page})
        return True

    async def post(self, scope: Scope, receive: Receive, send: Send, token: str) -> Receive | None:
        """Answers a one-click POST (None); for one of the pages' own forms,
        the receive the routes read its body from (from the start again)."""
        body, more = b"", True
        try:
            # The pages' limit, as the layers inside would apply it.
            reading = limited(scope, receive)
            while more:
                message = await reading()
                if message["type"] != "http.request":
                    return None  # the client went away
                body += message.get("body", b"")
                more = message.get("more_body", False)
        except TooLarge:
            # No form of ours and no mail client sends this much: refused,
            # unread past the limit, and nothing recorded.
            locale = self.pages.locale_from(_header(scope, b"accept-language"))
            text = gettext("This form could not be accepted. Nothing was changed.", locale)
            await self.respond(send, 413, text)
            return None
        headers = dict(scope["headers"])
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if kind == FORM_TYPE.encode() and _is_page_form(body):
            return _replay(body, more, receive)
        await self.one_click(token, headers, send)
        return None

    async def one_click(self, token: str, headers: dict[bytes, bytes], send: Send) -> None:
        accept = headers.get(b"accept-language", b"").decode("latin-1")
        try:
            payload = self.adieu.codec.open(token)
        except InvalidToken:
            locale = self.pages.locale_from(accept)
            await self.respond(send, 400, gettext("This link is not valid.", locale))
            return
        locale = self.pages.locale_from(accept, payload)
        try:
            await self.committer.unsubscribe(
                from_link(payload, payload.scope, Channel.ONE_CLICK, "mail_client")
            )
        except Exception as exc:  # the ledger is locked, read-only, gone…
            # Never a 200 without the commit: storage trouble is a 503 with
            # Retry-After (mail clients try again); anything else its own
            # status, and 500 when unexpected.
            failure = failure_of(exc)
            report(exc)
            if failure.status == 503:
                text = gettext("Nothing was changed. Please try again in a moment.", locale)
            else:
                text = gettext("Something went wrong", locale)
            await self.respond(send, failure.status, text, failure.headers)
            return
        # RFC 8058 §3.2: a plain 200, never a redirect, no cookies needed.
        await self.respond(send, 200, gettext("You are unsubscribed.", locale))

    async def respond(
        self, send: Send, status: int, text: str, headers: dict[str, str] | None = None
    ) -> None:
        data = text.encode()
        extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        length = (b"content-length", str(len(data)).encode())
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [length, *self._plain, *extra],
            }
        )
        await send({"type": "http.response.body", "body": data})


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return ""


def _is_page_form(body: bytes) -> bool:
    if b"adieu-page" not in body:  # a mail client's body: no parsing needed
        return False
    try:
        return "adieu-page" in parse_qs(body.decode("utf-8", "replace"), max_num_fields=200)
    except ValueError:
        return False


def _replay(body: bytes, more: bool, receive: Receive) -> Receive:
    """A receive that gives back the body already read, then carries on."""
    given = False

    async def replayed() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return replayed
