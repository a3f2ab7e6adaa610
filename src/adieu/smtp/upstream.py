"""The relay's client towards the upstream MTA or ESP: one kept connection per
forwarding thread, TLS and AUTH as the operator configured them.

Towards an ESP the password is sent only over TLS whose certificate was
verified (a user is set: the upstream must be who it says). Without
credentials, STARTTLS is opportunistic, as between MTAs (RFC 3207 §4).
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
import threading
from dataclasses import dataclass

from adieu.secret import Secret


@dataclass(frozen=True)
class UpstreamConfig:
    host: str
    port: int
    timeout: float = 30.0
    user: str | None = None
    password: Secret | None = None
    tls: str = "starttls"  # "starttls", "implicit" or "none"
    ca_file: str | None = None


class Upstream:
    def __init__(self, config: UpstreamConfig) -> None:
        self.config = config
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[smtplib.SMTP] = set()

    def send(self, sender: str, recipient: str, data: bytes) -> None:
        """Hand one copy over; raises ``smtplib.SMTPException`` or ``OSError``."""
        try:
            self._connection().sendmail(sender, [recipient], data)
        except (smtplib.SMTPServerDisconnected, ConnectionError):
            # a kept connection the upstream closed meanwhile: once more, fresh
            self._connection(fresh=True).sendmail(sender, [recipient], data)

    def _connection(self, fresh: bool = False) -> smtplib.SMTP:
        kept: smtplib.SMTP | None = getattr(self._local, "upstream", None)
        if kept is not None and not fresh:
            # A finished transaction leaves the session ready for the next
            # (RFC 5321 §4.1.4); a connection the upstream closed meanwhile
            # shows as a disconnect, and ``send`` opens a fresh one.
            return kept
        self.drop()
        config = self.config
        connection: smtplib.SMTP
        if config.tls == "implicit":
            connection = smtplib.SMTP_SSL(
                config.host, config.port, timeout=config.timeout, context=self._tls(verify=True)
            )
        else:
            connection = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
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
        self._local.upstream = connection
        with self._lock:
            self._open.add(connection)
        return connection

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
