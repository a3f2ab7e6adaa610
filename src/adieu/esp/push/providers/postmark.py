"""Postmark: the message stream's suppressions (``/suppressions`` and
``/suppressions/delete``, answered 200 with a status per address), read back
whole from ``/suppressions/dump``."""

from __future__ import annotations

import json

from adieu.addresses import mask_all
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
)
from adieu.scopes import ALL
from adieu.settings import Settings


class Postmark(Provider):
    name = "postmark"

    def __init__(self, base: str, token: str, stream: str, clock: Clock) -> None:
        super().__init__(base, clock)
        self.stream = stream
        self._token = token

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock) -> Postmark | None:
        if settings.postmark_server_token is None:
            return None
        token = settings.postmark_server_token.reveal()
        return cls(settings.postmark_api_url, token, settings.postmark_stream, clock)

    def calls(self, action: str, kind: str, scope: str, address: str) -> list[Call]:
        headers = {"Content-Type": "application/json", **self.read_headers("")}
        url = f"{self.base}/message-streams/{segment(self.stream)}/suppressions"
        if action != ADD:
            url += "/delete"
        body = json.dumps({"Suppressions": [{"EmailAddress": address}]}).encode()
        return [Call("POST", url, headers, body, check=postmark_failure)]

    def list_urls(self) -> list[tuple[str, str, str]]:
        stream = segment(self.stream)
        return [(f"{self.base}/message-streams/{stream}/suppressions/dump", "", ALL)]

    def read_headers(self, url: str) -> dict[str, str]:
        return {"Accept": "application/json", "X-Postmark-Server-Token": self._token}

    def page(self, url: str, reason: str, scope: str, body: bytes) -> Page:
        return postmark_page(body)


def postmark_failure(body: bytes) -> str | None:
    """Postmark answers 200 with a status per address; "Failed" (with its
    message) is a refusal. A body of another shape is not a success."""
    try:
        data = json_body(body)
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


def postmark_page(body: bytes) -> Page:
    """The stream's whole dump: ``Suppressions`` of ``EmailAddress`` and
    ``SuppressionReason`` (HardBounce, SpamComplaint, ManualSuppression)."""
    data = json_body(body)
    items = data.get("Suppressions") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise Unreadable("Postmark's answer has no Suppressions list")
    reasons = {"HardBounce": BOUNCE, "SpamComplaint": COMPLAINT}
    entries: list[Entry] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        address = address_of(item.get("EmailAddress"))
        if address:
            entries.append(
                Entry(address, reasons.get(str(item.get("SuppressionReason")), UNSUBSCRIBE))
            )
    return Page(tuple(entries), None)
