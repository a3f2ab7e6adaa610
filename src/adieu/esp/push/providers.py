"""Each provider's documented API calls: the requests that add or remove an
entry of its suppression list, how its answers are read, and the pages of
its lists that ``adieu esp sync`` reads.

- **Amazon SES** (API v2, signed with Signature Version 4):
  ``PutSuppressedDestination`` (``PUT /v2/email/suppression/addresses``, reason
  ``BOUNCE`` or ``COMPLAINT``: the account-level list knows no other, so an
  unsubscribe from all mail is put there as ``COMPLAINT``),
  ``DeleteSuppressedDestination`` and ``ListSuppressedDestinations``.
- **SendGrid**: global suppressions (``/v3/asm/suppressions/global``) and
  unsubscribe groups (``/v3/asm/groups/{id}/suppressions``) for topics that
  have one (``ADIEU_SENDGRID_GROUPS``); bounces and spam reports cannot be
  added through the API, so they go to the global suppressions too; a lift
  deletes the bounce or spam report as well.
- **Mailgun**: the domain's ``unsubscribes`` (tag ``*``, or the topic's key),
  ``complaints`` and ``bounces``.
- **Postmark**: the message stream's suppressions (``/suppressions`` and
  ``/suppressions/delete``).

A delete of an entry the provider does not hold (404) counts as done.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from adieu.addresses import canonical_or_none, mask_all
from adieu.esp.push import (
    ADD,
    BOUNCE,
    COMPLAINT,
    MAILGUN,
    POSTMARK,
    SENDGRID,
    SES,
    UNSUBSCRIBE,
    configured,
    sendgrid_groups,
)
from adieu.esp.push.sigv4 import Credentials, sign
from adieu.scopes import ALL
from adieu.settings import Settings

#: The longest wait a provider's Retry-After is taken for (longer: this).
MAX_RETRY_AFTER_S = 3600.0
#: Entries per page asked of SendGrid (its maximum is 500).
SENDGRID_PAGE = 500


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


@dataclass(frozen=True)
class Provider:
    """One configured provider: where its API is and how to call it."""

    name: str
    base: str
    secret: str = field(repr=False)
    domain: str = ""  # Mailgun
    stream: str = ""  # Postmark
    region: str = ""  # SES
    groups: Mapping[str, int] = field(default_factory=dict)  # SendGrid: topic → group
    credentials: Credentials | None = field(default=None, repr=False)  # SES
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    # -- requests --------------------------------------------------------------

    def takes(self, scope: str) -> bool:
        """Whether this provider has a list for unsubscribes from ``scope``."""
        if scope == ALL:
            return True
        if self.name == SENDGRID:
            return scope in self.groups
        return self.name == MAILGUN

    def calls(self, action: str, kind: str, scope: str, address: str) -> list[Call]:
        """The requests that carry out one decision (all of them idempotent)."""
        build = {SES: self._ses, SENDGRID: self._sendgrid, MAILGUN: self._mailgun}.get(
            self.name, self._postmark
        )
        return build(action, kind, scope, address)

    def _ses(self, action: str, kind: str, scope: str, address: str) -> list[Call]:
        base = f"{self.base}/v2/email/suppression/addresses"
        if action == ADD:
            reason = "BOUNCE" if kind == BOUNCE else "COMPLAINT"
            body = json.dumps({"EmailAddress": address, "Reason": reason}).encode()
            return [self._signed("PUT", base, body)]
        return [self._signed("DELETE", f"{base}/{_segment(address)}", b"", done=frozenset({404}))]

    def _signed(
        self, method: str, url: str, body: bytes, done: frozenset[int] = frozenset()
    ) -> Call:
        if self.credentials is None:
            raise Unreadable("no AWS credentials")
        headers = sign(method, url, body, self.credentials, self.region, "ses", self.clock())
        if body:
            headers["Content-Type"] = "application/json"
        return Call(method, url, headers, body, done)

    def _sendgrid(self, action: str, kind: str, scope: str, address: str) -> list[Call]:
        headers = {"Authorization": f"Bearer {self.secret}", "Content-Type": "application/json"}
        v3 = f"{self.base}/v3"
        if scope != ALL:
            group = self.groups[scope]
            if action == ADD:
                body = json.dumps({"recipient_emails": [address]}).encode()
                return [Call("POST", f"{v3}/asm/groups/{group}/suppressions", headers, body)]
            url = f"{v3}/asm/groups/{group}/suppressions/{_segment(address)}"
            return [Call("DELETE", url, headers, done=frozenset({404}))]
        if action == ADD:
            body = json.dumps({"recipient_emails": [address]}).encode()
            return [Call("POST", f"{v3}/asm/suppressions/global", headers, body)]
        calls = [
            Call(
                "DELETE",
                f"{v3}/asm/suppressions/global/{_segment(address)}",
                headers,
                done=frozenset({404}),
            )
        ]
        if kind in (BOUNCE, COMPLAINT):
            where = "bounces" if kind == BOUNCE else "spam_reports"
            body = json.dumps({"emails": [address]}).encode()
            calls.append(
                Call("DELETE", f"{v3}/suppression/{where}", headers, body, frozenset({404}))
            )
        return calls

    def _mailgun(self, action: str, kind: str, scope: str, address: str) -> list[Call]:
        token = base64.b64encode(f"api:{self.secret}".encode()).decode()
        headers = {"Authorization": f"Basic {token}"}
        where = {UNSUBSCRIBE: "unsubscribes", COMPLAINT: "complaints", BOUNCE: "bounces"}[kind]
        url = f"{self.base}/v3/{_segment(self.domain)}/{where}"
        if action == ADD:
            form: dict[str, str] = {"address": address}
            if kind == UNSUBSCRIBE:
                form["tag"] = "*" if scope == ALL else scope
            elif kind == BOUNCE:
                form.update(code="550", error="Recorded as a hard bounce by Adieu")
            form_headers = {**headers, "Content-Type": "application/x-www-form-urlencoded"}
            return [Call("POST", url, form_headers, urlencode(form).encode())]
        url = f"{url}/{_segment(address)}"
        if kind == UNSUBSCRIBE and scope != ALL:
            url += "?" + urlencode({"tag": scope})
        return [Call("DELETE", url, headers, done=frozenset({404}))]

    def _postmark(self, action: str, kind: str, scope: str, address: str) -> list[Call]:
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "X-Postmark-Server-Token": self.secret,
        }
        url = f"{self.base}/message-streams/{_segment(self.stream)}/suppressions"
        if action != ADD:
            url += "/delete"
        body = json.dumps({"Suppressions": [{"EmailAddress": address}]}).encode()
        return [Call("POST", url, headers, body, check=postmark_failure)]

    # -- reading its lists -----------------------------------------------------

    def list_urls(self) -> list[tuple[str, str, str]]:
        """(first page URL, reason, scope) of each list ``sync`` reads."""
        if self.name == SES:
            return [(f"{self.base}/v2/email/suppression/addresses?PageSize=1000", "", ALL)]
        if self.name == SENDGRID:
            v3 = f"{self.base}/v3"
            lists = [
                (f"{v3}/suppression/unsubscribes?limit={SENDGRID_PAGE}&offset=0", UNSUBSCRIBE, ALL),
                (f"{v3}/suppression/bounces?limit={SENDGRID_PAGE}&offset=0", BOUNCE, ALL),
                (f"{v3}/suppression/spam_reports?limit={SENDGRID_PAGE}&offset=0", COMPLAINT, ALL),
            ]
            for topic, group in sorted(self.groups.items()):
                lists.append((f"{v3}/asm/groups/{group}/suppressions", UNSUBSCRIBE, topic))
            return lists
        if self.name == MAILGUN:
            base = f"{self.base}/v3/{_segment(self.domain)}"
            return [
                (f"{base}/unsubscribes?limit=1000", UNSUBSCRIBE, ALL),
                (f"{base}/bounces?limit=1000", BOUNCE, ALL),
                (f"{base}/complaints?limit=1000", COMPLAINT, ALL),
            ]
        stream = _segment(self.stream)
        return [(f"{self.base}/message-streams/{stream}/suppressions/dump", "", ALL)]

    def read_headers(self, url: str) -> dict[str, str]:
        if self.name == SES:
            return self._signed("GET", url, b"").headers
        if self.name == SENDGRID:
            return {"Authorization": f"Bearer {self.secret}", "Accept": "application/json"}
        if self.name == MAILGUN:
            token = base64.b64encode(f"api:{self.secret}".encode()).decode()
            return {"Authorization": f"Basic {token}"}
        return {"Accept": "application/json", "X-Postmark-Server-Token": self.secret}

    def page(self, url: str, reason: str, scope: str, body: bytes) -> Page:
        """One page of a list, and where the next one is."""
        if self.name == SES:
            return ses_page(url, body)
        if self.name == SENDGRID:
            return sendgrid_page(url, body, reason, scope)
        if self.name == MAILGUN:
            return mailgun_page(url, body, reason, self.base)
        return postmark_page(body)


def providers(settings: Settings, clock: Callable[[], datetime] | None = None) -> list[Provider]:
    """The configured providers."""
    found: list[Provider] = []
    now = clock or (lambda: datetime.now(UTC))
    for name in configured(settings):
        if name == SES:
            region = settings.ses_region or ""
            base = settings.ses_endpoint_url or f"https://email.{region}.amazonaws.com"
            found.append(
                Provider(
                    SES,
                    base.rstrip("/"),
                    "",
                    region=region,
                    credentials=Credentials.from_environment(),
                    clock=now,
                )
            )
        elif name == SENDGRID:
            assert settings.sendgrid_api_key is not None
            found.append(
                Provider(
                    SENDGRID,
                    settings.sendgrid_api_url.rstrip("/"),
                    settings.sendgrid_api_key.reveal(),
                    groups=sendgrid_groups(settings),
                )
            )
        elif name == MAILGUN:
            assert settings.mailgun_api_key is not None
            found.append(
                Provider(
                    MAILGUN,
                    settings.mailgun_api_url.rstrip("/"),
                    settings.mailgun_api_key.reveal(),
                    domain=settings.mailgun_domain or "",
                )
            )
        else:
            assert settings.postmark_server_token is not None
            found.append(
                Provider(
                    POSTMARK,
                    settings.postmark_api_url.rstrip("/"),
                    settings.postmark_server_token.reveal(),
                    stream=settings.postmark_stream,
                )
            )
    return found


def _segment(text: str) -> str:
    """One URL path segment, percent-encoded (an address's @ and + too)."""
    return quote(text, safe="")


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
    retried after its Retry-After (SendGrid: X-RateLimit-Reset); 408, 5xx and
    401/403 (a key that can be fixed) are retried with backoff; any other 4xx
    is the provider refusing this decision for good."""
    if 200 <= status < 300 or status in call.done:
        problem = call.check(body) if call.check is not None and status < 300 else None
        if problem is None:
            return Verdict("done")
        return Verdict("dead", problem)
    error = f"HTTP {status}" + (f": {message}" if (message := error_message(body)) else "")
    if status == 429:
        delay = retry_after(headers, now)
        return Verdict("retry", error, delay)
    if status in (401, 403, 408) or status >= 500:
        return Verdict("retry", error)
    return Verdict("dead", error)


def retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or an HTTP date, RFC 9110)
    or SendGrid's ``X-RateLimit-Reset`` (a Unix time); None when neither says.
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
    if seconds is None:
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def error_message(body: bytes) -> str | None:
    """The provider's own words from an error body (SES ``message``, SendGrid
    ``errors[].message``, Mailgun ``message``, Postmark ``Message``), short,
    addresses masked; None when there are none."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    text: Any = None
    if isinstance(data, dict):
        text = data.get("message") or data.get("Message")
        errors = data.get("errors")
        if not text and isinstance(errors, list) and errors and isinstance(errors[0], dict):
            text = errors[0].get("message")
    if not isinstance(text, str) or not text.strip():
        return None
    return mask_all(" ".join(text.split()))[:300]


