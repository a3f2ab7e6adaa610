"""Postmark's webhooks (it signs nothing: HTTP Basic credentials in the URL).

Authentication: the Basic credentials set in the webhook's URL
(``https://USER:PASSWORD@…/hooks/postmark``) must be
``ADIEU_POSTMARK_WEBHOOK_USER`` and ``ADIEU_POSTMARK_WEBHOOK_PASSWORD``,
compared in constant time.

Records (``RecordType``): ``Bounce`` by its ``TypeCode`` (a hard bounce or a
bad address is dead unless the ``Details`` say a blocklist or policy refused
it; transient, soft and DNS failures are soft; blocked, spam notifications,
DMARC, virus and API errors are the sender's side; an unsubscribe through
Postmark is one), ``SpamComplaint``, and ``SubscriptionChange``
(``SuppressSending``, ``SuppressionReason``, ``Origin``: the recipient's own
unsubscribe and resubscribe count; a suppression by a hard bounce or a
complaint is the news of the Bounce or SpamComplaint record, told once; the
sender's or Postmark's own changes are not the person's and change nothing).
A bounce's id is its ``ID``.
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
    Malformed,
    Parsed,
    Provider,
    address_of,
    check_basic,
    collect,
    content_id,
    event_id,
    json_of,
    judge,
    text,
)
from adieu.settings import Settings

#: Bounce type codes and what each says (codes not here are not bounces to act on).
TYPE_CODES: dict[int, str] = {
    1: HARD,  # HardBounce
    100000: HARD,  # BadEmailAddress
    2: SOFT,  # Transient
    4096: SOFT,  # SoftBounce
    256: SOFT,  # DnsError
    16384: SOFT,  # ChallengeVerification
    512: BLOCK,  # SpamNotification
    8192: BLOCK,  # VirusNotification
    100002: BLOCK,  # ManuallyDeactivated
    100003: BLOCK,  # Unconfirmed
    100006: BLOCK,  # Blocked
    100007: BLOCK,  # SMTPApiError
    100009: BLOCK,  # DMARCPolicy
}
SPAM_COMPLAINT, UNSUBSCRIBE = 100001, 16


class Postmark(Provider):
    name = "postmark"

    def configured(self, settings: Settings) -> bool:
        return bool(settings.postmark_webhook_password)

    def verify(self, request: HookRequest, context: Context) -> None:
        password = context.settings.postmark_webhook_password
        assert password is not None
        check_basic(request, context.settings.postmark_webhook_user, password.reveal())

    def parse(self, request: HookRequest) -> Parsed:
        item = json_of(request.body)
        if not isinstance(item, dict):
            raise Malformed("not a Postmark record")
        return collect([item], _record)


def _code(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit() and len(value) < 10:
        return int(value)
    return None


def _record(item: dict[str, Any]) -> Item:
    record = text(item.get("RecordType"))
    if record not in ("Bounce", "SpamComplaint", "SubscriptionChange"):
        return False if record else None
    if record == "SubscriptionChange":
        return _change(item)
    address = address_of(item.get("Email"))
    if address is None:
        return None
    ident = event_id(record, item["ID"]) if text(item.get("ID")) else content_id(item)
    code = _code(item.get("TypeCode"))
    details: dict[str, Any] = {"record": record, "type": text(item.get("Type"), 40)}
    if record == "SpamComplaint" or code == SPAM_COMPLAINT:
        return EspFinding(Kind.COMPLAINT, address, ident, details)
    if code == UNSUBSCRIBE:
        return EspFinding(Kind.UNSUBSCRIBE, address, ident, details)
    if code is None:
        return None
    says = TYPE_CODES.get(code)
    if says is None:
        return False  # an auto-reply, an address change, a test: nothing about consent
    diagnostic = text(item.get("Details")) or text(item.get("Description"))
    kind, why = judge(says, "", diagnostic)
    details.update(why, type_code=code)
    return EspFinding(kind, address, ident, details)


def _change(item: dict[str, Any]) -> Item:
    address = address_of(item.get("Recipient"))
    suppress = item.get("SuppressSending")
    if address is None or not isinstance(suppress, bool):
        return None
    reason = text(item.get("SuppressionReason"), 40)
    origin = text(item.get("Origin"), 40)
    ident = event_id(
        "SubscriptionChange",
        text(item.get("MessageID"), 80),
        text(item.get("ChangedAt"), 40),
        "suppress" if suppress else "reactivate",
    )
    if not text(item.get("MessageID")) and not text(item.get("ChangedAt")):
        ident = content_id(item)
    details: dict[str, Any] = {"record": "SubscriptionChange", "origin": origin}
    if reason:
        details["suppression_reason"] = reason
    if suppress and reason in ("HardBounce", "SpamComplaint"):
        return False  # the Bounce or SpamComplaint record of the same event says it
    if origin != "Recipient":
        return False  # the sender's or Postmark's own change: not the person's
    kind = Kind.UNSUBSCRIBE if suppress else Kind.RESUBSCRIBE
    return EspFinding(kind, address, ident, details)


PROVIDER = Postmark()
