"""What the relay's tests share: an upstream stand-in that can refuse,
the relay under test on a free port, and a newsletter to send through it."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from adieu.mail.dkim import create_key, key_path
from adieu.service import Adieu
from adieu.smtp.relay import RelayConfig, RelayHandler, make_smtp
from conftest import MakeSettings
from support import free_port

MESSAGE = (
    "From: News <news@example.com>\r\nSubject: November\r\n"
    "Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n"
    "Message-ID: <n1@example.com>\r\nMIME-Version: 1.0\r\nX-Adieu-Campaign: nov\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n\r\nHello from the newsletter.\r\n"
)


class Sink:
    """The upstream stand-in: keeps what it is given, one copy per message.

    ``refuse`` answers every DATA with a 451; ``rcpt_replies`` and
    ``data_replies`` answer RCPT or DATA for one recipient with the reply
    given (a list is used up one reply per attempt); ``hang_up`` makes it
    close each connection after a message as Postfix does when a kept
    connection idles past ``smtpd_timeout`` (421, then the connection closes).
    ``pipelining`` offers PIPELINING (RFC 2920), as Postfix and the ESPs do.
    """

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.options: list[list[str]] = []
        self.refuse = False
        self.rcpt_replies: dict[str, str | list[str]] = {}
        self.data_replies: dict[str, str | list[str]] = {}
        self.hang_up = False
        self.connections = 0
        self.pipelining = False

    @staticmethod
    def _reply(replies: dict[str, str | list[str]], address: str) -> str | None:
        found = replies.get(address)
        if isinstance(found, list):
            return found.pop(0) if found else None
        return found

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        if session.host_name is None:
            self.connections += 1
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        reply = self._reply(self.rcpt_replies, address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return "451 4.3.0 Try later"
        for address in envelope.rcpt_tos:
            reply = self._reply(self.data_replies, address)
            if reply is not None:
                return reply
        self.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        )
        self.options.append(list(envelope.mail_options))
        if self.hang_up:
            asyncio.get_running_loop().call_later(0.05, self._hang_up, server)
        return "250 OK"

    @staticmethod
    def _hang_up(server: SMTP) -> None:
        transport = server.transport
        if isinstance(transport, asyncio.WriteTransport):
            transport.write(b"421 4.4.2 upstream.test Error: timeout exceeded\r\n")
            transport.close()

    @staticmethod
    def _is_report(sender: str, data: bytes) -> bool:
        return sender == "<>" and b"report-type=delivery-status" in data.partition(b"\r\n\r\n")[0]

    def recipients(self) -> list[str]:
        """Who got a copy (the relay's delivery reports left out)."""
        return sorted(
            r
            for sender, rcpts, data in self.messages
            if not self._is_report(sender, data)
            for r in rcpts
        )

    def reports(self) -> list[tuple[list[str], bytes]]:
        """The delivery status notifications the relay sent."""
        return [(r, data) for sender, r, data in self.messages if self._is_report(sender, data)]


class RelayController(Controller):
    def __init__(
        self,
        handler: RelayHandler,
        port: int,
        tls: ssl.SSLContext | None = None,
        size_limit: int = 200_000,
    ) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=port)
        self.tls = tls
        self.size_limit = size_limit

    def factory(self) -> Any:
        return make_smtp(self.handler, tls=self.tls, size_limit=self.size_limit)


def start_sink(*, pipelining: bool = False, **smtp: Any) -> tuple[Sink, Controller]:
    handler = Sink()
    handler.pipelining = pipelining
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **smtp)
    controller.start()
    return handler, controller


def make_app(make_settings: MakeSettings, **settings: Any) -> Adieu:
    made = make_settings(dkim_domain="example.com", dkim_selector="s1", **settings)
    create_key(key_path(made.data_dir, "s1"))
    adieu = Adieu(made)
    adieu.ledger.add_topic("news", "News")
    return adieu


def start_relay(
    app: Adieu, upstream: int, *, size_limit: int = 200_000, **kw: Any
) -> tuple[RelayController, RelayHandler]:
    tls = kw.pop("tls", None)
    config = RelayConfig(upstream=("127.0.0.1", upstream), **kw)
    handler = RelayHandler(app, config)
    controller = RelayController(handler, free_port(), tls, size_limit)
    controller.start()
    return controller, handler


class Relay:
    """A relay under test and what it is wired to, stopped in one call."""

    def __init__(self, app: Adieu, upstream: int, **kw: Any) -> None:
        from adieu.smtp.relay import parse_networks

        kw.setdefault("allow", parse_networks(["127.0.0.1/32"]))
        self.controller, self.handler = start_relay(app, upstream, **kw)
        self.port = self.controller.port

    def stop(self) -> None:
        self.controller.stop()
        self.handler.close()


def relay_running(app: Adieu, upstream: int, **kw: Any) -> Iterator[Relay]:
    relay = Relay(app, upstream, **kw)
    try:
        yield relay
    finally:
        relay.stop()
