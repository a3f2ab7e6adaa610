"""Amazon SES (API v2, signed with Signature Version 4): the account-level
suppression list. ``PutSuppressedDestination`` (``PUT
/v2/email/suppression/addresses``, reason ``BOUNCE`` or ``COMPLAINT``: the
list knows no other, so an unsubscribe from all mail is put there as
``COMPLAINT``), ``DeleteSuppressedDestination`` and
``ListSuppressedDestinations``."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from adieu.esp.push import ADD, BOUNCE, COMPLAINT
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
)
from adieu.esp.push.sigv4 import Credentials, sign
from adieu.scopes import ALL
from adieu.settings import Settings


class SES(Provider):
    name = "ses"

    def __init__(self, base: str, region: str, credentials: Credentials, clock: Clock) -> None:
        super().__init__(base, clock)
        self.region = region
        self.credentials = credentials

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock) -> SES | None:
        region, credentials = settings.ses_region, Credentials.from_environment()
        if not region or credentials is None:
            return None
        base = settings.ses_endpoint_url or f"https://email.{region}.amazonaws.com"
        return cls(base, region, credentials, clock)

    def calls(self, action: str, kind: str, scope: str, address: str) -> list[Call]:
        base = f"{self.base}/v2/email/suppression/addresses"
        if action == ADD:
            reason = "BOUNCE" if kind == BOUNCE else "COMPLAINT"
            body = json.dumps({"EmailAddress": address, "Reason": reason}).encode()
            return [self._signed("PUT", base, body)]
        return [self._signed("DELETE", f"{base}/{segment(address)}", b"", done=frozenset({404}))]

    def _signed(
        self, method: str, url: str, body: bytes, done: frozenset[int] = frozenset()
    ) -> Call:
        headers = sign(method, url, body, self.credentials, self.region, "ses", self.clock())
        if body:
            headers["Content-Type"] = "application/json"
        return Call(method, url, headers, body, done)

    def list_urls(self) -> list[tuple[str, str, str]]:
        return [(f"{self.base}/v2/email/suppression/addresses?PageSize=1000", "", ALL)]

    def read_headers(self, url: str) -> dict[str, str]:
        return self._signed("GET", url, b"").headers

    def page(self, url: str, reason: str, scope: str, body: bytes) -> Page:
        return ses_page(url, body)


def ses_page(url: str, body: bytes) -> Page:
    """``ListSuppressedDestinations``: ``SuppressedDestinationSummaries`` of
    ``EmailAddress`` and ``Reason``; ``NextToken`` while there is more."""
    data = json_body(body)
    if not isinstance(data, dict) or not isinstance(
        data.get("SuppressedDestinationSummaries", []), list
    ):
        raise Unreadable("SES's answer has no SuppressedDestinationSummaries list")
    entries: list[Entry] = []
    for item in data.get("SuppressedDestinationSummaries", []):
        if not isinstance(item, dict):
            continue
        address = address_of(item.get("EmailAddress"))
        reason = {"BOUNCE": BOUNCE, "COMPLAINT": COMPLAINT}.get(str(item.get("Reason")))
        if address and reason:
            entries.append(Entry(address, reason))
    token = data.get("NextToken")
    next_url = None
    if isinstance(token, str) and token:
        base = url.split("?", 1)[0]
        next_url = f"{base}?{urlencode({'PageSize': 1000, 'NextToken': token})}"
    return Page(tuple(entries), next_url)
