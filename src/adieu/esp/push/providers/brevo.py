"""Brevo (API v3, the key in the ``api-key`` header): an unsubscribe from all
mail, a complaint or a hard bounce blocklists the contact for email
(``emailBlacklisted``: no campaigns reach it), whether or not Brevo knows the
contact yet (``POST /v3/contacts`` with ``updateEnabled``: created, or
updated when it exists). A topic's unsubscribe takes the contact out of the
contact list ``ADIEU_BREVO_LISTS`` maps to the topic (``unlinkListIds``; a
contact Brevo lacks is in no list: done); topics without a list are not
pushed.

A lift or resubscribe takes the contact off the blocklist (a contact Brevo
lacks holds nothing to lift) and deletes its transactional block, if it has
one (``DELETE /v3/smtp/blockedContacts/{email}``; 404: there was none), so
that neither brings the decision back on the next sync; for a topic, it puts
the contact back in the topic's list (created in it when Brevo lacks it).
The address is in the path of the ``PUT`` and the ``DELETE`` because that is
how Brevo names a contact and a block.

``adieu esp sync brevo`` reads every contact (Brevo's ``filter`` knows
attributes only, not the blocklist), ``limit`` at a time from ``offset``, in
the order of creation (new contacts come last, so none is skipped): a
blocklisted one is an unsubscribe from all mail, a list it unsubscribed from
that stands for a topic is that topic's unsubscribe. Then the transactional blocks, each
read by its reason code: ``hardBounce`` a hard bounce,
``contactFlaggedAsSpam`` a complaint, any other (unsubscribed by a link, by
the API, by an automation, or blocked by the account's admin) an
unsubscribe.
"""

from __future__ import annotations

import json
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit

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
    segment,
    topic_map,
)
from adieu.scopes import ALL
from adieu.settings import Settings

#: Contacts per page asked of Brevo (its maximum for ``GET /v3/contacts``).
BREVO_CONTACTS_PAGE = 1000
#: Transactional blocks per page (its maximum for ``GET /v3/smtp/blockedContacts``).
BREVO_BLOCKED_PAGE = 100

#: Brevo's reason codes of a transactional block that say more than "unsubscribed".
BLOCK_REASONS: Final = {"hardBounce": BOUNCE, "contactFlaggedAsSpam": COMPLAINT}


class Brevo(Provider):
    name = "brevo"

    def __init__(self, base: str, key: str, lists: dict[str, int], clock: Clock) -> None:
        super().__init__(base, clock, lists)
        self._key = key

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock) -> Brevo | None:
        if settings.brevo_api_key is None:
            return None
        lists = topic_map(settings.brevo_lists, int)
        return cls(settings.brevo_api_url, settings.brevo_api_key.reveal(), lists, clock)

    def calls(self, action: str, kind: str, scope: str, address: str) -> list[Call]:
        headers = {"api-key": self._key, "Content-Type": "application/json"}
        v3 = f"{self.base}/v3"
        contact = f"{v3}/contacts/{segment(address)}?identifierType=email_id"
        gone = frozenset({404})
        if scope != ALL:
            list_id = self.topics[scope]
            if action == ADD:
                return [Call("PUT", contact, headers, _json({"unlinkListIds": [list_id]}), gone)]
            back = {"email": address, "listIds": [list_id], "updateEnabled": True}
            return [Call("POST", f"{v3}/contacts", headers, _json(back))]
        if action == ADD:
            blocked = {"email": address, "emailBlacklisted": True, "updateEnabled": True}
            return [Call("POST", f"{v3}/contacts", headers, _json(blocked))]
        return [
            Call("PUT", contact, headers, _json({"emailBlacklisted": False}), gone),
            Call(
                "DELETE",
                f"{v3}/smtp/blockedContacts/{segment(address)}",
                {"api-key": self._key},
                done=gone,
            ),
        ]

    def list_urls(self) -> list[tuple[str, str, str]]:
        v3 = f"{self.base}/v3"
        contacts = urlencode({"limit": BREVO_CONTACTS_PAGE, "offset": 0, "sort": "asc"})
        blocked = urlencode({"limit": BREVO_BLOCKED_PAGE, "offset": 0, "sort": "asc"})
        return [
            (f"{v3}/contacts?{contacts}", "", ALL),
            (f"{v3}/smtp/blockedContacts?{blocked}", "", ALL),
        ]

    def read_headers(self, url: str) -> dict[str, str]:
        return {"api-key": self._key, "Accept": "application/json"}

    def page(self, url: str, reason: str, scope: str, body: bytes) -> Page:
        if urlsplit(url).path.endswith("/v3/smtp/blockedContacts"):
            return blocked_page(url, body)
        return contacts_page(url, body, {i: t for t, i in self.topics.items()})


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _items(body: bytes) -> list[Any]:
    """The ``contacts`` of an answer (``{"contacts": […], "count": N}``).
    Without any (Brevo leaves the key out of an empty list) it is empty."""
    data = json_body(body)
    if not isinstance(data, dict):
        raise Unreadable("Brevo's answer is not an object")
    if "contacts" not in data:
        if "code" in data or "message" in data:  # an error, though not said by its status
            raise Unreadable("Brevo's answer is an error")
        return []
    items = data["contacts"]
    if not isinstance(items, list):
        raise Unreadable("Brevo's answer has no contacts list")
    return items


def _next(url: str, count: int) -> str | None:
    """The page after ``url``'s, read ``limit`` at a time by ``offset``: a full
    page may have more after it, a short one is the last."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    limit, offset = query.get("limit", ""), query.get("offset", "0")
    if not (limit.isascii() and limit.isdigit() and 0 < int(limit) <= 1000):
        return None
    if not (offset.isascii() and offset.isdigit() and len(offset) <= 12):
        return None
    if count < int(limit):
        return None
    query["offset"] = str(int(offset) + int(limit))
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}"


def contacts_page(url: str, body: bytes, topics: dict[int, str]) -> Page:
    """A page of ``GET /v3/contacts``: each contact's ``email``,
    ``emailBlacklisted`` and ``listUnsubscribed`` (the IDs of the lists it
    unsubscribed from; ``topics`` names the ones that stand for a topic)."""
    items = _items(body)
    entries: dict[tuple[str, str], Entry] = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        address = address_of(item.get("email"))
        if not address:
            continue
        if item.get("emailBlacklisted") is True:
            entries.setdefault((address, ALL), Entry(address, UNSUBSCRIBE))
        left = item.get("listUnsubscribed")
        for list_id in left if isinstance(left, list) else ():
            topic = topics.get(list_id) if type(list_id) is int else None
            if topic is not None:
                entries.setdefault((address, topic), Entry(address, UNSUBSCRIBE, topic))
    return Page(tuple(entries.values()), _next(url, len(items)))


def blocked_page(url: str, body: bytes) -> Page:
    """A page of ``GET /v3/smtp/blockedContacts``: each block's ``email`` and
    ``reason: {"code", "message"}``, read by its code (the message is not
    meant for comparison)."""
    items = _items(body)
    entries: dict[tuple[str, str], Entry] = {}  # one per address and reason
    for item in items:
        if not isinstance(item, dict):
            continue
        address = address_of(item.get("email"))
        if not address:
            continue
        reason = item.get("reason")
        code = reason.get("code") if isinstance(reason, dict) else reason
        kind = BLOCK_REASONS.get(code, UNSUBSCRIBE) if isinstance(code, str) else UNSUBSCRIBE
        entries.setdefault((address, kind), Entry(address, kind))
    return Page(tuple(entries.values()), _next(url, len(items)))
