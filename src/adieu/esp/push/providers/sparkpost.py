"""SparkPost: the account's suppression list (``/api/v1/suppression-list``),
whose entries are each of one type, ``non_transactional`` (campaigns) or
``transactional`` (receipts, password resets).

An unsubscribe from all mail and a complaint stop marketing only: a
``non_transactional`` entry, so the person still gets their receipts. A hard
bounce is a dead mailbox: an entry of each type, so nothing more is sent to
it. Entries are written with the bulk form (the address stays out of the
URL); a removal deletes the types its kind wrote (the API names the entry by
its address in the path). SparkPost has no list per topic: topic unsubscribes
are not pushed.

``adieu esp sync sparkpost`` reads the list with SparkPost's cursor
(``cursor=initial``, then each answer's ``next`` link, never one to another
host). A ``transactional`` entry stands for a decision about marketing only
when it says the mailbox is dead or the person complained; any other is the
sender's own business about receipts, and is not read.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final
from urllib.parse import urljoin

from adieu.esp.push import ADD, BOUNCE, COMPLAINT, UNSUBSCRIBE
from adieu.esp.push.providers.base import (
    Call,
    Clock,
    Entry,
    Page,
    Provider,
    Unreadable,
    address_of,
    json_body,
    origin,
    segment,
)
from adieu.scopes import ALL
from adieu.settings import Settings

#: Entries per page asked of SparkPost (its maximum).
SPARKPOST_PAGE = 10_000

NON_TRANSACTIONAL, TRANSACTIONAL = "non_transactional", "transactional"

#: The types of entry each kind of decision writes (and its removal deletes).
TYPES: Final = {
    UNSUBSCRIBE: (NON_TRANSACTIONAL,),
    COMPLAINT: (NON_TRANSACTIONAL,),
    BOUNCE: (NON_TRANSACTIONAL, TRANSACTIONAL),
}

#: The description an entry is written with: the reason, never the address;
#: ``sparkpost_page`` reads each back as the same kind.
DESCRIPTIONS: Final = {
    UNSUBSCRIBE: "Unsubscribed from all marketing mail (recorded by Adieu)",
    COMPLAINT: "Spam complaint (recorded by Adieu)",
    BOUNCE: "Hard bounce (recorded by Adieu)",
}

#: SparkPost's own sources that say the reason.
_SOURCES: Final = {
    "Spam Complaint": COMPLAINT,
    "Bounce Rule": BOUNCE,
    "List Unsubscribe": UNSUBSCRIBE,
    "Unsubscribe Link": UNSUBSCRIBE,
}
#: A description of a bounce: "hard bounce" or an SMTP 5xx reply ("550: …").
_BOUNCE_TEXT = re.compile(r"hard[ -]?bounce|^\s*5\d\d\b", re.IGNORECASE)
_COMPLAINT_TEXT = re.compile(r"complain", re.IGNORECASE)


class SparkPost(Provider):
    name = "sparkpost"

    def __init__(self, base: str, key: str, clock: Clock) -> None:
        super().__init__(base, clock)
        self._key = key

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock) -> SparkPost | None:
        if settings.sparkpost_api_key is None:
            return None
        return cls(settings.sparkpost_api_url, settings.sparkpost_api_key.reveal(), clock)

    def calls(self, action: str, kind: str, scope: str, address: str) -> list[Call]:
        if scope != ALL:
            raise KeyError("SparkPost has no list for a topic")
        url = f"{self.base}/api/v1/suppression-list"
        headers = {"Content-Type": "application/json", **self.read_headers(url)}
        types = TYPES[kind]
        if action == ADD:
            recipients = [
                {"recipient": address, "type": kind_of, "description": DESCRIPTIONS[kind]}
                for kind_of in types
            ]
            body = json.dumps({"recipients": recipients}).encode()
            return [Call("PUT", url, headers, body)]
        return [
            Call(
                "DELETE",
                f"{url}/{segment(address)}",
                headers,
                json.dumps({"type": kind_of}).encode(),
                done=frozenset({404}),
                # Held by SparkPost's compliance system: no retry will remove it.
                refused=frozenset({403}),
            )
            for kind_of in types
        ]

    def list_urls(self) -> list[tuple[str, str, str]]:
        first = f"{self.base}/api/v1/suppression-list?cursor=initial&per_page={SPARKPOST_PAGE}"
        return [(first, "", ALL)]

    def read_headers(self, url: str) -> dict[str, str]:
        # SparkPost takes the key itself as the Authorization header.
        return {"Authorization": self._key, "Accept": "application/json"}

    def page(self, url: str, reason: str, scope: str, body: bytes) -> Page:
        return sparkpost_page(url, body, self.base)


def sparkpost_page(url: str, body: bytes, base: str) -> Page:
    """``{"results": [{"recipient", "type", "source", "description"…}],
    "links": [{"href", "rel"}…], "total_count"}``: one entry per address and
    type. The ``next`` link (a path on the API, or a whole URL) is followed
    only to the API's own origin, and not after a page without results (a
    cursor's last page may still point onwards)."""
    data = json_body(body)
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list):
        raise Unreadable("SparkPost's answer has no results list")
    entries: dict[tuple[str, str], Entry] = {}
    for item in results:
        if not isinstance(item, dict):
            continue
        address = address_of(item.get("recipient"))
        if not address:
            continue
        reason = _reason(item)
        if reason is not None:
            entries.setdefault((address, reason), Entry(address, reason))
    following = _next_link(data.get("links")) if results else None
    next_url = None
    if following is not None:
        candidate = _resolve(following, url, base)
        if candidate is not None and candidate != url and origin(candidate) == origin(base):
            next_url = candidate
    return Page(tuple(entries.values()), next_url)


