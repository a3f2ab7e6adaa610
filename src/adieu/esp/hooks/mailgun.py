"""Mailgun's webhooks (JSON, signed).

Authentication, as Mailgun documents it: the body's ``signature`` object
holds ``timestamp``, ``token`` and ``signature``, the hex HMAC-SHA256 of
timestamp + token under the HTTP webhook signing key
(``ADIEU_MAILGUN_SIGNING_KEY``). The timestamp must be within ten minutes, and
a token is taken once: one seen before is a replay (401).

``event-data`` is one event with its ``id``: ``failed`` (``severity``
permanent or temporary; ``delivery-status`` with its ``code``, ``message``
and ``description``; a ``reason`` of ``suppress-…`` or ``espblock`` is
Mailgun declining to send, the sender's side; ``old``, giving up after
temporary failures, is soft), ``complained`` and
``unsubscribed``.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from typing import Any

from adieu.esp.hooks import (
    BLOCK,
    HARD,
    SOFT,
    UNSAID,
    WINDOW_S,
    Context,
    EspFinding,
    HookRequest,
    Item,
    Kind,
    Malformed,
    Parsed,
    Provider,
    Refused,
    collect,
    json_of,
    judge,
    opening,
    same,
    text,
)
from adieu.settings import Settings


def _signature(body: bytes) -> tuple[str, str, str] | None:
    try:
        data = json_of(body)
    except Malformed:
        return None
    found = data.get("signature") if isinstance(data, dict) else None
    if not isinstance(found, dict):
        return None
    parts = tuple(found.get(n) for n in ("timestamp", "token", "signature"))
    if not all(isinstance(p, (str, int)) and not isinstance(p, bool) for p in parts):
        return None
    timestamp, token, signature = (str(p) for p in parts)
    return timestamp, token, signature


class Mailgun(Provider):
    name = "mailgun"

    def configured(self, settings: Settings) -> bool:
        return bool(settings.mailgun_signing_key)

    def verify(self, request: HookRequest, context: Context) -> None:
        key = context.settings.mailgun_signing_key
        assert key is not None
        found = _signature(request.body)
        if found is None:
            raise Refused("no signature")
        timestamp, token, signature = found
        if not context.fresh(timestamp):
            raise Refused("a timestamp out of the window")
        expected = hmac.new(
            key.reveal().encode(), (timestamp + token).encode(), hashlib.sha256
        ).hexdigest()
        if not same(signature.lower(), expected):
            raise Refused("a signature that does not verify")
        if context.seen(self.name, token):
            raise Refused("a token used before")

    def settle(self, request: HookRequest, context: Context) -> None:
        found = _signature(request.body)
        if found is not None:
            context.use(self.name, found[1], timedelta(seconds=2 * WINDOW_S))

    def parse(self, request: HookRequest) -> Parsed:
        data = json_of(request.body)
        if not isinstance(data, dict):
            raise Malformed("not a Mailgun webhook")
        item = data.get("event-data")
        return collect([item], _event)


#: The events that say something about consent or a mailbox.
EVENTS = frozenset({"failed", "complained", "unsubscribed"})


def _event(item: Any) -> Item:
    if not isinstance(item, dict):
        return None
    opened = opening(item, "event", EVENTS, "recipient", "id")
    if not opened:
        return opened
    event, address, ident = opened
    details: dict[str, Any] = {"event": event}
    if event == "complained":
        return EspFinding(Kind.COMPLAINT, address, ident, details)
    if event == "unsubscribed":
        return EspFinding(Kind.UNSUBSCRIBE, address, ident, details)
    severity = text(item.get("severity")).lower()
    reason = text(item.get("reason"), 60).lower()
    status = item.get("delivery-status")
    status = status if isinstance(status, dict) else {}
    code = text(status.get("code"), 10)
    said = " ".join(
        p for p in (code, text(status.get("message")), text(status.get("description"))) if p
    )
    says = {"permanent": HARD, "temporary": SOFT}.get(severity, UNSAID)
    if reason.startswith("suppress-") or reason == "espblock":
        says = BLOCK  # Mailgun did not send: its own list, or its block
    elif reason == "old":
        says = SOFT  # given up after temporary failures: never a dead address
    kind, why = judge(says, text(status.get("enhanced-code"), 20), said)
    details.update(why, severity=severity)
    if reason:
        details["reason"] = reason
    return EspFinding(kind, address, ident, details)


PROVIDER = Mailgun()
