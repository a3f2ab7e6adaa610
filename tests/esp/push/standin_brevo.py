"""A local HTTP server standing in for Brevo's API v3 as Brevo documents it:
the key in the ``api-key`` header (401 ``{"code": "unauthorized"}``
without it); contacts created with ``POST /v3/contacts`` (201 ``{"id"}``;
with ``updateEnabled`` an existing one is updated, 204; without, 400
``duplicate_parameter``) and updated with ``PUT /v3/contacts/{identifier}``
(``emailBlacklisted``, ``listIds``, ``unlinkListIds``; 204, or 404
``document_not_found``); transactional blocks deleted with ``DELETE
/v3/smtp/blockedContacts/{email}`` (204, or 404 when there is none); and
both read ``limit`` at a time from ``offset`` (contacts at most 1000 a page,
blocks at most 100), in the ``sort`` order of creation. Requests with keys
Brevo does not document for the endpoint are refused (400
``invalid_parameter``), so a mistaken request shows. Errors are ``{"code",
"message"}``; a rate limit is a 429 with ``x-sib-ratelimit-*`` headers and
no ``Retry-After``. Trouble comes from the script of ``StandInServer``."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from push_support import TOPIC, StandInServer

BREVO_KEY = "xkeysib-" + secrets.token_hex(32)
#: The contact list that stands for ``TOPIC``; another list Adieu knows nothing of.
NEWS_LIST, OTHER_LIST = 7, 9
STAMP = "2026-12-01T12:00:00.000Z"

_CREATE_KEYS = {
    "email",
    "ext_id",
    "attributes",
    "emailBlacklisted",
    "smsBlacklisted",
    "listIds",
    "updateEnabled",
    "smtpBlacklistSender",
}
_UPDATE_KEYS = {
    "attributes",
    "ext_id",
    "emailBlacklisted",
    "smsBlacklisted",
    "listIds",
    "unlinkListIds",
    "smtpBlacklistSender",
}
_CODES = {
    400: "invalid_parameter",
    401: "unauthorized",
    404: "document_not_found",
    429: "too_many_requests",
    503: "service_unavailable",
}


@dataclass
class Contact:
    id: int
    email: str
    blocklisted: bool = False
    lists: set[int] = field(default_factory=set)
    #: Lists the contact unsubscribed from (by a campaign's link).
    unsubscribed: set[int] = field(default_factory=set)


@dataclass
class Block:
    code: str
    message: str


def _error(status: int, message: str, code: str | None = None) -> tuple[int, Any, dict[str, str]]:
    return status, {"code": code or _CODES.get(status, "invalid_parameter"), "message": message}, {}


def _ids(value: Any) -> bool:
    return isinstance(value, list) and all(type(i) is int and i > 0 for i in value)


class BrevoStandIn(StandInServer):
    """Brevo at the server's root (its API paths start ``/v3``)."""

    def __init__(self, page_size: int = 3) -> None:
        #: Contacts by address, in the order they were created.
        self.contacts: dict[str, Contact] = {}
        #: Transactional blocks by address.
        self.blocks: dict[str, Block] = {}
        #: Every request: (method, path with its query).
        self.seen: list[tuple[str, str]] = []
        #: The lists in the account.
        self.known_lists = {NEWS_LIST, OTHER_LIST}
        #: What a rate-limited answer says is left of the window, in seconds.
        self.reset_s = 1
        self._next_id = 1
        super().__init__(page_size)

    def settings(self) -> dict[str, Any]:
        return {
            "brevo_api_key": BREVO_KEY,
            "brevo_api_url": self.base,
            "brevo_lists": f"{TOPIC}={NEWS_LIST}",
        }

    def add_contact(
        self,
        email: str,
        *,
        blocklisted: bool = False,
        lists: set[int] | None = None,
        unsubscribed: set[int] | None = None,
    ) -> Contact:
        """A contact made in Brevo (by the sender, an import, a form)."""
        contact = Contact(
            self._next_id, email, blocklisted, set(lists or ()), set(unsubscribed or ())
        )
        self._next_id += 1
        self.contacts[email] = contact
        return contact

    def handle(
        self, method: str, raw: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        with self.lock:
            self.seen.append((method, raw))
        status, answer, extra = super().handle(method, raw, headers, body)
        if isinstance(answer, dict) and set(answer) == {"message"}:  # the script's, the 401
            message = "Key not found" if status == 401 else str(answer["message"])
            answer = {"code": _CODES.get(status, "invalid_parameter"), "message": message}
        if status == 429:  # Brevo says when its window resets, not Retry-After
            extra = {
                "x-sib-ratelimit-limit": "10",
                "x-sib-ratelimit-remaining": "0",
                "x-sib-ratelimit-reset": str(self.reset_s),
            }
            answer = {
                "code": "too_many_requests",
                "message": "The expected rate limit is exceeded.",
            }
        return status, answer, extra

    def auth(
        self, provider: str, method: str, raw: str, headers: dict[str, str], body: bytes
    ) -> str | None:
        if provider != "v3":
            return "not the API"
        given = headers.get("api-key", "")
        return None if secrets.compare_digest(given, BREVO_KEY) else "bad api-key"

    def route(
        self, provider: str, method: str, path: str, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(path)
        p, query = parts.path, parse_qs(parts.query)
        if p == "/contacts" and method == "POST":
            return self._create(body)
        if p == "/contacts" and method == "GET":
            return self._list_contacts(query)
        if p.startswith("/contacts/") and method == "PUT":
            return self._update(unquote(p[len("/contacts/") :]), query, body)
        if p == "/smtp/blockedContacts" and method == "GET":
            return self._list_blocks(query)
        if p.startswith("/smtp/blockedContacts/") and method == "DELETE":
            return self._unblock(unquote(p[len("/smtp/blockedContacts/") :]))
        return _error(404, "Invalid route")

    # -- writes ---------------------------------------------------------------------

    def _body(self, body: bytes, allowed: set[str]) -> dict[str, Any] | str:
        try:
            data = json.loads(body)
        except ValueError:
            return "Input must be a valid JSON object"
        if not isinstance(data, dict):
            return "Input must be a valid JSON object"
        unknown = set(data) - allowed
        if unknown:
            return f"Invalid parameter(s): {', '.join(sorted(unknown))}"
        for key in ("emailBlacklisted", "smsBlacklisted", "updateEnabled"):
            if key in data and not isinstance(data[key], bool):
                return f"{key} should be boolean"
        for key in ("listIds", "unlinkListIds"):
            if key in data:
                if not _ids(data[key]):
                    return f"{key} should be an array of positive integers"
                if set(data[key]) - self.known_lists:
                    return "List ID does not exist"
        return data

    def _apply(self, contact: Contact, data: dict[str, Any]) -> None:
        """Set what ``data`` says, logging each change made."""
        if "emailBlacklisted" in data and data["emailBlacklisted"] != contact.blocklisted:
            contact.blocklisted = data["emailBlacklisted"]
            self._log(
                "brevo", "add" if contact.blocklisted else "remove", "blocklist", contact.email
            )
        for list_id in data.get("unlinkListIds", []):
            if list_id in contact.lists:
                contact.lists.discard(list_id)
                self._log("brevo", "add", f"unlinked {list_id}", contact.email)
        for list_id in data.get("listIds", []):
            if list_id not in contact.lists:
                contact.lists.add(list_id)
                contact.unsubscribed.discard(list_id)
                self._log("brevo", "remove", f"unlinked {list_id}", contact.email)

    def _create(self, body: bytes) -> tuple[int, Any, dict[str, str]]:
        data = self._body(body, _CREATE_KEYS)
        if isinstance(data, str):
            return _error(400, data)
        email = data.get("email")
        if not isinstance(email, str) or "@" not in email:
            return _error(
                400,
                "An email or SMS phone number is mandatory to create a new contact.",
                "missing_parameter",
            )
        held = self.contacts.get(email.lower())
        if held is not None:
            if data.get("updateEnabled") is not True:
                return _error(400, "Contact already exist", "duplicate_parameter")
            self._apply(held, data)
            return 204, b"", {}
        contact = self.add_contact(email.lower())
        self._apply(contact, data)
        return 201, {"id": contact.id}, {}

    def _update(
        self, identifier: str, query: dict[str, list[str]], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        kind = query.get("identifierType", [None])[0]
        if kind not in (None, "email_id", "contact_id"):
            return _error(400, "identifierType is not valid")
        if kind == "contact_id" or (kind is None and identifier.isdigit()):
            contact = next((c for c in self.contacts.values() if str(c.id) == identifier), None)
        else:
            contact = self.contacts.get(identifier.lower())
        data = self._body(body, _UPDATE_KEYS)
        if isinstance(data, str):
            return _error(400, data)
        if contact is None:
            return _error(404, "Contact does not exist")
        self._apply(contact, data)
        return 204, b"", {}

    def _unblock(self, email: str) -> tuple[int, Any, dict[str, str]]:
        if "@" not in email:
            return _error(400, "email is not valid")
        if self.blocks.pop(email.lower(), None) is None:
            return _error(404, "Contact does not exist")
        self._log("brevo", "remove", "blocked", email.lower())
        return 204, b"", {}

    # -- reads ----------------------------------------------------------------------

    def _window(
        self, rows: list[Any], query: dict[str, list[str]], most: int
    ) -> list[Any] | tuple[int, Any, dict[str, str]]:
        limit_text = query.get("limit", ["50"])[0]
        offset_text = query.get("offset", ["0"])[0]
        sort = query.get("sort", ["desc"])[0]
        if not limit_text.isdigit() or not 0 < int(limit_text) <= most:
            return _error(400, f"limit should be between 1 and {most}", "out_of_range")
        if not offset_text.isdigit():
            return _error(400, "offset should be a positive integer")
        if sort not in ("asc", "desc"):
            return _error(400, "sort should be asc or desc")
        ordered = rows if sort == "asc" else rows[::-1]
        offset, limit = int(offset_text), int(limit_text)
        return ordered[offset : offset + limit]

    def _list_contacts(self, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        rows = sorted(self.contacts.values(), key=lambda c: c.id)
        page = self._window(rows, query, 1000)
        if isinstance(page, tuple):
            return page
        contacts = []
        for c in page:
            item: dict[str, Any] = {
                "email": c.email,
                "id": c.id,
                "emailBlacklisted": c.blocklisted,
                "smsBlacklisted": False,
                "createdAt": STAMP,
                "modifiedAt": STAMP,
                "listIds": sorted(c.lists),
                "attributes": {},
            }
            if c.unsubscribed:  # left out when there are none
                item["listUnsubscribed"] = sorted(c.unsubscribed)
            contacts.append(item)
        return 200, {"contacts": contacts, "count": len(rows)}, {}

    def _list_blocks(self, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        rows = list(self.blocks.items())
        page = self._window(rows, query, 100)
        if isinstance(page, tuple):
            return page
        contacts = [
            {
                "email": email,
                "senderEmail": "news@sender.example",
                "reason": {"code": block.code, "message": block.message},
                "blockedAt": STAMP,
            }
            for email, block in page
        ]
        return 200, {"count": len(rows), "contacts": contacts}, {}


@pytest.fixture
def brevo() -> Iterator[BrevoStandIn]:
    server = BrevoStandIn()
    yield server
    server.close()
