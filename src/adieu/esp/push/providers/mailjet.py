"""Mailjet (API v3, HTTP Basic with the API key and secret key): an
unsubscribe from all mail, a complaint or a hard bounce excludes the contact
from campaigns (``IsExcludedFromCampaigns``, Mailjet's exclusion list: no
marketing mail, transactional mail still flows); a topic's unsubscribe
unsubscribes the contact from the contact list ``ADIEU_MAILJET_LISTS`` maps
to the topic. A lift or resubscribe clears the exclusion, or subscribes the
contact to the topic's list again (``addforce``).

Every request is idempotent. The contact may not exist yet: each decision
first creates it (``POST /contact``, which Mailjet refuses with a 400 when
the address is already a contact: that counts as done), then sets what the
decision says (``PUT /contact/{address}``, or the list's ``managecontact``),
whose answer decides. The address is in the ``PUT``'s path because that is
how Mailjet names a contact without its numeric ID.

``adieu esp sync mailjet`` reads the contacts excluded from campaigns, then,
for each mapped list, its unsubscribed members (``listrecipient``). Those
name a contact by its numeric ID only, so each is looked up
(``GET /contact/{ID}``) before the list's next page: ``page`` keeps that
little state between the calls ``pages`` makes in order.
"""

from __future__ import annotations

import base64
import json
import re
from collections import deque
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit

from adieu.esp.push import ADD, COMPLAINT, UNSUBSCRIBE
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

#: Entries per page asked of Mailjet (its ``Limit`` is at most 1000).
MAILJET_PAGE = 1000
#: A contact's numeric ID, as the path of its lookup ends.
_LOOKUP = re.compile(r".*/v3/REST/contact/[0-9]{1,19}")


class Mailjet(Provider):
    name = "mailjet"

    def __init__(
        self, base: str, key: str, secret: str, lists: dict[str, int], clock: Clock
    ) -> None:
        super().__init__(base, clock, lists)
        token = base64.b64encode(f"{key}:{secret}".encode()).decode()
        self._auth = {"Authorization": f"Basic {token}"}
        #: Contact IDs of the list page just read, still to be named.
        self._waiting: deque[int] = deque()
        #: That list's next page, once they are.
        self._then: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock) -> Mailjet | None:
        if not settings.mailjet_api_key or settings.mailjet_api_secret is None:
            return None
        lists = topic_map(settings.mailjet_lists, int)
        return cls(
            settings.mailjet_api_url,
            settings.mailjet_api_key,
            settings.mailjet_api_secret.reveal(),
            lists,
            clock,
        )

    def calls(self, action: str, kind: str, scope: str, address: str) -> list[Call]:
        headers = {**self._auth, "Content-Type": "application/json"}
        rest = f"{self.base}/v3/REST"
        excluded = action == ADD and scope == ALL
        create = {"Email": address, **({"IsExcludedFromCampaigns": True} if excluded else {})}
        # Already a contact: 400 (MJ18), done; the next call decides.
        first = Call("POST", f"{rest}/contact", headers, _json(create), frozenset({400}))
        if scope != ALL:
            change = {"Email": address, "Action": "unsub" if action == ADD else "addforce"}
            url = f"{rest}/contactslist/{self.topics[scope]}/managecontact"
            return [first, Call("POST", url, headers, _json(change))]
        put = Call(
            "PUT",
            f"{rest}/contact/{segment(address)}",
            headers,
            _json({"IsExcludedFromCampaigns": action == ADD}),
        )
        if action == ADD:
            return [first, put]
        # Where Mailjet has no such contact there is nothing to lift.
        return [Call(put.method, put.url, put.headers, put.body, frozenset({404}))]

    def list_urls(self) -> list[tuple[str, str, str]]:
        self._waiting, self._then = deque(), None
        rest = f"{self.base}/v3/REST"
        paging = {"Limit": str(MAILJET_PAGE), "Offset": "0"}
        query = urlencode({"IsExcludedFromCampaigns": "true", **paging})
        lists = [(f"{rest}/contact?{query}", "", ALL)]
        for topic, list_id in sorted(self.topics.items()):
            query = urlencode({"ContactsList": str(list_id), "Unsub": "true", **paging})
            lists.append((f"{rest}/listrecipient?{query}", UNSUBSCRIBE, topic))
        return lists

    def read_headers(self, url: str) -> dict[str, str]:
        return {**self._auth, "Accept": "application/json"}

    def page(self, url: str, reason: str, scope: str, body: bytes) -> Page:
        path = _parts(url).path
        if path.endswith("/v3/REST/listrecipient"):
            ids, following = recipients_page(url, body)
            self._waiting, self._then = deque(ids), following
            return Page((), self._onwards())
        if _LOOKUP.fullmatch(path) and scope != ALL:
            address = contact_address(body)
            entries = (Entry(address, UNSUBSCRIBE, scope),) if address else ()
            return Page(entries, self._onwards())
        return excluded_page(url, body)

    def _onwards(self) -> str | None:
        """The next contact to name, or the list's next page."""
        if self._waiting:
            return f"{self.base}/v3/REST/contact/{self._waiting.popleft()}"
        then, self._then = self._then, None
        return then


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _is(value: Any, flag: bool) -> bool:
    """Mailjet's booleans (its examples also write them as strings)."""
    return value is flag or value == str(flag).lower()


