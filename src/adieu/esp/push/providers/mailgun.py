"""Mailgun: the domain's ``unsubscribes`` (tag ``*``, or the topic's key),
``complaints`` and ``bounces``."""

from __future__ import annotations

import base64
from urllib.parse import urlencode

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


class Mailgun(Provider):
    name = "mailgun"

    def __init__(self, base: str, key: str, domain: str, clock: Clock) -> None:
        super().__init__(base, clock)
        self.domain = domain
        token = base64.b64encode(f"api:{key}".encode()).decode()
        self._auth = {"Authorization": f"Basic {token}"}

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock) -> Mailgun | None:
        if settings.mailgun_api_key is None or not settings.mailgun_domain:
            return None
        key = settings.mailgun_api_key.reveal()
        return cls(settings.mailgun_api_url, key, settings.mailgun_domain, clock)

    def takes(self, scope: str) -> bool:
        return True  # an unsubscribe's tag is the topic's key

    def calls(self, action: str, kind: str, scope: str, address: str) -> list[Call]:
        where = {UNSUBSCRIBE: "unsubscribes", COMPLAINT: "complaints", BOUNCE: "bounces"}[kind]
        url = f"{self.base}/v3/{segment(self.domain)}/{where}"
        if action == ADD:
            form: dict[str, str] = {"address": address}
            if kind == UNSUBSCRIBE:
                form["tag"] = "*" if scope == ALL else scope
            elif kind == BOUNCE:
                form.update(code="550", error="Recorded as a hard bounce by Adieu")
            form_headers = {**self._auth, "Content-Type": "application/x-www-form-urlencoded"}
            return [Call("POST", url, form_headers, urlencode(form).encode())]
        url = f"{url}/{segment(address)}"
        if kind == UNSUBSCRIBE and scope != ALL:
            url += "?" + urlencode({"tag": scope})
        return [Call("DELETE", url, dict(self._auth), done=frozenset({404}))]

    def list_urls(self) -> list[tuple[str, str, str]]:
        base = f"{self.base}/v3/{segment(self.domain)}"
        return [
            (f"{base}/unsubscribes?limit=1000", UNSUBSCRIBE, ALL),
            (f"{base}/bounces?limit=1000", BOUNCE, ALL),
            (f"{base}/complaints?limit=1000", COMPLAINT, ALL),
        ]

    def read_headers(self, url: str) -> dict[str, str]:
        return dict(self._auth)

    def page(self, url: str, reason: str, scope: str, body: bytes) -> Page:
        return mailgun_page(url, body, reason, self.base)


def mailgun_page(url: str, body: bytes, reason: str, base: str) -> Page:
    """``{"items": [{"address", "tags"…}], "paging": {"next": URL}}``; the list
    ends with a page without items. A next URL elsewhere than the API is not
    followed (the key would go with it)."""
    data = json_body(body)
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise Unreadable("Mailgun's answer has no items list")
    entries: list[Entry] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        address = address_of(item.get("address"))
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
        and origin(following) == origin(base)
    ):
        next_url = following
    return Page(tuple(entries), next_url)
