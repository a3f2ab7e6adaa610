"""What every provider's suppression API shares: one request (``Call``), what
its answer means (``verdict``: done, retry after a while, or a dead letter),
one entry and one page of a list as ``adieu esp sync`` reads them, and the
``Provider`` each module in this package implements.

A delete of an entry the provider does not hold (404) counts as done.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

from adieu.addresses import canonical_or_none, mask_all
from adieu.scopes import ALL
from adieu.settings import Settings

#: The longest wait a provider's Retry-After is taken for (longer: this).
MAX_RETRY_AFTER_S = 3600.0


class Unreadable(ValueError):
    """A provider's answer that is not of the documented shape."""


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP request to a provider."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes = b""
    #: Statuses besides 2xx that mean done (404 for a delete: nothing to remove).
    done: frozenset[int] = frozenset()
    #: Reads a 2xx body; an error text when the provider says it failed.
    check: Callable[[bytes], str | None] | None = None
    #: Statuses otherwise retried that mean "never" for this request (SparkPost's
    #: 403 for an entry its compliance system holds).
    refused: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Verdict:
    """What an answer means: done, try again (after ``delay`` seconds when the
    provider said), or give up (a dead letter)."""

    outcome: str  # "done", "retry", "dead"
    error: str | None = None
    delay: float | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of a provider's suppression list, as ``sync`` reads it."""

    address: str
    reason: str  # UNSUBSCRIBE, COMPLAINT or BOUNCE
    scope: str = ALL


@dataclass(frozen=True, slots=True)
class Page:
    entries: tuple[Entry, ...]
    #: The next page's URL; None after the last.
    next_url: str | None


Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Provider(ABC):
    """One configured provider: where its API is and how to call it. A module
    per provider subclasses it; ``from_settings`` gives None when the
    provider's settings are not all there."""

    #: The provider's name in settings, the queue and ``adieu esp``.
    name: ClassVar[str]

    def __init__(
        self, base: str, clock: Clock = utc_now, topics: Mapping[str, Any] | None = None
    ) -> None:
        self.base = base.rstrip("/")
        self.clock = clock
        #: Adieu topics and what stands for each at the provider (a group,
        #: a list, a topic id), from its ``topic=id`` setting.
        self.topics: dict[str, Any] = dict(topics or {})

    def __repr__(self) -> str:  # no secret in a log line
        return f"<{type(self).__name__} {self.base}>"

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings, clock: Clock) -> Provider | None: ...

    def takes(self, scope: str) -> bool:
        """Whether this provider has a list for unsubscribes from ``scope``:
        all mail, and the topics its setting maps."""
        return scope == ALL or scope in self.topics

    @abstractmethod
    def calls(self, action: str, kind: str, scope: str, address: str) -> list[Call]:
        """The requests that carry out one decision (all of them idempotent)."""

    @abstractmethod
    def list_urls(self) -> list[tuple[str, str, str]]:
        """(first page URL, reason, scope) of each list ``sync`` reads; a reason
        of "" when the page says it per entry."""

    @abstractmethod
    def read_headers(self, url: str) -> dict[str, str]:
        """The headers of a GET of one page of a list."""

    @abstractmethod
    def page(self, url: str, reason: str, scope: str, body: bytes) -> Page:
        """One page of a list, and where the next one is."""


def segment(text: str) -> str:
    """One URL path segment, percent-encoded (an address's @ and + too)."""
    return quote(text, safe="")


def topic_map(text: str, convert: Callable[[str], Any] = str) -> dict[str, Any]:
    """A ``topic=id, …`` setting as {topic: id}, each id through ``convert``."""
    found: dict[str, Any] = {}
    for part in text.split(","):
        topic, sep, value = part.partition("=")
        if sep:
            found[topic.strip()] = convert(value.strip())
    return found


# -- reading answers -----------------------------------------------------------


