"""The one error hierarchy of Adieu.

Every door maps these to its own answer in exactly one place: the CLI to an exit
status (``adieu.cli``), the web to an HTTP status (``adieu.web.app``).
"""

from __future__ import annotations


class AdieuError(Exception):
    """Something the user can fix or should know about; the message says what."""

    #: CLI exit status (2: bad input or usage, like click's own usage errors).
    exit_code = 2
    #: HTTP status for the web doors.
    http_status = 400


class InvalidAddress(AdieuError):
    """An email address that is not syntactically valid."""


class InvalidToken(AdieuError):
    """A token that is tampered, truncated, foreign or random: it opens nothing."""

    def __init__(self, message: str = "This link is not valid.") -> None:
        super().__init__(message)


class UnknownTopic(AdieuError):
    http_status = 404

    def __init__(self, key: str) -> None:
        super().__init__(f"There is no topic called {key!r}.")
        self.key = key


class TopicExists(AdieuError):
    http_status = 409

    def __init__(self, key: str) -> None:
        super().__init__(f"A topic called {key!r} already exists.")
        self.key = key


class TopicInUse(AdieuError):
    http_status = 409

    def __init__(self, key: str) -> None:
        super().__init__(
            f"The topic {key!r} is in people's consent records, so it stays. "
            "Rename it instead if it has changed."
        )
        self.key = key


class InvalidInput(AdieuError):
    """A value or file that cannot be used as given (bad column, unreadable file…)."""


class KeyRingError(AdieuError):
    """The key file is missing, unreadable or inconsistent."""

    exit_code = 1
    http_status = 500


class NotFound(AdieuError):
    """An API key, webhook, contact or delivery that does not exist."""

    http_status = 404


class NotAllowed(AdieuError):
    """Authenticated, but this key may not do that (a read-only key writing)."""

    exit_code = 1
    http_status = 403
