"""RFC 8058 one-click as a plain ASGI app in front of the pages.

Mailbox providers POST to the List-Unsubscribe URL in bursts; this path does
only what the RFC asks (open the token, commit the unsubscribe, answer a
plain 200) without the framework's routing and dependency machinery, which
measured at about half of the cost of each request. The landing page's own
form posts to the same URL; those requests are handed on, body included, to
the page routes.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adieu.errors import InvalidToken
from adieu.i18n import gettext
from adieu.ledger import Channel
from adieu.service import Adieu
from adieu.web.commit import GroupCommit, from_link
from adieu.web.errors import failure_of
from adieu.web.forms import FORM_TYPE, MAX_FORM
from adieu.web.render import Pages

_PATH = re.compile(r"/u/([A-Za-z0-9_-]{1,1024})")
log = logging.getLogger("adieu.web")
_PLAIN = [(b"content-type", b"text/plain; charset=utf-8")]


class OneClick:
    def __init__(self, app: ASGIApp, adieu: Adieu, committer: GroupCommit, pages: Pages) -> None:
        self.app = app
        self.adieu = adieu
        self.committer = committer
        self.pages = pages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = (
            _PATH.fullmatch(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST"
            else None
        )
        if match is None:
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more and len(body) <= MAX_FORM:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = dict(scope["headers"])
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if kind == FORM_TYPE.encode() and _is_page_form(body):
            await self.app(scope, _replay(body, more, receive), send)
            return
        await self.one_click(match.group(1), headers, send)

    async def one_click(self, token: str, headers: dict[bytes, bytes], send: Send) -> None:
        accept = headers.get(b"accept-language", b"").decode("latin-1")
        try:
            payload = self.adieu.codec.open(token)
        except InvalidToken:
            locale = self.pages.locale_from(accept)
            await _respond(send, 400, gettext("This link is not valid.", locale))
            return
        locale = self.pages.locale_from(accept, payload)
        try:
            await self.committer.unsubscribe(
                from_link(payload, payload.scope, Channel.ONE_CLICK, "mail_client")
            )
        except Exception as exc:  # the link's topic is gone, the ledger is locked…
            failure = failure_of(exc)
            if failure.status >= 500:
                log.error("one-click not recorded: %s", failure.code, exc_info=exc)
            text = gettext("Something went wrong", locale)
            await _respond(send, failure.status, text, failure.headers)
            return
        # RFC 8058 §3.2: a plain 200, never a redirect, no cookies needed.
        await _respond(send, 200, gettext("You are unsubscribed.", locale))


def _is_page_form(body: bytes) -> bool:
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


async def _respond(
    send: Send, status: int, text: str, headers: dict[str, str] | None = None
) -> None:
    data = text.encode()
    extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*_PLAIN, (b"content-length", str(len(data)).encode()), *extra],
        }
    )
    await send({"type": "http.response.body", "body": data})
