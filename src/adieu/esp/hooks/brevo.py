"""Brevo's (formerly Sendinblue) transactional and marketing webhooks, with a bearer token.

Authentication: the webhook is created with ``auth: {"type": "bearer",
"token": …}`` and Brevo sends ``Authorization: Bearer <token>``; it must be
``ADIEU_BREVO_WEBHOOK_TOKEN`` (compared in constant time).

Events (one object, or an array when the webhook is batched):
``hard_bounce`` and ``soft_bounce`` (with their ``reason``), ``blocked``
(Brevo declined to send: the sender's side), ``spam`` (a complaint) and
``unsubscribed`` (``unsubscribe`` in marketing webhooks). Brevo gives no
event id: the event is known by its ``message-id`` (or campaign id), event
and time.
"""

from __future__ import annotations

from typing import Any

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
    check_bearer,
    collect,
    content_id,
    event_id,
    items_of,
    judge,
    text,
)
from adieu.settings import Settings

_BOUNCES = {"hard_bounce": HARD, "soft_bounce": SOFT, "blocked": BLOCK}


class Brevo(Provider):
    name = "brevo"

    def configured(self, settings: Settings) -> bool:
        return bool(settings.brevo_webhook_token)

    def verify(self, request: HookRequest, context: Context) -> None:
        token = context.settings.brevo_webhook_token
        assert token is not None
        check_bearer(request, token.reveal())

    def parse(self, request: HookRequest) -> Parsed:
        return collect(items_of(request.body), _event)


def _event(item: Any) -> Item:
    if not isinstance(item, dict):
        return None
    event = text(item.get("event")).lower()
    if event not in (*_BOUNCES, "spam", "unsubscribed", "unsubscribe"):
        return False if event else None
    address = address_of(item.get("email"))
    if address is None:
        return None
    source = text(item.get("message-id"), 150) or text(item.get("camp_id"), 40)
    when = text(item.get("ts_event"), 20) or text(item.get("ts_epoch"), 20)
    ident = event_id(source, event, when) if source else content_id(item)
    details: dict[str, Any] = {"event": event}
    if event == "spam":
        return EspFinding(Kind.COMPLAINT, address, ident, details)
    if event in ("unsubscribed", "unsubscribe"):
        return EspFinding(Kind.UNSUBSCRIBE, address, ident, details)
    kind, why = judge(_BOUNCES[event], "", text(item.get("reason")))
    details.update(why)
    return EspFinding(kind, address, ident, details)


PROVIDER = Brevo()
