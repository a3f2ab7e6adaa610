"""A local HTTP server standing in for Resend's contacts API, as Resend
documents it: the API key as a bearer token; ``POST /contacts`` (an address
it already has: 409), ``PATCH /contacts/{id or address}`` (404 for none),
``PATCH /contacts/{id or address}/topics`` with ``{"topics": [{"id",
"subscription": "opt_in" | "opt_out"}]}``, and ``GET /contacts`` paged by
``limit`` and ``after`` (the last id) with ``has_more``; errors as
``{"statusCode", "message", "name"}``. Trouble comes from the script of
``StandInServer``."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from push_support import StandInServer

RESEND_KEY = "re_" + secrets.token_urlsafe(24)
TOPIC_ID = "b6d24b8e-af0b-4c3c-be0c-359bbd97381e"


@dataclass
class Contact:
    id: str
    email: str
    unsubscribed: bool = False
    topics: dict[str, str] = field(default_factory=dict)  # topic id → opt_in/opt_out


def _error(status: int, message: str, name: str) -> tuple[int, Any, dict[str, str]]:
    return status, {"statusCode": status, "message": message, "name": name}, {}


class ResendStandIn(StandInServer):
    """Resend at ``/resend`` (the API base)."""

    def __init__(self, page_size: int = 3) -> None:
        self.contacts: dict[str, Contact] = {}  # by address
        #: Every GET of the list: its query.
        self.reads: list[dict[str, list[str]]] = []
        super().__init__(page_size)

    def settings(self) -> dict[str, Any]:
        return {
            "resend_api_key": RESEND_KEY,
            "resend_api_url": f"{self.base}/resend",
            "resend_topics": f"news={TOPIC_ID}",
        }

    def contact(self, email: str, *, unsubscribed: bool = False) -> Contact:
        made = self.contacts[email] = Contact(secrets.token_hex(8), email, unsubscribed)
        return made

    def unsubscribed(self) -> set[str]:
        return {c.email for c in self.contacts.values() if c.unsubscribed}

    def opted_out(self) -> set[str]:
        return {c.email for c in self.contacts.values() if c.topics.get(TOPIC_ID) == "opt_out"}

    def auth(
        self, provider: str, method: str, raw: str, headers: dict[str, str], body: bytes
    ) -> str | None:
        if provider != "resend":
            return "unknown provider"
        ok = headers.get("authorization") == f"Bearer {RESEND_KEY}"
        return None if ok else "bad bearer key"

    def _find(self, key: str) -> Contact | None:
        return self.contacts.get(key) or next(
            (c for c in self.contacts.values() if c.id == key), None
        )

    def route(
        self, provider: str, method: str, path: str, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(path)
        segments = parts.path.strip("/").split("/")
        if segments[0] != "contacts":
            return _error(404, "Route not found", "not_found")
        if method == "POST" and len(segments) == 1:
            data = json.loads(body)
            email = data.get("email", "")
            if "@" not in email:
                return _error(422, "Invalid `email` field.", "validation_error")
            if email in self.contacts:
                return _error(409, "Contact already exists.", "conflict")
            made = self.contact(email, unsubscribed=bool(data.get("unsubscribed")))
            self._log("resend", "add" if made.unsubscribed else "create", "contact", email)
            return 201, {"object": "contact", "id": made.id}, {}
        if method == "GET" and len(segments) == 1:
            query = parse_qs(parts.query)
            self.reads.append(query)
            limit = int(query.get("limit", ["50"])[0])
            if not 1 <= limit <= 100:
                return _error(422, "limit must be between 1 and 100", "validation_error")
            listed = sorted(self.contacts.values(), key=lambda c: c.id)
            after = query.get("after", [None])[0]
            if after is not None:
                listed = [c for c in listed if c.id > after]
            page = listed[: min(limit, self.page_size)]
            data = [{"id": c.id, "email": c.email, "unsubscribed": c.unsubscribed} for c in page]
            return 200, {"object": "list", "has_more": len(listed) > len(page), "data": data}, {}
        if method == "PATCH" and len(segments) in (2, 3):
            found = self._find(unquote(segments[1]))
            if found is None:
                return _error(404, "Contact not found", "not_found")
            data = json.loads(body)
            if len(segments) == 2:
                if found.unsubscribed != bool(data["unsubscribed"]):
                    found.unsubscribed = bool(data["unsubscribed"])
                    action = "add" if found.unsubscribed else "remove"
                    self._log("resend", action, "unsubscribed", found.email)
                return 200, {"object": "contact", "id": found.id}, {}
            if segments[2] == "topics":
                for choice in data["topics"]:
                    if choice["id"] != TOPIC_ID or choice["subscription"] not in (
                        "opt_in",
                        "opt_out",
                    ):
                        return _error(422, "Invalid topic.", "validation_error")
                    if found.topics.get(TOPIC_ID) != choice["subscription"]:
                        found.topics[TOPIC_ID] = choice["subscription"]
                        action = "add" if choice["subscription"] == "opt_out" else "remove"
                        self._log("resend", action, "topic", found.email)
                return 200, {"id": found.id}, {}
        return _error(405, "Method not allowed", "method_not_allowed")


@pytest.fixture
def resend() -> Iterator[ResendStandIn]:
    server = ResendStandIn()
    yield server
    server.close()
