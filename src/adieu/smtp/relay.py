"""``adieu relay``: a sender points its SMTP settings here and, with no code
change, every marketing message leaves compliant and nobody who has left gets
mail (R1, R8, R13).

SMTP stays apart from the logic, as in aiosmtpd's own handlers: RCPT asks the
send policy about each recipient; DATA stamps and signs one copy per
recipient and hands them to the upstream, answering 250 only once the
upstream took every copy (RFC 5321 §6.1: once accepted, a message is the
relay's responsibility) and 451 when it did not, so the client retries.
When an attempt fails half-way, the copies it did deliver are remembered by
the message's fingerprint, so the client's retry is not sent twice to the
same person.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import queue
import smtplib
import socket
import ssl
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesHeaderParser
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from adieu import metrics
from adieu.errors import AdieuError, InvalidAddress, InvalidInput
from adieu.mail.stamper import Stamper
from adieu.policy import Category
from adieu.processes import check_free
from adieu.secret import Secret
from adieu.service import Adieu
from adieu.smtp.replies import (
    AUTH_REQUIRED,
    BAD_ADDRESS,
    BAD_MESSAGE,
    NOT_WANTED,
    OK,
    TRY_LATER,
    printable,
    reply_for,
)
from adieu.smtp.server import FastPathSMTP, parse_hostport, parse_networks, run, serve
from adieu.smtp.upstream import Upstream, UpstreamConfig
from adieu.tokens import ALL

__all__ = [
    "RelayConfig",
    "RelayHandler",
    "RelaySMTP",
    "make_smtp",
    "parse_hostport",
    "parse_networks",
    "run_relay",
]

_CONTROL = ("X-Adieu-Category", "X-Adieu-Topic", "X-Adieu-Campaign")


def _fingerprint(envelope: Envelope) -> str:
    digest = hashlib.sha256()
    digest.update((envelope.mail_from or "").encode("utf-8", "replace") + b"\0")
    digest.update(("\0".join(sorted(envelope.rcpt_tos))).encode("utf-8", "replace") + b"\0")
    digest.update(envelope.original_content or b"")
    return digest.hexdigest()


class DecisionCounts(Counter[str]):
    """The relay's tallies (delivered, refused:REASON, …), mirrored into the
    Prometheus counter ``adieu_relay_decisions_total`` as they grow."""

    def __setitem__(self, key: str, value: int) -> None:
        grown = value - self.get(key, 0)
        super().__setitem__(key, value)
        if grown > 0:
            metrics.RELAY_DECISIONS.labels(key).inc(grown)


@dataclass
class RelayConfig:
    upstream: tuple[str, int]
    allow: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = ()
    category: str = Category.MARKETING.value
    topic: str | None = None
    drop_refused: bool = False
    user: str | None = None
    password: Secret | None = None
    upstream_timeout: float = 30.0
    upstream_user: str | None = None
    upstream_password: Secret | None = None
    upstream_tls: str = "starttls"  # "starttls", "implicit" or "none"
    upstream_ca_file: str | None = None
    counts: Counter[str] = field(default_factory=DecisionCounts, repr=False)

    @property
    def upstream_config(self) -> UpstreamConfig:
        host, port = self.upstream
        return UpstreamConfig(
            host,
            port,
            timeout=self.upstream_timeout,
            user=self.upstream_user,
            password=self.upstream_password,
            tls=self.upstream_tls,
            ca_file=self.upstream_ca_file,
        )


class RelayHandler:
    """The aiosmtpd handler: policy at RCPT, stamping and forwarding at DATA."""

    def __init__(self, adieu: Adieu, config: RelayConfig) -> None:
        self.adieu = adieu
        self.config = config
        self.stamper = Stamper(adieu)
        self.counts = config.counts
        self._delivered: OrderedDict[str, set[str]] = OrderedDict()
        self.sends = SendLog(adieu)
        self.upstream = Upstream(config.upstream_config)
        # Forwarding waits on the upstream most of the time: enough threads
        # that messages do not queue behind each other.
        self._workers = ThreadPoolExecutor(max_workers=32, thread_name_prefix="adieu-relay")

    # -- who may use the relay (never an open relay) -------------------------

    def authenticator(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        config = self.config
        if (
            isinstance(auth_data, LoginPassword)
            and config.user is not None
            and config.password is not None
            and hmac.compare_digest(auth_data.login, config.user.encode())
            and hmac.compare_digest(auth_data.password, config.password.reveal().encode())
        ):
            return AuthResult(success=True)
        self.counts["auth_failed"] += 1
        return AuthResult(success=False, handled=False)

    def _trusted(self, session: Session) -> bool:
        if session.authenticated:
            return True
        host = session.peer[0] if isinstance(session.peer, tuple) else session.peer
        try:
            peer = ipaddress.ip_address(str(host).split("%")[0])
        except (ValueError, IndexError, TypeError):
            return False
        return any(peer in network for network in self.config.allow)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if not self._trusted(session):
            self.counts["refused:not_authenticated"] += 1
            return AUTH_REQUIRED
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return OK

    # -- the send policy, per recipient ---------------------------------------

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        config = self.config
        try:
            # One indexed read (tens of microseconds): cheaper in the loop than
            # a hop to a thread that may be busy forwarding a message.
            decision = self.adieu.policy.may_send(address, config.topic, config.category)
        except InvalidAddress:
            return BAD_ADDRESS.format(address=printable(address))
        if not decision:
            self.counts[f"refused:{decision.reason}"] += 1
            if config.drop_refused:
                return OK  # accepted and dropped: the client never learns who left
            return NOT_WANTED.format(address=printable(address), why=decision.reason)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return OK

    # -- stamping and forwarding ----------------------------------------------------

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        crlf = content.count(b"\r\n")
        if content.count(b"\n") != crlf or content.count(b"\r") != crlf:
            # SMTP smuggling hides a second message behind <LF>.<LF>; refuse any bare LF/CR.
            self.counts["refused:bare_lf"] += 1
            return BAD_MESSAGE.format(why="Bare LF or CR in the message: end every line with CRLF")
        if not envelope.rcpt_tos:
            return OK  # every recipient was dropped
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._workers, self._deliver, envelope, content
            )
        except Exception as exc:  # the one map: a clear reply, never a traceback
            return reply_for(exc)

    async def handle_exception(self, error: Exception) -> str:
        """aiosmtpd's hook for an exception in any other command."""
        return reply_for(error)

    def _deliver(self, envelope: Envelope, content: bytes) -> str:
        # The raw header values are all that is needed here (no header objects).
        headers = BytesHeaderParser(policy=policy.compat32).parsebytes(content)
        if not headers.get("From"):
            raise InvalidInput("The message has no From header")
        category = str(headers.get("X-Adieu-Category") or self.config.category).strip().lower()
        if category not in {c.value for c in Category}:
            raise InvalidInput("X-Adieu-Category must be marketing or transactional")
        topic = str(headers.get("X-Adieu-Topic") or self.config.topic or "").strip() or None
        campaign = str(headers.get("X-Adieu-Campaign") or "").strip() or None
        cleaned = _without_control_headers(content)
        # Copies a failed earlier attempt of this very message already delivered.
        fingerprint = _fingerprint(envelope)
        done = set(self._delivered.pop(fingerprint, ()))
        copies: list[tuple[str, bytes]] = []
        for recipient in envelope.rcpt_tos:
            if recipient in done:
                continue
            # The message's own topic or category may be narrower than the
            # relay's default that RCPT used: ask again, drop who may not get it.
            if (topic, category) != (
                self.config.topic,
                self.config.category,
            ) and not self.adieu.policy.may_send(recipient, topic or ALL, category):
                self.counts["dropped:policy_at_data"] += 1
                continue
            copies.append(
                (recipient, self.stamper.stamp(cleaned, recipient, topic=topic, campaign=campaign))
            )
        delivered = self._forward(envelope.mail_from or "", copies, done)
        if delivered:
            self.sends.put((category, topic, campaign, delivered))
        if len(delivered) < len(copies):  # some copy was not taken: nothing is acknowledged
            self.counts["upstream_failed"] += 1
            self._delivered[fingerprint] = done
            while len(self._delivered) > 10_000:
                self._delivered.popitem(last=False)
            return TRY_LATER
        self.counts["delivered"] += len(delivered)
        return f"250 2.0.0 Accepted for {len(delivered)} recipient(s)"

    def _forward(self, sender: str, copies: list[tuple[str, bytes]], done: set[str]) -> list[str]:
        """Hand each copy to the upstream; the recipients it accepted.

        Each worker thread keeps its upstream connection open between messages.
        """
        delivered: list[str] = []
        for recipient, data in copies:
            try:
                self.upstream.send(sender, recipient, data)
            except (smtplib.SMTPException, OSError):
                self.upstream.drop()
                return delivered
            delivered.append(recipient)
            done.add(recipient)
        return delivered

    def close(self) -> None:
        """Close the kept upstream connections and record the last sends."""
        self.upstream.close()
        self._workers.shutdown(wait=True)
        self.sends.close()


