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
import re
import signal
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
from adieu.processes import check_free, listening_socket, run_workers
from adieu.service import Adieu
from adieu.tokens import ALL

# RFC 3463 enhanced status codes, by name (as aiosmtpd's own tests do).
OK = "250 2.0.0 OK"
AUTH_REQUIRED = "530 5.7.0 Authentication required"
NOT_WANTED = "550 5.7.1 <{address}> does not receive this mail: {why}"
BAD_ADDRESS = "553 5.1.3 <{address}> is not a valid address"
BAD_MESSAGE = "554 5.6.0 {why}"
TRY_LATER = "451 4.4.1 The next hop did not take the message; please try again later"
LOCAL_ERROR = "451 4.3.0 {why}"

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
    password: str | None = None
    upstream_timeout: float = 30.0
    upstream_user: str | None = None
    upstream_password: str | None = None
    upstream_tls: str = "starttls"  # "starttls", "implicit" or "none"
    upstream_ca_file: str | None = None
    counts: Counter[str] = field(default_factory=DecisionCounts)


class RelayHandler:
    """The aiosmtpd handler: policy at RCPT, stamping and forwarding at DATA."""

    def __init__(self, adieu: Adieu, config: RelayConfig) -> None:
        self.adieu = adieu
        self.config = config
        self.stamper = Stamper(adieu)
        self.counts = config.counts
        self._delivered: OrderedDict[str, set[str]] = OrderedDict()
        self._local = threading.local()
        self.sends = SendLog(adieu)
        self._lock = threading.Lock()
        # Forwarding waits on the upstream most of the time: enough threads
        # that messages do not queue behind each other.
        self._workers = ThreadPoolExecutor(max_workers=32, thread_name_prefix="adieu-relay")
        self._open: set[smtplib.SMTP] = set()

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
            and hmac.compare_digest(auth_data.password, config.password.encode())
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
            return BAD_ADDRESS.format(address=_printable(address))
        except AdieuError as exc:
            return LOCAL_ERROR.format(why=_printable(str(exc)))
        if not decision:
            self.counts[f"refused:{decision.reason}"] += 1
            if config.drop_refused:
                return OK  # accepted and dropped: the client never learns who left
            return NOT_WANTED.format(address=_printable(address), why=decision.reason)
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
            result = await asyncio.get_running_loop().run_in_executor(
                self._workers, self._deliver, envelope, content
            )
        except InvalidInput as exc:
            return BAD_MESSAGE.format(why=_printable(str(exc)))
        return result

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
                self._send_one(sender, recipient, data)
            except (smtplib.SMTPException, OSError):
                self._drop_upstream()
                return delivered
            delivered.append(recipient)
            done.add(recipient)
        return delivered

    def _send_one(self, sender: str, recipient: str, data: bytes) -> None:
        try:
            self._upstream().sendmail(sender, [recipient], data)
        except (smtplib.SMTPServerDisconnected, ConnectionError):
            # a kept connection the upstream closed meanwhile: once more, fresh
            self._upstream(fresh=True).sendmail(sender, [recipient], data)

    def _upstream(self, fresh: bool = False) -> smtplib.SMTP:
        kept: smtplib.SMTP | None = getattr(self._local, "upstream", None)
        if kept is not None and not fresh:
            # A finished transaction leaves the session ready for the next
            # (RFC 5321 §4.1.4); a connection the upstream closed meanwhile
            # shows as a disconnect, and _send_one opens a fresh one.
            return kept
        self._drop_upstream()
        config = self.config
        host, port = config.upstream
        connection: smtplib.SMTP
        if config.upstream_tls == "implicit":
            connection = smtplib.SMTP_SSL(
                host, port, timeout=config.upstream_timeout, context=self._tls(verify=True)
            )
        else:
            connection = smtplib.SMTP(host, port, timeout=config.upstream_timeout)
        try:
            connection.ehlo_or_helo_if_needed()
            if config.upstream_tls == "starttls" and connection.has_extn("starttls"):
                # With credentials the certificate must be the upstream's own;
                # without, encryption is opportunistic (as between MTAs).
                connection.starttls(context=self._tls(verify=config.upstream_user is not None))
                connection.ehlo()
            if config.upstream_user is not None:
                if not isinstance(connection.sock, ssl.SSLSocket):
                    raise smtplib.SMTPException(
                        "the upstream offers no TLS: its password is never sent in the clear"
                    )
                connection.login(config.upstream_user, config.upstream_password or "")
        except BaseException:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                connection.close()
            raise
        self._local.upstream = connection
        with self._lock:
            self._open.add(connection)
        return connection

    def _tls(self, *, verify: bool) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.config.upstream_ca_file)
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _drop_upstream(self) -> None:
        connection = getattr(self._local, "upstream", None)
        self._local.upstream = None
        if connection is not None:
            self._close(connection)

    def _close(self, connection: smtplib.SMTP) -> None:
        with self._lock:
            self._open.discard(connection)
        with contextlib.suppress(smtplib.SMTPException, OSError):
            connection.close()

    def close(self) -> None:
        """Close the kept upstream connections and record the last sends."""
        with self._lock:
            connections = list(self._open)
        for connection in connections:
            self._close(connection)
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


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() and ch not in "<>" else "?" for ch in text)[:200]