def postmark_failure(body: bytes) -> str | None:
    """Postmark answers 200 with a status per address; "Failed" (with its
    message) is a refusal. A body of another shape is not a success."""
    try:
        data = _json(body)
    except Unreadable:
        return "Postmark's answer is not JSON"
    items = data.get("Suppressions") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return "Postmark's answer has no Suppressions list"
    for item in items:
        if not isinstance(item, dict):
            return "Postmark's answer has an entry that is not an object"
        if item.get("Status") == "Failed":
            message = item.get("Message")
            shown = mask_all(" ".join(message.split()))[:300] if isinstance(message, str) else ""
            return "Postmark refused it" + (f": {shown}" if shown else "")
    return None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise Unreadable("the answer is not JSON") from None


def _address(value: Any) -> str | None:
    return canonical_or_none(value) if isinstance(value, str) and len(value) <= 320 else None


def ses_page(url: str, body: bytes) -> Page:
    """``ListSuppressedDestinations``: ``SuppressedDestinationSummaries`` of
    ``EmailAddress`` and ``Reason``; ``NextToken`` while there is more."""
    data = _json(body)
    if not isinstance(data, dict) or not isinstance(
        data.get("SuppressedDestinationSummaries", []), list
    ):
        raise Unreadable("SES's answer has no SuppressedDestinationSummaries list")
    entries: list[Entry] = []
    for item in data.get("SuppressedDestinationSummaries", []):
        if not isinstance(item, dict):
            continue
        address = _address(item.get("EmailAddress"))
        reason = {"BOUNCE": BOUNCE, "COMPLAINT": COMPLAINT}.get(str(item.get("Reason")))
        if address and reason:
            entries.append(Entry(address, reason))
    token = data.get("NextToken")
    next_url = None
    if isinstance(token, str) and token:
        base = url.split("?", 1)[0]
        next_url = f"{base}?{urlencode({'PageSize': 1000, 'NextToken': token})}"
    return Page(tuple(entries), next_url)