class SendLog:
    """Records delivered copies for the frequency caps, in batches.

    A thread writes what has gathered every ``interval`` seconds in one
    transaction, so the relay does not wait for a durable commit per message;
    ``close`` writes the rest.
    """

    def __init__(self, adieu: Adieu, interval: float = 0.2) -> None:
        self._ledger = adieu.ledger
        self._queue: queue.SimpleQueue[tuple[str, str | None, str | None, list[str]] | None] = (
            queue.SimpleQueue()
        )
        self._interval = interval
        self._thread = threading.Thread(target=self._run, name="adieu-sendlog", daemon=True)
        self._thread.start()

    def put(self, item: tuple[str, str | None, str | None, list[str]]) -> None:
        self._queue.put(item)

    def _run(self) -> None:
        stop = False
        while not stop:
            time.sleep(self._interval)
            batches: dict[tuple[str, str | None, str | None], list[str]] = {}
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    continue
                category, topic, campaign, addresses = item
                batches.setdefault((category, topic, campaign), []).extend(addresses)
            for (category, topic, campaign), addresses in batches.items():
                with contextlib.suppress(AdieuError):
                    self._ledger.record_sends(
                        addresses, category=category, topic=topic, campaign=campaign
                    )

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)


def _without_control_headers(content: bytes) -> bytes:
    """The message without the X-Adieu-* instructions meant for the relay."""
    head, sep, body = content.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    kept: list[bytes] = []
    skipping = False
    names = tuple(n.lower().encode() + b":" for n in _CONTROL)
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                kept.append(line)
            continue
        skipping = line.lower().startswith(names)
        if not skipping:
            kept.append(line)
    return b"\r\n".join(kept) + sep + body


