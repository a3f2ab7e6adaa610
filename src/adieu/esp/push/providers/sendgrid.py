"""SendGrid: global suppressions (``/v3/asm/suppressions/global``) and
unsubscribe groups (``/v3/asm/groups/{id}/suppressions``) for topics that have
one (``ADIEU_SENDGRID_GROUPS``); bounces and spam reports cannot be added
through the API, so they go to the global suppressions too; a lift deletes
the bounce or spam report as well."""

from __future__ import annotations

import json
from urllib.parse import urlencode, urlsplit

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

#: Entries per page asked of SendGrid (its maximum is 500).
SENDGRID_PAGE = 500


class SendGrid(Provider):
    name = "sendgrid"

    def __init__(self, base: str, key: str, groups: dict[str, int], clock: Clock) -> None:
        super().__init__(base, clock, groups)
        self._key = key

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock) -> SendGrid | None:
        if settings.sendgrid_api_key is None:
            return None
        groups = topic_map(settings.sendgrid_groups, int)
        return cls(settings.sendgrid_api_url, settings.sendgrid_api_key.reveal(), groups, clock)

    def calls(self, action: str, kind: str, scope: str, address: str) -> list[Call]:
        headers = {"Authorization": f"Bearer {self._key}", "Content-Type": "application/json"}
        v3 = f"{self.base}/v3"
        if scope != ALL:
            group = self.topics[scope]
            if action == ADD:
                body = json.dumps({"recipient_emails": [address]}).encode()
                return [Call("POST", f"{v3}/asm/groups/{group}/suppressions", headers, body)]
            url = f"{v3}/asm/groups/{group}/suppressions/{segment(address)}"
            return [Call("DELETE", url, headers, done=frozenset({404}))]
        if action == ADD:
            body = json.dumps({"recipient_emails": [address]}).encode()
            return [Call("POST", f"{v3}/asm/suppressions/global", headers, body)]
        calls = [
            Call(
                "DELETE",
                f"{v3}/asm/suppressions/global/{segment(address)}",
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

    def list_urls(self) -> list[tuple[str, str, str]]:
        v3 = f"{self.base}/v3"
        lists = [
            (f"{v3}/suppression/unsubscribes?limit={SENDGRID_PAGE}&offset=0", UNSUBSCRIBE, ALL),
            (f"{v3}/suppression/bounces?limit={SENDGRID_PAGE}&offset=0", BOUNCE, ALL),
            (f"{v3}/suppression/spam_reports?limit={SENDGRID_PAGE}&offset=0", COMPLAINT, ALL),
        ]
        for topic, group in sorted(self.topics.items()):
            lists.append((f"{v3}/asm/groups/{group}/suppressions", UNSUBSCRIBE, topic))
        return lists

    def read_headers(self, url: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}", "Accept": "application/json"}

    def page(self, url: str, reason: str, scope: str, body: bytes) -> Page:
        return sendgrid_page(url, body, reason, scope)


def sendgrid_page(url: str, body: bytes, reason: str, scope: str) -> Page:
    """A list of ``{"email", "created"}`` objects (or, for a group, of
    addresses), read ``limit`` at a time by ``offset``."""
    data = json_body(body)
    if not isinstance(data, list):
        raise Unreadable("SendGrid's answer is not a list")
    entries: list[Entry] = []
    for item in data:
        raw = item.get("email") if isinstance(item, dict) else item
        address = address_of(raw)
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
