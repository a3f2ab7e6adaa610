"""A local HTTP server standing in for SparkPost's Suppression List API
(``/api/v1/suppression-list``), as SparkPost documents it: the API key as the
whole ``Authorization`` header; the bulk ``PUT`` of ``{"recipients": […]}``,
each entry of one type (``transactional`` or ``non_transactional``); the
``DELETE`` of a recipient's entries of the type its body names (all types
without one; 404 when there are none, 403 for an entry the compliance system
added); the search ``GET`` paged by ``cursor`` (``initial`` first) and
``per_page`` (1 to 10,000), with ``links`` to the first and the next page;
errors as ``{"errors": [{"message": …}]}``. Trouble comes from the script of
``StandInServer``."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import pytest
from push_support import StandInServer

SPARKPOST_KEY = secrets.token_hex(20)
PREFIX = "/v1/suppression-list"
TYPES = ("transactional", "non_transactional")
STAMP = "2026-12-01T12:00:00+00:00"


@dataclass
class Suppression:
    source: str
    description: str


def _errors(message: str) -> dict[str, Any]:
    return {"errors": [{"message": message}]}


class SparkPostStandIn(StandInServer):
    """SparkPost at the server's root (its API paths start ``/api/v1``)."""

    def __init__(self, page_size: int = 3) -> None:
        #: (recipient, type) → the entry.
        self.entries: dict[tuple[str, str], Suppression] = {}
        #: Every GET of the list: its query.
        self.searches: list[dict[str, list[str]]] = []
        #: Every request: (method, path with its query).
        self.seen: list[tuple[str, str]] = []
        super().__init__(page_size)

    def settings(self) -> dict[str, Any]:
        return {"sparkpost_api_key": SPARKPOST_KEY, "sparkpost_api_url": self.base}

    def types_of(self, recipient: str) -> set[str]:
        """The types ``recipient`` is suppressed for."""
        return {kind for (who, kind) in self.entries if who == recipient}

    def handle(
        self, method: str, raw: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        with self.lock:
            self.seen.append((method, raw))
        status, answer, extra = super().handle(method, raw, headers, body)
        if isinstance(answer, dict) and set(answer) == {"message"}:  # the script's, the 401
            answer = _errors(str(answer["message"]))
        return status, answer, extra

    def auth(
        self, provider: str, method: str, raw: str, headers: dict[str, str], body: bytes
    ) -> str | None:
        if provider != "api":
            return "not the API"
        given = headers.get("authorization", "")
        return None if secrets.compare_digest(given, SPARKPOST_KEY) else "bad API key"

    def route(
        self, provider: str, method: str, path: str, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(path)
        p = parts.path.rstrip("/")
        if p == PREFIX and method == "PUT":
            return self._put(body)
        if p == PREFIX and method == "GET":
            return self._search(parse_qs(parts.query))
        if p.startswith(PREFIX + "/") and method == "DELETE":
            return self._delete(unquote(p[len(PREFIX) + 1 :]), body)
        return 404, _errors("Resource could not be found"), {}

    def _put(self, body: bytes) -> tuple[int, Any, dict[str, str]]:
        try:
            recipients = json.loads(body)["recipients"]
        except (ValueError, KeyError, TypeError):
            return 400, _errors("Invalid data format/type"), {}
        if not isinstance(recipients, list) or not 0 < len(recipients) <= 10_000:
            return 400, _errors("recipients must be an array of 1 to 10,000 entries"), {}
        bad = [
            r
            for r in recipients
            if not isinstance(r, dict)
            or not isinstance(r.get("recipient"), str)
            or "@" not in r["recipient"]
            or r.get("type") not in TYPES
        ]
        if bad:
            return (
                400,
                _errors(f"PUT body contains {len(bad)} invalid or malformed recipient(s)"),
                {},
            )
        for r in recipients:
            key = (r["recipient"], r["type"])
            held = self.entries.get(key)
            if held is not None and held.source == "Compliance":
                continue  # cannot be updated
            self.entries[key] = Suppression("Manually Added", str(r.get("description", "")))
            self._log("sparkpost", "add", r["type"], r["recipient"])
        return 200, {"results": {"message": "Suppression List successfully updated"}}, {}

    def _delete(self, recipient: str, body: bytes) -> tuple[int, Any, dict[str, str]]:
        wanted: tuple[str, ...] = TYPES
        if body:
            try:
                kind = json.loads(body).get("type")
            except (ValueError, AttributeError):
                return 400, _errors("Invalid data format/type"), {}
            if kind is not None:
                if kind not in TYPES:
                    return (
                        400,
                        _errors("Type must be one of: 'transactional', 'non_transactional'"),
                        {},
                    )
                wanted = (kind,)
        found = [(recipient, k) for k in wanted if (recipient, k) in self.entries]
        if not found:
            return 404, _errors("Recipient could not be found"), {}
        if any(self.entries[key].source == "Compliance" for key in found):
            return 403, _errors("Recipient could not be removed - Compliance"), {}
        for key in found:
            del self.entries[key]
            self._log("sparkpost", "remove", key[1], recipient)
        return 204, b"", {}

    def _search(self, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        self.searches.append(query)
        per_page_text = query.get("per_page", ["1000"])[0]
        if not per_page_text.isdigit() or not 1 <= int(per_page_text) <= 10_000:
            return 400, _errors("per_page must be between 1 and 10,000"), {}
        per_page = int(per_page_text)
        cursor = query.get("cursor", [None])[0]
        if cursor is None:
            number = query.get("page", ["1"])[0]
            if not number.isdigit() or int(number) < 1:
                return 400, _errors("page must be a positive number"), {}
            offset = (int(number) - 1) * per_page
        elif cursor == "initial":
            offset = 0
        else:
            try:
                offset = int(base64.urlsafe_b64decode(cursor.encode()).decode())
            except ValueError:
                return 400, _errors("Invalid cursor"), {}
        rows = sorted(self.entries.items())
        page = rows[offset : offset + per_page]
        links: list[dict[str, str]] = []
        if cursor is not None:
            links.append({"href": self._href("initial", per_page_text), "rel": "first"})
            if page:  # the last page may point on, at a page without results
                after = base64.urlsafe_b64encode(str(offset + len(page)).encode()).decode()
                links.append({"href": self._href(after, per_page_text), "rel": "next"})
        results = [
            {
                "recipient": who,
                "type": kind,
                "source": entry.source,
                "description": entry.description,
                "created": STAMP,
                "updated": STAMP,
                kind: True,
            }
            for (who, kind), entry in page
        ]
        return 200, {"results": results, "links": links, "total_count": len(rows)}, {}

    @staticmethod
    def _href(cursor: str, per_page: str) -> str:
        return "/api/v1/suppression-list?" + urlencode({"cursor": cursor, "per_page": per_page})


@pytest.fixture
def sparkpost() -> Iterator[SparkPostStandIn]:
    server = SparkPostStandIn()
    yield server
    server.close()