def verdict(
    call: Call,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime | None = None,
) -> Verdict:
    """What a provider's answer to ``call`` means. 2xx (or a status in
    ``call.done``) is done, unless the body says the item failed; 429 is
    retried after the wait its headers name (``retry_after``); 408, 5xx and
    401/403 (a key that can be fixed) are retried with backoff, unless
    ``call.refused`` names the status; any other 4xx is the provider refusing
    this decision for good."""
    if 200 <= status < 300 or status in call.done:
        problem = call.check(body) if call.check is not None and status < 300 else None
        if problem is None:
            return Verdict("done")
        return Verdict("dead", problem)
    error = f"HTTP {status}" + (f": {message}" if (message := error_message(body)) else "")
    if status in call.refused:
        return Verdict("dead", error)
    if status == 429:
        delay = retry_after(headers, now)
        return Verdict("retry", error, delay)
    if status in (401, 403, 408) or status >= 500:
        return Verdict("retry", error)
    return Verdict("dead", error)


def retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or an HTTP date, RFC 9110),
    SendGrid's ``X-RateLimit-Reset`` (a Unix time) or Brevo's
    ``x-sib-ratelimit-reset`` (seconds left); None when none says.
    At most an hour, never negative."""
    now = now or datetime.now(UTC)
    lowered = {k.lower(): v for k, v in headers.items()}
    value = lowered.get("retry-after", "").strip()
    seconds: float | None = None
    if value:
        if value.isascii() and value.isdigit() and len(value) <= 10:
            seconds = float(value)
        else:
            try:
                when = parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError, OverflowError):
                when = None
            if when is not None:
                if when.tzinfo is None:
                    when = when.replace(tzinfo=UTC)
                seconds = (when - now).total_seconds()
    if seconds is None:
        reset = lowered.get("x-ratelimit-reset", "").strip()
        if reset.isascii() and reset.isdigit() and len(reset) <= 12:
            seconds = float(reset) - now.timestamp()
    if seconds is None:  # Brevo: the seconds left until its window resets
        left = lowered.get("x-sib-ratelimit-reset", "").strip()
        if left.isascii() and left.isdigit() and len(left) <= 10:
            seconds = float(left)
    if seconds is None:
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def error_message(body: bytes) -> str | None:
    """The provider's own words from an error body (SES ``message``, SendGrid
    ``errors[].message``, Mailgun ``message``, Postmark ``Message``, Mailjet
    ``ErrorMessage``), short, addresses masked; None when there are none."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    text: Any = None
    if isinstance(data, dict):
        text = data.get("message") or data.get("Message") or data.get("ErrorMessage")
        errors = data.get("errors")
        if not text and isinstance(errors, list) and errors and isinstance(errors[0], dict):
            text = errors[0].get("message")
    if not isinstance(text, str) or not text.strip():
        return None
    return mask_all(" ".join(text.split()))[:300]


def json_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise Unreadable("the answer is not JSON") from None


def address_of(value: Any) -> str | None:
    return canonical_or_none(value) if isinstance(value, str) and len(value) <= 320 else None


def origin(url: str) -> tuple[str, str] | None:
    try:
        parts = urlsplit(url)
    except ValueError:  # "http://[": no origin at all
        return None
    return (parts.scheme, parts.netloc)


def pages(
    provider: Provider, fetch: Callable[[str, dict[str, str]], tuple[int, bytes]]
) -> Iterator[tuple[int, Page]]:
    """Every page of every list (``fetch`` does the GET: status, body); the
    number of the list with each page. A non-2xx answer is an ``Unreadable``."""
    for number, (url, reason, scope) in enumerate(provider.list_urls()):
        next_url: str | None = url
        seen = 0
        while next_url is not None:
            status, body = fetch(next_url, provider.read_headers(next_url))
            if not 200 <= status < 300:
                message = error_message(body)
                raise Unreadable(f"HTTP {status}" + (f": {message}" if message else ""))
            page = provider.page(next_url, reason, scope, body)
            yield number, page
            seen += 1
            if seen > 100_000:  # a provider that keeps pointing onwards
                raise Unreadable("more than 100,000 pages")
            next_url = page.next_url