def _data(body: bytes) -> list[Any]:
    data = json_body(body)
    items = data.get("Data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise Unreadable("Mailjet's answer has no Data list")
    return items


def _parts(url: str) -> SplitResult:
    try:
        return urlsplit(url)
    except ValueError:  # "http://[": not a URL Adieu made
        return SplitResult("", "", "", "", "")


def _next(url: str, count: int) -> str | None:
    """The page after ``url``'s, read ``Limit`` at a time by ``Offset``: a
    full page may have more after it, a short one is the last. (Mailjet's
    ``Total`` is not relied on.)"""
    parts = _parts(url)
    if not parts.scheme or not parts.netloc:
        return None
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    limit = query.get("Limit", "")
    offset = query.get("Offset", "0")
    if not (limit.isascii() and limit.isdigit() and 0 < int(limit) <= 1000):
        return None
    if not (offset.isascii() and offset.isdigit() and len(offset) <= 12):
        return None
    if count < int(limit):
        return None
    query["Offset"] = str(int(offset) + int(limit))
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}"


def excluded_page(url: str, body: bytes) -> Page:
    """``{"Count", "Data": [contact…], "Total"}`` of contacts excluded from
    campaigns: each an unsubscribe from all mail (a complaint when Mailjet
    says the contact complained). A contact the answer says is not excluded
    is left out."""
    items = _data(body)
    entries: list[Entry] = []
    for item in items:
        if not isinstance(item, dict) or _is(item.get("IsExcludedFromCampaigns"), False):
            continue
        address = address_of(item.get("Email"))
        if address:
            reason = COMPLAINT if _is(item.get("IsSpamComplaining"), True) else UNSUBSCRIBE
            entries.append(Entry(address, reason))
    return Page(tuple(entries), _next(url, len(items)))


def recipients_page(url: str, body: bytes) -> tuple[list[int], str | None]:
    """A page of a list's subscriptions (``listrecipient``): the numeric IDs
    of the contacts unsubscribed from it, in order, once each; and the next
    page."""
    items = _data(body)
    ids: list[int] = []
    seen: set[int] = set()
    for item in items:
        if not isinstance(item, dict) or _is(item.get("IsUnsubscribed"), False):
            continue
        raw = item.get("ContactID")
        if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 19:
            raw = int(raw)
        if type(raw) is int and 0 < raw < 2**63 and raw not in seen:
            seen.add(raw)
            ids.append(raw)
    return ids, _next(url, len(items))


def contact_address(body: bytes) -> str | None:
    """The address of the one contact a ``GET /contact/{ID}`` answers with."""
    items = _data(body)
    first = items[0] if items else None
    return address_of(first.get("Email")) if isinstance(first, dict) else None
