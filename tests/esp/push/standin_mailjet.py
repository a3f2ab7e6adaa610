"""A local HTTP server standing in for Mailjet's REST API v3, as Mailjet
documents it: HTTP Basic with the API key and the secret key; answers of
``{"Count", "Data": […], "Total"}``; errors of ``{"ErrorInfo",
"ErrorMessage", "StatusCode"}``; collections read ``Limit`` (10 by default,
at most 1000) at a time from ``Offset``; a contact named by its numeric ID or
its address. What it serves:

- ``POST /v3/REST/contact``: a new contact (``Email``, and
  ``IsExcludedFromCampaigns``); an address that is already a contact is a
  400 (``MJ18 … already exists``);
- ``PUT``/``GET /v3/REST/contact/{ID or address}``: one contact (404 when
  there is none), its exclusion from campaigns set by the ``PUT``;
- ``GET /v3/REST/contact``: the contacts, ``IsExcludedFromCampaigns`` as a
  filter;
- ``POST /v3/REST/contactslist/{ID}/managecontact``: an existing contact's
  membership of the list (``addforce``, ``addnoforce``, ``remove``, ``unsub``;
  404 for a list or a contact Mailjet lacks);
- ``GET /v3/REST/listrecipient``: the lists' members, by ``ContactsList`` and
  ``Unsub``, each naming the contact by its numeric ID only.

A filter Mailjet does not document for the resource is refused (400), so a
misspelt one shows. Trouble comes from the script of ``StandInServer``."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from push_support import StandInServer

MAILJET_KEY = secrets.token_hex(16)
MAILJET_SECRET = secrets.token_hex(16)
NEWS_LIST = 1701
STAMP = "2026-12-01T12:00:00Z"
ACTIONS = ("addforce", "addnoforce", "remove", "unsub")
AUTH_FAILURE = (
    "API key authentication/authorization failure. You may be unauthorized to access "
    "the API or your API key may be expired. Visit API keys management section to check "
    "your keys."
)

Answer = tuple[int, Any, dict[str, str]]


@dataclass
class Contact:
    id: int
    email: str
    excluded: bool = False
    spam: bool = False

    def shown(self) -> dict[str, Any]:
        return {
            "CreatedAt": STAMP,
            "DeliveredCount": 0,
            "Email": self.email,
            "ExclusionFromCampaignsUpdatedAt": STAMP if self.excluded else "",
            "ID": self.id,
            "IsExcludedFromCampaigns": self.excluded,
            "IsOptInPending": False,
            "IsSpamComplaining": self.spam,
            "LastActivityAt": STAMP,
            "LastUpdateAt": STAMP,
            "Name": "",
            "UnsubscribedAt": "",
            "UnsubscribedBy": "",
        }


@dataclass
class Membership:
    id: int
    unsubscribed: bool


@dataclass
class ContactsList:
    id: int
    name: str
    #: Contact ID → its membership.
    members: dict[int, Membership] = field(default_factory=dict)


def _error(status: int, message: str, info: Any = "") -> Answer:
    return status, {"ErrorInfo": info, "ErrorMessage": message, "StatusCode": status}, {}


def _data(status: int, rows: list[dict[str, Any]], total: int | None = None) -> Answer:
    return (
        status,
        {"Count": len(rows), "Data": rows, "Total": len(rows) if total is None else total},
        {},
    )


class MailjetStandIn(StandInServer):
    """Mailjet at the server's root (its API paths start ``/v3/REST``), with
    one contact list, ``NEWS_LIST``."""

    def __init__(self, page_size: int = 3) -> None:
        #: Address (lower case) → contact.
        self.contacts: dict[str, Contact] = {}
        self.lists: dict[int, ContactsList] = {NEWS_LIST: ContactsList(NEWS_LIST, "News")}
        #: Every GET: (path, query).
        self.reads: list[tuple[str, dict[str, list[str]]]] = []
        self._next_id = 1000
        super().__init__(page_size)

    def settings(self, lists: str = f"news={NEWS_LIST}") -> dict[str, Any]:
        return {
            "mailjet_api_key": MAILJET_KEY,
            "mailjet_api_secret": MAILJET_SECRET,
            "mailjet_api_url": self.base,
            "mailjet_lists": lists,
        }

    # -- what a test sees and sets -------------------------------------------------

    def excluded(self) -> set[str]:
        return {c.email for c in self.contacts.values() if c.excluded}

    def unsubscribed(self, list_id: int = NEWS_LIST) -> set[str]:
        by_id = {c.id: c.email for c in self.contacts.values()}
        return {by_id[m] for m, s in self.lists[list_id].members.items() if s.unsubscribed}

    def subscribed(self, list_id: int = NEWS_LIST) -> set[str]:
        by_id = {c.id: c.email for c in self.contacts.values()}
        return {by_id[m] for m, s in self.lists[list_id].members.items() if not s.unsubscribed}

    def contact(self, email: str, *, excluded: bool = False, spam: bool = False) -> Contact:
        """A contact as if made in Mailjet's app."""
        with self.lock:
            made = self.contacts[email.lower()] = Contact(self._new_id(), email, excluded, spam)
            return made

    def member(self, email: str, *, unsubscribed: bool, list_id: int = NEWS_LIST) -> None:
        """``email`` on the list, as if put there in Mailjet's app."""
        known = self.contacts.get(email.lower()) or self.contact(email)
        with self.lock:
            self.lists[list_id].members[known.id] = Membership(self._new_id(), unsubscribed)

    def forget(self, email: str) -> None:
        """Delete the contact and its memberships, as Mailjet's app can."""
        with self.lock:
            gone = self.contacts.pop(email.lower())
            for contact_list in self.lists.values():
                contact_list.members.pop(gone.id, None)

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # -- requests ---------------------------------------------------------------------

    def handle(self, method: str, raw: str, headers: dict[str, str], body: bytes) -> Answer:
        status, answer, extra = super().handle(method, raw, headers, body)
        if isinstance(answer, dict) and set(answer) == {"message"}:  # the script's, the 401
            message = AUTH_FAILURE if status == 401 else str(answer["message"])
            return status, _error(status, message)[1], extra
        return status, answer, extra

    def auth(
        self, provider: str, method: str, raw: str, headers: dict[str, str], body: bytes
    ) -> str | None:
        if provider != "v3":
            return "not the API"
        token = base64.b64encode(f"{MAILJET_KEY}:{MAILJET_SECRET}".encode()).decode()
        given = headers.get("authorization", "")
        return None if secrets.compare_digest(given, f"Basic {token}") else "bad Basic credentials"

    def route(self, provider: str, method: str, path: str, body: bytes) -> Answer:
        parts = urlsplit(path)
        p, query = parts.path.rstrip("/"), parse_qs(parts.query, keep_blank_values=True)
        if method == "GET":
            self.reads.append((p, query))
        if p == "/REST/contact":
            if method == "POST":
                return self._create(body)
            if method == "GET":
                return self._contacts(query)
        elif p.startswith("/REST/contact/") and p.count("/") == 3:
            found = self._find(unquote(p.rsplit("/", 1)[1]))
            if found is None:
                return _error(404, "Object not found")
            if method == "GET":
                return _data(200, [found.shown()])
            if method == "PUT":
                return self._update(found, body)
        elif p.startswith("/REST/contactslist/") and p.endswith("/managecontact"):
            if method == "POST":
                return self._manage(p.split("/")[3], body)
        elif p == "/REST/listrecipient" and method == "GET":
            return self._recipients(query)
        return _error(404, "Object not found")

    def _find(self, key: str) -> Contact | None:
        if key.isdigit():
            return next((c for c in self.contacts.values() if c.id == int(key)), None)
        return self.contacts.get(key.lower())

    @staticmethod
    def _object(body: bytes) -> dict[str, Any] | None:
        try:
            data = json.loads(body)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def _create(self, body: bytes) -> Answer:
        data = self._object(body)
        email = data.get("Email") if data else None
        if not isinstance(email, str) or "@" not in email:
            return _error(
                400, "Object properties invalid", {"Email": "MJ08 Property email is invalid"}
            )
        flag = data.get("IsExcludedFromCampaigns", False) if data else False
        if flag not in (True, False, "true", "false"):
            return _error(400, "Object properties invalid", {"IsExcludedFromCampaigns": "MJ07"})
        if email.lower() in self.contacts:
            return _error(
                400, f'MJ18 A Contact resource with value "{email}" for Email already exists.'
            )
        made = self.contacts[email.lower()] = Contact(self._new_id(), email, flag in (True, "true"))
        return _data(201, [made.shown()])

    def _update(self, found: Contact, body: bytes) -> Answer:
        data = self._object(body)
        flag = data.get("IsExcludedFromCampaigns") if data else None
        if flag not in (True, False, "true", "false"):
            return _error(400, "Object properties invalid", {"IsExcludedFromCampaigns": "MJ07"})
        found.excluded = flag in (True, "true")
        self._log("mailjet", "add" if found.excluded else "remove", "excluded", found.email)
        return _data(200, [found.shown()])

    def _manage(self, list_key: str, body: bytes) -> Answer:
        target = self.lists.get(int(list_key)) if list_key.isdigit() else None
        if target is None:
            return _error(404, "Object not found")
        data = self._object(body)
        email = data.get("Email") if data else None
        action = data.get("Action") if data else None
        if not isinstance(email, str) or action not in ACTIONS:
            return _error(400, "Object properties invalid", {"Action": f"Invalid action: {action}"})
        found = self.contacts.get(email.lower())
        if found is None:
            return _error(404, "Object not found")
        held = target.members.get(found.id)
        if action == "remove":
            target.members.pop(found.id, None)
        elif action == "addnoforce":
            if held is None:
                target.members[found.id] = Membership(self._new_id(), False)
        else:
            unsubscribed = action == "unsub"
            if held is None:
                target.members[found.id] = Membership(self._new_id(), unsubscribed)
            else:
                held.unsubscribed = unsubscribed
            self._log("mailjet", "add" if unsubscribed else "remove", f"list:{target.id}", email)
        shown = {
            "ContactID": found.id,
            "Email": email,
            "Action": action,
            "Name": "",
            "Properties": {},
        }
        return _data(201, [shown])

    def _window(
        self, rows: list[dict[str, Any]], query: dict[str, list[str]], allowed: set[str]
    ) -> Answer:
        unknown = set(query) - allowed - {"Limit", "Offset", "Sort", "countOnly"}
        if unknown:
            return _error(400, f"Invalid filter: {sorted(unknown)[0]}")
        limit_text = query.get("Limit", ["10"])[0]
        offset_text = query.get("Offset", ["0"])[0]
        if not limit_text.isdigit() or not offset_text.isdigit() or int(limit_text) > 1000:
            return _error(400, "Invalid Limit or Offset")
        limit = int(limit_text) or 1000
        offset = int(offset_text)
        return _data(200, rows[offset : offset + limit], total=len(rows))

    def _flag(self, query: dict[str, list[str]], name: str) -> bool | str | None:
        value = query.get(name, [None])[0]
        if value is None:
            return None
        if value.lower() in ("true", "1"):
            return True
        if value.lower() in ("false", "0"):
            return False
        return value  # not a boolean

    def _contacts(self, query: dict[str, list[str]]) -> Answer:
        flag = self._flag(query, "IsExcludedFromCampaigns")
        if isinstance(flag, str):
            return _error(400, "Invalid value for IsExcludedFromCampaigns")
        rows = [
            c.shown()
            for c in sorted(self.contacts.values(), key=lambda c: c.id)
            if flag is None or c.excluded == flag
        ]
        return self._window(rows, query, {"IsExcludedFromCampaigns", "ContactsList", "Campaign"})

    def _recipients(self, query: dict[str, list[str]]) -> Answer:
        unsub = self._flag(query, "Unsub")
        if isinstance(unsub, str):
            return _error(400, "Invalid value for Unsub")
        wanted = query.get("ContactsList", [None])[0]
        rows = [
            {
                "ContactID": contact_id,
                "ID": m.id,
                "IsActive": True,
                "IsUnsubscribed": m.unsubscribed,
                "ListID": contact_list.id,
                "ListName": contact_list.name,
                "SubscribedAt": STAMP,
                "UnsubscribedAt": STAMP if m.unsubscribed else "",
            }
            for contact_list in self.lists.values()
            if wanted is None or str(contact_list.id) == wanted
            for contact_id, m in sorted(contact_list.members.items(), key=lambda i: i[1].id)
            if unsub is None or m.unsubscribed == unsub
        ]
        return self._window(rows, query, {"ContactsList", "Unsub", "Contact", "ContactEmail"})


@pytest.fixture
def mailjet() -> Iterator[MailjetStandIn]:
    server = MailjetStandIn()
    yield server
    server.close()