_PLAIN_PATH = re.compile(r"\s*<((?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+)?)>(.*)", re.S)


class RelaySMTP(SMTP):
    """aiosmtpd's server with a fast path for plain ``<local@domain>`` paths.

    aiosmtpd parses every MAIL and RCPT path with the e-mail header parser
    (and defines a class per call); for a plain dot-atom address the result
    is the text between the brackets, which is what this returns. Anything
    else goes to aiosmtpd's own parser.
    """

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        match = _PLAIN_PATH.fullmatch(arg)
        if match is None or "(" in match.group(2):  # comments: let aiosmtpd read them
            return super()._getaddr(arg)
        address, rest = match.group(1), match.group(2)
        if not address:  # the null path, as aiosmtpd gives it
            return "<>", rest
        return address, rest.lstrip(" \t")


def make_smtp(
    handler: RelayHandler,
    *,
    tls: ssl.SSLContext | None,
    size_limit: int,
    hostname: str | None = None,
) -> SMTP:
    """The aiosmtpd server for one connection, with Adieu's limits."""
    return RelaySMTP(
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


async def serve_relay(
    handler: RelayHandler,
    sock: socket.socket,
    *,
    tls: ssl.SSLContext | None = None,
    size_limit: int = 25 * 1024 * 1024,
) -> None:
    """Serve on ``sock`` until SIGTERM or SIGINT, then finish cleanly."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: make_smtp(handler, tls=tls, size_limit=size_limit), sock=sock
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, server.close)
    async with server:
        with contextlib.suppress(asyncio.CancelledError):
            await server.serve_forever()


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
    """Run the relay in ``workers`` processes sharing one listening socket.

    Stamping and signing are CPU work under one interpreter lock per process,
    so a busy relay uses more cores with more processes. Each process builds
    its own handler (database connections are never shared across a fork).
    With ``metrics_at``, worker N serves Prometheus metrics on its port + N.
    """
    shared = workers > 1
    check_free(host, port)

    def run_one(index: int) -> None:
        if metrics_at is not None:
            from prometheus_client import start_http_server

            start_http_server(metrics_at[1] + index, addr=metrics_at[0], registry=metrics.REGISTRY)
        sock = listening_socket(host, port, shared=shared)
        handler = make_handler()
        try:
            asyncio.run(serve_relay(handler, sock, tls=tls, size_limit=size_limit))
        finally:
            handler.close()
            sock.close()

    run_workers(workers, run_one)


def parse_hostport(value: str, default_port: int) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host:
        return value, default_port
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise InvalidInput(f"{value!r} is not HOST:PORT.") from None


def parse_networks(values: Sequence[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    try:
        return [ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip()]
    except ValueError as exc:
        raise InvalidInput(f"Not a network: {exc}.") from None
