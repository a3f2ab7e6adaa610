"""The relay's client towards the upstream MTA or ESP: one kept connection per
forwarding thread, TLS and AUTH as the operator configured them.

Towards an ESP the password is sent only over TLS whose certificate was
verified (a user is set: the upstream must be who it says). Without
credentials, STARTTLS is opportunistic, as between MTAs (RFC 3207 §4).

``send`` hands over one copy (MAIL, RCPT and DATA in one write when the
upstream offers PIPELINING, RFC 2920, as Postfix and the ESPs do) and says
how it went in one of two exceptions: ``UpstreamRefused`` (the upstream
answered no for this copy, for now or for good) or ``UpstreamUnavailable``
(no answer to be had: it cannot be reached, or the connection broke twice).
A kept connection the upstream closed meanwhile (Postfix says ``421`` when
one idles past its ``smtpd_timeout``), or one that broke, is opened afresh
and the copy tried once more before either. Whatever happens, the
connection is left ready for the next message, or dropped.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from adieu.secret import Secret

_Reply = tuple[int, bytes]

_STATUS = re.compile(rb"^\s*([245]\.\d{1,3}\.\d{1,3})\s*")

#: The reply to a copy for an internationalised address when the upstream
#: offers no SMTPUTF8 (RFC 6531 §3.5).
NO_SMTPUTF8 = "The next hop does not take internationalised addresses (no SMTPUTF8)"


@dataclass(frozen=True)
class UpstreamConfig:
    host: str
    port: int
    timeout: float = 30.0
    user: str | None = None
    password: Secret | None = None
    tls: str = "starttls"  # "starttls", "implicit" or "none"
    ca_file: str | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """The upstream's answer to a copy it did not take."""

    code: int
    #: The enhanced status code (RFC 3463), e.g. ``5.1.1``; empty when none was given.
    status: str
    #: The rest of the reply, on one line.
    text: str
    #: Where it said no: ``mail``, ``rcpt``, ``data``, or ``relay`` for the
    #: relay's own finding (an address the upstream cannot take).
    stage: str

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600