#: The relay's server class (kept under its old name).
RelaySMTP = FastPathSMTP


def make_smtp(
    handler: RelayHandler,
    *,
    tls: ssl.SSLContext | None,
    size_limit: int,
    hostname: str | None = None,
) -> SMTP:
    """The aiosmtpd server for one relay connection, with Adieu's limits."""
    return FastPathSMTP(
        handler,
        data_size_limit=size_limit,
        enable_SMTPUTF8=True,
        hostname=hostname,
        tls_context=tls,
        require_starttls=False,
        auth_required=False,
        auth_require_tls=True,
        authenticator=handler.authenticator,
        timeout=120,
    )


def run_relay(
    make_handler: Callable[[], RelayHandler],
    host: str,
    port: int,
    *,
    tls: ssl.SSLContext | None = None,
    size_limit: int = 25 * 1024 * 1024,
    workers: int = 1,
    metrics_at: tuple[str, int] | None = None,
) -> None:
    """Run the relay in ``workers`` processes sharing one listening port.

    Stamping and signing are CPU work under one interpreter lock per process,
    so a busy relay uses more cores with more processes. With ``metrics_at``,
    worker N serves Prometheus metrics on its port + N.
    """

    if metrics_at is not None:
        for index in range(max(workers, 1)):
            check_free(metrics_at[0], metrics_at[1] + index)

    def worker(index: int, sock: socket.socket) -> None:
        if metrics_at is not None:
            from prometheus_client import start_http_server

            start_http_server(metrics_at[1] + index, addr=metrics_at[0], registry=metrics.REGISTRY)
        handler = make_handler()
        try:
            asyncio.run(serve(lambda: make_smtp(handler, tls=tls, size_limit=size_limit), sock))
        finally:
            handler.close()

    run(worker, host, port, workers=workers)
