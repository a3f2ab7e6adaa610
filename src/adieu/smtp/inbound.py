"""``adieu inbound --listen``: mail that comes back (mailto unsubscribes, ARF
complaints, DSN bounces) received over SMTP, or LMTP behind an MTA.

Nothing is ever answered by mail (R13, and no mail loops). A message is
acknowledged only once what it says is recorded; when the ledger cannot
answer, 451 asks the sending MTA to keep it and retry (RFC 5321 §4.2.5).

Every recipient of a message is read on its own (``Intake.process_each``):
two mailto addresses are two unsubscribes, two return paths two bounces.
Over SMTP there is one reply to DATA for them all (250 once all are
recorded; the retry after a 451 reads them all again, which records nothing
twice that matters: leaving again changes nothing). Over LMTP each
recipient gets its own reply, in RCPT order (RFC 2033 §4.2), so the MTA
retries only the ones that failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP

from adieu.feedback.intake import Intake
from adieu.service import Adieu
from adieu.smtp.replies import RECIPIENT_OK, RECORDED, reply_for
from adieu.smtp.server import run, serve

#: Reports are small; a returned original is cut by the reader anyway.
SIZE_LIMIT = 10 * 1024 * 1024


class InboundHandler:
    """aiosmtpd handler for ``adieu inbound --listen`` (SMTP or LMTP peers)."""

    def __init__(self, intake: Intake) -> None:
        self.intake = intake

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        envelope.rcpt_tos.append(address)
        return RECIPIENT_OK

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or b""
        recipients = list(envelope.rcpt_tos)
        if isinstance(server, LMTP):
            replies = await asyncio.to_thread(self._each, raw, recipients)
            return "\r\n".join(replies)
        try:
            await asyncio.to_thread(self.intake.process_each, raw, recipients)
        except Exception as exc:  # the one map: the sender keeps it and retries
            return reply_for(exc)
        return RECORDED

    def _each(self, raw: bytes, recipients: list[str]) -> list[str]:
        """LMTP: one reply per recipient, each recorded on its own."""
        reading = self.intake.reading(raw)
        replies = []
        for recipient in recipients:
            try:
                reading.recipient(recipient)
            except Exception as exc:  # this recipient is tried again, the others are done
                replies.append(reply_for(exc))
                continue
            replies.append(RECORDED)
        return replies

    async def handle_exception(self, error: Exception) -> str:
        """aiosmtpd's hook for an exception in any other command."""
        return reply_for(error)


def make_server(handler: InboundHandler, *, lmtp: bool = False) -> SMTP:
    protocol = LMTP if lmtp else SMTP
    return protocol(handler, data_size_limit=SIZE_LIMIT, enable_SMTPUTF8=True)


def run_inbound(make_adieu: Callable[[], Adieu], host: str, port: int, *, lmtp: bool) -> None:
    """Receive reports on ``host:port`` until SIGTERM or SIGINT."""

    def worker(index: int, sock: socket.socket) -> None:
        app = make_adieu()
        handler = InboundHandler(Intake(app))
        try:
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(serve(lambda: make_server(handler, lmtp=lmtp), sock))
        finally:
            app.close()

    run(worker, host, port)