class UpstreamRefused(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(f"{refusal.code} {refusal.status} {refusal.text}".strip())
        self.refusal = refusal


class UpstreamUnavailable(Exception):
    """The upstream cannot be reached, or broke the connection twice."""


def refusal_of(code: int, reply: bytes | str, stage: str) -> Refusal:
    raw = reply.encode("utf-8", "replace") if isinstance(reply, str) else reply
    match = _STATUS.match(raw)
    status = match.group(1).decode() if match else ""
    text = raw[match.end() :] if match else raw
    return Refusal(code, status, " ".join(text.decode("utf-8", "replace").split()), stage)


@dataclass(frozen=True, slots=True)
class Features:
    """What the upstream said it offers in its EHLO reply."""

    size: int | None
    smtputf8: bool
    eightbitmime: bool


#: A plain path, quoted here as smtplib would quote it (``<local@domain>``)
#: without parsing it as a header address first.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+")


def _quick_mail(connection: smtplib.SMTP, sender: str, options: Sequence[str]) -> _Reply:
    """smtplib's ``mail`` for a plain sender (or the null one) and no SMTPUTF8:
    the same command, without the e-mail header parser smtplib quotes with."""
    null = sender in ("", "<>")
    if not (null or _PLAIN_PATH.fullmatch(sender)) or any(o.lower() == "smtputf8" for o in options):
        return smtplib.SMTP.mail(connection, sender, options)
    extra = " " + " ".join(options) if options and connection.does_esmtp else ""
    connection.putcmd("mail", f"FROM:<{'' if null else sender}>{extra}")
    return connection.getreply()


def _quick_rcpt(connection: smtplib.SMTP, recipient: str, options: Sequence[str]) -> _Reply:
    """smtplib's ``rcpt`` for a plain recipient (see ``_quick_mail``)."""
    if not _PLAIN_PATH.fullmatch(recipient):
        return smtplib.SMTP.rcpt(connection, recipient, options)
    extra = " " + " ".join(options) if options and connection.does_esmtp else ""
    connection.putcmd("rcpt", f"TO:<{recipient}>{extra}")
    return connection.getreply()


def _quick_data(connection: smtplib.SMTP, message: Any) -> _Reply:
    """smtplib's ``data`` for bytes: dot-stuffing (RFC 5321 §4.5.2) with a
    byte replace instead of a regular expression over the whole message."""
    if not isinstance(message, bytes):
        return smtplib.SMTP.data(connection, message)
    connection.putcmd("data")
    code, reply = connection.getreply()
    if code != 354:
        raise smtplib.SMTPDataError(code, reply)
    connection.send(_stuffed(message))
    return connection.getreply()


def _stuffed(message: bytes) -> bytes:
    """``message`` as sent after DATA: dot-stuffed (RFC 5321 §4.5.2), ending
    in CRLF, then the line of one dot."""
    stuffed = message.replace(b"\n.", b"\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"


def _sendmail(
    connection: smtplib.SMTP, sender: str, recipient: str, data: bytes, options: list[str]
) -> None:
    """smtplib's ``sendmail`` of one copy to one recipient, with its replies
    and exceptions; when the upstream offers PIPELINING (RFC 2920) and the
    paths are plain, MAIL, RCPT and DATA go in one write and their replies
    are read in turn, so that a copy takes two round trips, not four."""
    null = sender in ("", "<>")
    if not (
        connection.has_extn("pipelining")
        and (null or _PLAIN_PATH.fullmatch(sender))
        and _PLAIN_PATH.fullmatch(recipient)
        and not any(o.lower() == "smtputf8" for o in options)
    ):
        connection.sendmail(sender, [recipient], data, mail_options=options)
        return
    connection.ehlo_or_helo_if_needed()
    if connection.has_extn("size"):
        options = [f"size={len(data)}", *options]
    extra = " " + " ".join(options) if options else ""
    path = "" if null else sender
    # As smtplib writes each (lower case, the options after one space).
    connection.send(f"mail FROM:<{path}>{extra}\r\nrcpt TO:<{recipient}>\r\ndata\r\n".encode())
    mail = connection.getreply()
    rcpt = connection.getreply()
    go = connection.getreply()
    if go[0] == 354 and (mail[0] != 250 or rcpt[0] not in (250, 251)):
        # A server that takes DATA with no recipient (RFC 2920 §3.1 says it
        # must not) is sent an empty message, for nobody, to end it.
        connection.send(b".\r\n")
        connection.getreply()
    refused: smtplib.SMTPException
    code = mail[0]
    if code != 250:
        refused = smtplib.SMTPSenderRefused(code, mail[1], sender)
    elif rcpt[0] not in (250, 251):
        code = rcpt[0]
        refused = smtplib.SMTPRecipientsRefused({recipient: rcpt})
    elif go[0] != 354:
        code = go[0]
        refused = smtplib.SMTPDataError(*go)
    else:
        connection.send(_stuffed(data))
        done = connection.getreply()
        if done[0] == 250:
            return
        code = done[0]
        refused = smtplib.SMTPDataError(*done)
    if code == 421:
        connection.close()
    else:
        connection._rset()  # type: ignore[attr-defined]
    raise refused


class _SMTP(smtplib.SMTP):
    """smtplib's client with the quick MAIL, RCPT and DATA above."""

    def mail(self, sender: str, options: Sequence[str] = ()) -> _Reply:
        return _quick_mail(self, sender, options)

    def rcpt(self, recip: str, options: Sequence[str] = ()) -> _Reply:
        return _quick_rcpt(self, recip, options)

    def data(self, msg: Any) -> _Reply:
        return _quick_data(self, msg)


class _SMTP_SSL(smtplib.SMTP_SSL):
    """``_SMTP`` over implicit TLS."""

    def mail(self, sender: str, options: Sequence[str] = ()) -> _Reply:
        return _quick_mail(self, sender, options)

    def rcpt(self, recip: str, options: Sequence[str] = ()) -> _Reply:
        return _quick_rcpt(self, recip, options)

    def data(self, msg: Any) -> _Reply:
        return _quick_data(self, msg)


class Upstream:
    def __init__(self, config: UpstreamConfig) -> None:
        self.config = config
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[smtplib.SMTP] = set()
        #: What the upstream offered the last time a connection was opened.
        self.features: Features | None = None

    def send(
        self,
        sender: str,
        recipient: str,
        data: bytes,
        *,
        smtputf8: bool = False,
        eightbit: bool = False,
    ) -> None:
        """Hand one copy over; raises ``UpstreamRefused`` or ``UpstreamUnavailable``."""
        for attempt in (1, 2):
            try:
                connection = self._connection(fresh=attempt > 1)
            except (smtplib.SMTPException, OSError) as exc:
                raise UpstreamUnavailable(type(exc).__name__) from exc
            try:
                options = _options(connection, sender, recipient, smtputf8, eightbit)
                _sendmail(connection, sender, recipient, data, options)
                return
            except smtplib.SMTPRecipientsRefused as exc:
                code, reply = exc.recipients.get(recipient, (451, b""))
                refusal = refusal_of(code, reply, "rcpt")
            except smtplib.SMTPSenderRefused as exc:
                refusal = refusal_of(exc.smtp_code, exc.smtp_error, "mail")
            except smtplib.SMTPDataError as exc:
                refusal = refusal_of(exc.smtp_code, exc.smtp_error, "data")
            except (smtplib.SMTPException, OSError) as exc:
                # Disconnected, reset, timed out, or an answer out of turn:
                # this connection is done; once more on a fresh one.
                self.drop()
                if attempt == 1:
                    continue
                raise UpstreamUnavailable(type(exc).__name__) from exc
            except BaseException:
                self.drop()  # whatever it was, the session's state is unknown
                raise
            if refusal.code == 421:  # the upstream closes this connection
                self.drop()
                if attempt == 1:
                    continue
                raise UpstreamUnavailable(f"421 {refusal.text}")
            # smtplib has reset the transaction: the connection is ready again.
            raise UpstreamRefused(refusal)
        raise AssertionError("unreachable")  # pragma: no cover

    def _connection(self, fresh: bool = False) -> smtplib.SMTP:
        kept: smtplib.SMTP | None = getattr(self._local, "upstream", None)
        if kept is not None and not fresh:
            # A finished transaction leaves the session ready for the next
            # (RFC 5321 §4.1.4); a connection the upstream closed meanwhile
            # shows as a disconnect or a 421, and ``send`` opens a fresh one.
            return kept
        self.drop()
        connection = self._open_connection()
        self._local.upstream = connection
        with self._lock:
            self._open.add(connection)
        return connection

    def _open_connection(self, timeout: float | None = None) -> smtplib.SMTP:
        config = self.config
        timeout = config.timeout if timeout is None else timeout
        connection: smtplib.SMTP
        if config.tls == "implicit":
            connection = _SMTP_SSL(
                config.host, config.port, timeout=timeout, context=self._tls(verify=True)
            )
        else:
            connection = _SMTP(config.host, config.port, timeout=timeout)
        try:
            connection.ehlo_or_helo_if_needed()
            if config.tls == "starttls" and connection.has_extn("starttls"):
                # With credentials the certificate must be the upstream's own;
                # without, encryption is opportunistic (as between MTAs).
                connection.starttls(context=self._tls(verify=config.user is not None))
                connection.ehlo()
            if config.user is not None:
                if not isinstance(connection.sock, ssl.SSLSocket):
                    raise smtplib.SMTPException(
                        "the upstream offers no TLS: its password is never sent in the clear"
                    )
                password = config.password.reveal() if config.password else ""
                connection.login(config.user, password)
        except BaseException:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                connection.close()
            raise
        size = connection.esmtp_features.get("size", "").split()
        self.features = Features(
            size=int(size[0]) if size and size[0].isdigit() and int(size[0]) > 0 else None,
            smtputf8=connection.has_extn("smtputf8"),
            eightbitmime=connection.has_extn("8bitmime"),
        )
        return connection

    def probe(self) -> Features | None:
        """Connect once to learn what the upstream offers (its SIZE above all);
        None when it cannot be reached now (within five seconds: a relay
        starting beside an upstream that is down does not wait long)."""
        try:
            connection = self._open_connection(timeout=min(self.config.timeout, 5.0))
        except (smtplib.SMTPException, OSError):
            return None
        with contextlib.suppress(smtplib.SMTPException, OSError):
            connection.quit()
        connection.close()
        return self.features

    def _tls(self, *, verify: bool) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.config.ca_file)
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def drop(self) -> None:
        """Forget this thread's connection (after a failure mid-transaction)."""
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
        """Close every thread's kept connection."""
        with self._lock:
            connections = list(self._open)
        for connection in connections:
            self._close(connection)


def _options(
    connection: smtplib.SMTP, sender: str, recipient: str, smtputf8: bool, eightbit: bool
) -> list[str]:
    """MAIL FROM parameters for one copy: SMTPUTF8 when the client asked for
    it or an address needs it, and the upstream offers it (RFC 6531);
    BODY=8BITMIME for 8-bit content (RFC 6152)."""
    options: list[str] = []
    ascii_only = sender.isascii() and recipient.isascii()
    if (smtputf8 or not ascii_only) and connection.has_extn("smtputf8"):
        options.append("SMTPUTF8")
    elif not ascii_only:
        raise UpstreamRefused(Refusal(553, "5.6.7", NO_SMTPUTF8, "relay"))
    if eightbit and connection.has_extn("8bitmime"):
        options.append("BODY=8BITMIME")
    return options