def sendgrid_page(url: str, body: bytes, reason: str, scope: str) -> Page:
    """A list of ``{"email", "created"}`` objects (or, for a group, of
    addresses), read ``limit`` at a time by ``offset``."""
    data = _json(body)
    if not isinstance(data, list):
        raise Unreadable("SendGrid's answer is not a list")
    entries: list[Entry] = []
    for item in data:
        raw = item.get("email") if isinstance(item, dict) else item
        address = _address(raw)
        if address:
            entries.append(Entry(address, reason, scope))
    parts = urlsplit(url)
    query = dict(p.partition("=")[::2] for p in parts.query.split("&") if p)
    limit = int(query["limit"]) if query.get("limit", "").isdigit() else 0
    next_url = None
    if limit and len(data) >= limit:
        offset = int(query["offset"]) if query.get("offset", "").isdigit() else 0
        query["offset"] = str(offset + limit)
        next_url = f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}"
    return Page(tuple(entries), next_url)


def mailgun_page(url: str, body: bytes, reason: str, base: str) -> Page:
    """``{"items": [{"address", "tags"…}], "paging": {"next": URL}}``; the list
    ends with a page without items. A next URL elsewhere than the API is not
    followed (the key would go with it)."""
    data = _json(body)
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise Unreadable("Mailgun's answer has no items list")
    entries: list[Entry] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        address = _address(item.get("address"))
        if not address:
            continue
        tags = item.get("tags")
        if reason == UNSUBSCRIBE and isinstance(tags, list) and tags and "*" not in tags:
            for tag in tags:
                if isinstance(tag, str) and tag:
                    entries.append(Entry(address, reason, tag))
        else:
            entries.append(Entry(address, reason))
    paging = data.get("paging")
    following = paging.get("next") if isinstance(paging, dict) else None
    next_url = None
    if (
        items
        and isinstance(following, str)
        and following != url
        and _origin(following) == _origin(base)
    ):
        next_url = following
    return Page(tuple(entries), next_url)


def postmark_page(body: bytes) -> Page:
    """The stream's whole dump: ``Suppressions`` of ``EmailAddress`` and
    ``SuppressionReason`` (HardBounce, SpamComplaint, ManualSuppression)."""
    data = _json(body)
    items = data.get("Suppressions") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise Unreadable("Postmark's answer has no Suppressions list")
    reasons = {"HardBounce": BOUNCE, "SpamComplaint": COMPLAINT}
    entries: list[Entry] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        address = _address(item.get("EmailAddress"))
        if address:
            entries.append(
                Entry(address, reasons.get(str(item.get("SuppressionReason")), UNSUBSCRIBE))
            )
    return Page(tuple(entries), None)


def _origin(url: str) -> tuple[str, str] | None:
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
