"""The one error hierarchy of Adieu.

Each class carries a stable public ``code`` (the API's ``error.code``; renaming
a class changes nothing outside), an HTTP status, a CLI exit status and an SMTP
reply. Every door turns them into its own protocol in exactly one place:
``adieu.web.errors`` (HTML for pages, the JSON error shape for ``/api``),
``adieu.smtp.replies`` (SMTP replies), ``adieu.cli.root`` (exit statuses).
"""

from __future__ import annotations

from collections.abc import Iterable

# sysexits.h: what a pipe transport and a shell script understand.
EX_DATAERR, EX_TEMPFAIL = 65, 75


class AdieuError(Exception):
    """Something the user can fix or should know about; the message says what."""

    #: The public, machine-readable name (API ``error.code``).
    code = "invalid_input"
    #: CLI exit status (2: bad input or usage, like click's own usage errors).
    exit_code = 2
    #: HTTP status for the web doors.
    http_status = 400
    #: SMTP reply code and enhanced status (RFC 3463) for the mail doors.
    smtp_reply = (554, "5.6.0")


class InvalidAddress(AdieuError):
    """An email address that is not syntactically valid."""

    code = "invalid_address"
    smtp_reply = (553, "5.1.3")


class InvalidToken(AdieuError):
    """A token that is tampered, truncated, foreign or random: it opens nothing."""

    code = "invalid_token"

    def __init__(self, message: str = "This link is not valid.") -> None:
        super().__init__(message)


class UnknownTopic(AdieuError):
    code = "unknown_topic"
    http_status = 404
    # RFC 3463 §3.7: the message's content (here its X-Adieu-Topic) is the problem.
    smtp_reply = (554, "5.6.0")

    def __init__(self, key: str) -> None:
        super().__init__(f"There is no topic called {key!r}.")
        self.key = key


class TopicExists(AdieuError):
    code = "topic_exists"
    http_status = 409

    def __init__(self, key: str) -> None:
        super().__init__(f"A topic called {key!r} already exists.")
        self.key = key


class TopicRetired(AdieuError):
    """A retired topic named for a new link or send (links minted before it
    was retired still unsubscribe)."""

    code = "topic_retired"
    http_status = 409
    # As for an unknown topic: the message's X-Adieu-Topic is the problem.
    smtp_reply = (554, "5.6.0")

    def __init__(self, key: str) -> None:
        super().__init__(
            f"The topic {key!r} is retired: it takes no new links or sends "
            "(links already sent still work). Add it again to use it."
        )
        self.key = key


class InvalidInput(AdieuError):
    """A value or file that cannot be used as given (bad column, unreadable file…)."""

    code = "invalid_input"


class InvalidSettings(AdieuError):
    """One or more ``ADIEU_*`` settings (or ``adieu.toml`` values) are not usable."""

    code = "invalid_settings"

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class KeyRingError(AdieuError):
    """The key file is missing, unreadable or inconsistent."""

    code = "key_ring_error"
    exit_code = 1
    http_status = 500
    smtp_reply = (451, "4.3.0")


class NotFound(AdieuError):
    """An API key, webhook, contact or delivery that does not exist."""

    code = "not_found"
    http_status = 404


class NotAllowed(AdieuError):
    """Authenticated, but this key may not do that (a read-only key writing)."""

    code = "not_allowed"
    exit_code = 1
    http_status = 403


class Unavailable(AdieuError):
    """The ledger (or another part Adieu needs) cannot answer now; nothing was
    changed, and the same request may succeed later."""

    code = "unavailable"
    exit_code = EX_TEMPFAIL
    http_status = 503
    smtp_reply = (451, "4.3.0")

    def __init__(self, message: str = "The ledger cannot be reached just now.") -> None:
        super().__init__(message)


class Erased(AdieuError):
    """The address was erased: erasure is final, so nothing lifts its suppression."""

    code = "erased"
    exit_code = 1
    http_status = 409

    def __init__(self, message: str = "This address was erased, and erasure is final.") -> None:
        super().__init__(message)


class WorkerFailed(AdieuError):
    """One of a door's worker processes ended with an error, so all were stopped."""

    code = "worker_failed"
    exit_code = 1
    http_status = 500
    smtp_reply = (451, "4.3.0")


def storage_trouble(exc: BaseException) -> bool:
    """Whether ``exc`` is the database failing (locked, gone, read-only, full),
    as opposed to a bug: such requests get "try again later", never a 500.
    The drivers' own errors count too: the hot read path talks to the driver
    directly (``ledger.database.ReadPool``)."""
    import sqlite3
    import sys

    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, TimeoutError

    kinds: tuple[type[BaseException], ...] = (
        OperationalError,
        InterfaceError,
        TimeoutError,
        Unavailable,
        sqlite3.OperationalError,
        sqlite3.InterfaceError,
    )
    psycopg = sys.modules.get("psycopg")  # loaded only when PostgreSQL is in use
    if psycopg is not None:
        kinds += (psycopg.OperationalError, psycopg.InterfaceError)
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True  # the connection was lost, whatever the driver called it
    # PostgreSQL read-only (a standby, default_transaction_read_only): the
    # driver files it under InternalError, but it is the store refusing writes.
    if getattr(getattr(exc, "orig", exc), "sqlstate", None) == "25006":
        return True
    return isinstance(exc, kinds)
