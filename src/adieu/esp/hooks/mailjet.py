"""Mailjet's Event API (HTTP Basic credentials in the URL).

Authentication: the event URL is registered as
``https://USER:PASSWORD@…/hooks/mailjet``; the Basic credentials must be
``ADIEU_MAILJET_WEBHOOK_USER`` and ``ADIEU_MAILJET_WEBHOOK_PASSWORD``
(compared in constant time).

Events (one object, or an array when events are grouped): ``bounce``
(``hard_bounce`` true or false, ``error_related_to``, ``error``, and the
remote's ``comment``), ``blocked`` (Mailjet declined to send: the sender's
side), ``spam`` (a complaint) and ``unsub``. A bounce Mailjet relates to
the recipient or the domain says what the address is; one related to spam,
content, the system or Mailjet itself is the sender's side. Mailjet gives no
event id: the event is known by ``MessageID``, event and ``time``.
"""

from __future__ import annotations

from typing import Any

from adieu.addresses import mask_all
from adieu.esp.hooks import (
    BLOCK,
    HARD,
    SOFT,
    Context,
    EspFinding,
    HookRequest,
    Item,
    Kind,
    Parsed,
    Provider,
    address_of,
    check_basic,
    collect,
    content_id,
    event_id,
    items_of,
    judge,
    text,
)
from adieu.settings import Settings

_ABOUT_THE_ADDRESS = {"recipient", "domain"}


class Mailjet(Provider):
    name = "mailjet"

    def configured(self, settings: Settings) -> bool:
        return bool(settings.mailjet_webhook_password)

    def verify(self, request: HookRequest, context: Context) -> None:
        password = context.settings.mailjet_webhook_password
        assert password is not None
        check_basic(request, context.settings.mailjet_webhook_user, password.reveal())

    def parse(self, request: HookRequest) -> Parsed:
        return collect(items_of(request.body), _event)


def _event(item: Any) -> Item:
    if not isinstance(item, dict):
        return None
    event = text(item.get("event")).lower()
    if event not in ("bounce", "blocked", "spam", "unsub"):
        return False if event else None
    address = address_of(item.get("email"))
    if address is None:
        return None
    message = text(item.get("MessageID"), 40) or text(item.get("Message_GUID"), 80)
    ident = event_id(message, event, text(item.get("time"), 20)) if message else content_id(item)
    details: dict[str, Any] = {"event": event}
    if event == "spam":
        source = text(item.get("source"), 40)
        if source:
            details["source"] = source
        return EspFinding(Kind.COMPLAINT, address, ident, details)
    if event == "unsub":
        return EspFinding(Kind.UNSUBSCRIBE, address, ident, details)
    related = text(item.get("error_related_to"), 40).lower()
    error = mask_all(text(item.get("error"), 100))
    if event == "blocked" or related not in _ABOUT_THE_ADDRESS:
        says = BLOCK
    else:
        says = HARD if item.get("hard_bounce") is True else SOFT
    said = " ".join(p for p in (text(item.get("comment")), error) if p)
    kind, why = judge(says, "", said)
    details.update(why, error_related_to=related, error=error)
    return EspFinding(kind, address, ident, details)


PROVIDER = Mailjet()
