"""Resend (its contacts API, a bearer API key): an unsubscribe from all mail,
a complaint or a hard bounce marks the contact unsubscribed (``unsubscribed:
true``: no broadcast reaches it); a topic's unsubscribe opts the contact out
of the Resend topic ``ADIEU_RESEND_TOPICS`` maps to the topic. A lift or
resubscribe sets ``unsubscribed: false``, or opts the contact back in.

Every request is idempotent. The contact may not exist yet: a decision for
all mail first creates it, already unsubscribed (``POST /contacts``; Resend
refuses a second contact of the same address, which counts as done), then
updates it (``PATCH /contacts/{address}``), whose answer decides: had the
creation failed for another reason, the update's 404 makes a dead letter
rather than a quiet "done". A topic's opt-out is only an update of a
contact Resend has (none: nothing to opt out of). The address is in the
update's path because that is how Resend names a contact without its id.

``adieu esp sync resend`` reads every contact (``GET /contacts``, a page of
100 after the last one's id while ``has_more``) and takes the unsubscribed
ones; topic choices are read per contact only, so they are not synced.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode, urlsplit

from adieu.esp.push import ADD, UNSUBSCRIBE
from adieu.esp.push.providers.base import (
    Call,
    Clock,
    Entry,
    Page,
    Provider,
    Unreadable,
    address_of,
    json_body,
    segment,
    topic_map,
)
from adieu.scopes import ALL
from adieu.settings import Settings

#: Contacts per page asked of Resend (its maximum is 100).
RESEND_PAGE = 100
#: How Resend answers the creation of a contact it already has.
_EXISTS = frozenset({409, 422})


class Resend(Provider):
    name = "resend"

    def __init__(self, base: str, key: str, topics: dict[str, str], clock: Clock) -> None:
        super().__init__(base, clock, topics)
        self._auth = {"Authorization": f"Bearer {key}"}

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock) -> Resend | None:
        if settings.resend_api_key is None:
            return None
        topics = topic_map(settings.resend_topics)
        return cls(settings.resend_api_url, settings.resend_api_key.reveal(), topics, clock)

    def calls(self, action: str, kind: str, scope: str, address: str) -> list[Call]:
        headers = {**self._auth, "Content-Type": "application/json"}
        contact = f"{self.base}/contacts/{segment(address)}"
        if scope != ALL:
            choice = "opt_out" if action == ADD else "opt_in"
            body = {"topics": [{"id": self.topics[scope], "subscription": choice}]}
            return [_patch(f"{contact}/topics", headers, body, done=frozenset({404}))]
        if action != ADD:
            return [_patch(contact, headers, {"unsubscribed": False}, done=frozenset({404}))]
        create = json.dumps({"email": address, "unsubscribed": True}).encode()
        return [
            Call("POST", f"{self.base}/contacts", headers, create, done=_EXISTS),
            _patch(contact, headers, {"unsubscribed": True}),
        ]

    def list_urls(self) -> list[tuple[str, str, str]]:
        return [(f"{self.base}/contacts?limit={RESEND_PAGE}", UNSUBSCRIBE, ALL)]

    def read_headers(self, url: str) -> dict[str, str]:
        return {**self._auth, "Accept": "application/json"}

    def page(self, url: str, reason: str, scope: str, body: bytes) -> Page:
        return resend_page(url, body)


def _patch(
    url: str, headers: dict[str, str], body: object, done: frozenset[int] = frozenset()
) -> Call:
    return Call("PATCH", url, headers, json.dumps(body).encode(), done)


def resend_page(url: str, body: bytes) -> Page:
    """``{"object": "list", "has_more", "data": [{"id", "email",
    "unsubscribed"…}]}``: the unsubscribed contacts; the next page starts
    after the last contact's id while ``has_more`` is true."""
    data = json_body(body)
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise Unreadable("Resend's answer has no data list")
    entries: list[Entry] = []
    for item in items:
        if not isinstance(item, dict) or item.get("unsubscribed") is not True:
            continue
        address = address_of(item.get("email"))
        if address:
            entries.append(Entry(address, UNSUBSCRIBE))
    last = items[-1].get("id") if items and isinstance(items[-1], dict) else None
    next_url = None
    if data.get("has_more") is True and isinstance(last, str) and 0 < len(last) <= 200:
        parts = urlsplit(url)
        query = urlencode({"limit": RESEND_PAGE, "after": last})
        following = f"{parts.scheme}://{parts.netloc}{parts.path}?{query}"
        next_url = following if following != url else None
    return Page(tuple(entries), next_url)