def _reason(item: dict[str, Any]) -> str | None:
    """What one entry stands for; None for a ``transactional`` entry that says
    nothing about marketing."""
    source, description = item.get("source"), item.get("description")
    reason = _SOURCES.get(source) if isinstance(source, str) else None
    if reason is None:  # Manually Added, Compliance: the description tells
        text = description if isinstance(description, str) else ""
        if _COMPLAINT_TEXT.search(text):
            reason = COMPLAINT
        elif _BOUNCE_TEXT.search(text):
            reason = BOUNCE
        else:
            reason = UNSUBSCRIBE
    kind_of = item.get("type")
    if kind_of not in (TRANSACTIONAL, NON_TRANSACTIONAL):  # the deprecated booleans
        only_transactional = item.get("transactional") is True and not item.get("non_transactional")
        kind_of = TRANSACTIONAL if only_transactional else NON_TRANSACTIONAL
    if kind_of == TRANSACTIONAL and reason == UNSUBSCRIBE:
        return None
    return reason


def _next_link(links: Any) -> str | None:
    """The ``next`` href of ``links``: a list of ``{"href", "rel"}`` (as the
    suppression list answers) or ``{"next": href}`` (as other SparkPost lists
    do)."""
    href: Any = None
    if isinstance(links, list):
        for link in links:
            if isinstance(link, dict) and link.get("rel") == "next":
                href = link.get("href")
                break
    elif isinstance(links, dict):
        href = links.get("next")
    return href if isinstance(href, str) and href else None


def _resolve(href: str, url: str, base: str) -> str | None:
    """``href`` as a whole URL: a path from the root of the API (as SparkPost
    gives it) goes after ``base`` (which may sit under a proxy's prefix).
    Anything but printable ASCII is refused."""
    if not (href.isascii() and href.isprintable()) or " " in href:
        return None
    if href.startswith("/") and not href.startswith("//"):
        return base.rstrip("/") + href
    try:
        return urljoin(url, href)
    except ValueError:
        return None
