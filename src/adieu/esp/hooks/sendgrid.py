"""SendGrid's Event Webhook (signed).

Authentication: SendGrid signs each POST with ECDSA (P-256, SHA-256) over the
``X-Twilio-Email-Event-Webhook-Timestamp`` header's value followed by the raw
body; the base64 DER signature is in ``X-Twilio-Email-Event-Webhook-Signature``
and the verification key (base64 DER, as the console shows it) is
``ADIEU_SENDGRID_PUBLIC_KEY``. The timestamp must be within ten minutes.

The body is a JSON array of events, each with its ``sg_event_id``:
``bounce`` (``type`` bounce or blocked, ``status``, ``reason``,
``bounce_classification``), ``dropped``, ``spamreport``, ``unsubscribe``,
``group_unsubscribe`` and ``group_resubscribe``. A group (un)subscribe
names the Adieu topic ``ADIEU_SENDGRID_GROUPS`` gives its ``asm_group_id``
(or the message's custom argument ``adieu_topic``); an unsubscribe from a
group Adieu cannot name stops all marketing, a resubscribe to one lifts
nothing.
"""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache
from typing import Any

from adieu.esp.hooks import (
    BLOCK,
    HARD,
    SOFT,
    UNSAID,
    Context,
    EspFinding,
    HookRequest,
    Item,
    Kind,
    Parsed,
    Provider,
    Refused,
    collect,
    header,
    items_of,
    judge,
    opening,
    text,
)
from adieu.esp.push.providers.base import topic_map
from adieu.settings import Settings

SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"

#: SendGrid's bounce classifications, and what each says about the address.
CLASSIFICATIONS = {
    "invalid address": HARD,
    "mailbox unavailable": SOFT,
    "technical": SOFT,
    "content": BLOCK,
    "reputation": BLOCK,
    "frequency or volume": BLOCK,
    "unclassified": UNSAID,
}


@lru_cache(maxsize=4)
def public_key(encoded: str) -> Any:
    """The EC public key in ``encoded`` (base64 DER; a PEM's header lines are
    skipped), or ``None``."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    lines = [line for line in encoded.splitlines() if not line.startswith("-----")]
    try:
        key = load_der_public_key(base64.b64decode("".join("".join(lines).split()), validate=True))
    except (binascii.Error, ValueError):
        return None
    return key if isinstance(key, ec.EllipticCurvePublicKey) else None


class SendGrid(Provider):
    name = "sendgrid"

    def configured(self, settings: Settings) -> bool:
        return bool(settings.sendgrid_public_key)

    def verify(self, request: HookRequest, context: Context) -> None:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        key = public_key(context.settings.sendgrid_public_key or "")
        if key is None:
            raise Refused("ADIEU_SENDGRID_PUBLIC_KEY is not an EC public key")
        timestamp = header(request, TIMESTAMP).strip()
        if not context.fresh(timestamp):
            raise Refused("no timestamp, or one out of the window")
        try:
            signature = base64.b64decode(header(request, SIGNATURE).strip(), validate=True)
        except (binascii.Error, ValueError):
            raise Refused("a signature that is not base64") from None
        if not signature:
            raise Refused("no signature")
        try:
            key.verify(signature, timestamp.encode() + request.body, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise Refused("a signature that does not verify") from None

    def parse(self, request: HookRequest) -> Parsed:
        return collect(items_of(request.body), _event)

    def topic_of(self, finding: EspFinding, settings: Settings) -> str | None:
        """The topic the message named (``adieu_topic``), else the one
        ``ADIEU_SENDGRID_GROUPS`` gives the unsubscribe group."""
        if finding.topic:
            return finding.topic
        group = finding.details.get("asm_group_id")
        return groups(settings).get(str(group)) if group else None


#: The events that say something about consent or a mailbox.
EVENTS = frozenset(
    {
        "bounce",
        "blocked",
        "dropped",
        "spamreport",
        "unsubscribe",
        "group_unsubscribe",
        "group_resubscribe",
    }
)


def _event(item: Any) -> Item:
    """One event's finding; ``False``: nothing to record; ``None``: malformed."""
    if not isinstance(item, dict):
        return None
    opened = opening(item, "event", EVENTS, "email", "sg_event_id")
    if not opened:
        return opened
    event, address, ident = opened
    details: dict[str, Any] = {"event": event}
    if event in ("bounce", "blocked"):
        kind_of = "blocked" if event == "blocked" else text(item.get("type")).lower() or "bounce"
        classification = text(item.get("bounce_classification"), 60)
        says = CLASSIFICATIONS.get(classification.lower(), UNSAID)
        if says == UNSAID:
            says = HARD if kind_of == "bounce" else BLOCK
        elif kind_of == "blocked" and says == HARD:
            says = SOFT  # a block is SendGrid's temporary refusal, whatever its class
        kind, why = judge(says, text(item.get("status"), 40), text(item.get("reason")))
        details.update(why, type=kind_of)
        if classification:
            details["bounce_classification"] = classification
        return EspFinding(kind, address, ident, details)
    if event == "dropped":
        kind, why = judge(BLOCK, "", text(item.get("reason")))
        details.update(why)
        return EspFinding(kind, address, ident, details)
    if event == "spamreport":
        return EspFinding(Kind.COMPLAINT, address, ident, details)
    topic = text(item.get("adieu_topic"), 64) or None
    if event == "unsubscribe":
        return EspFinding(Kind.UNSUBSCRIBE, address, ident, details)
    group = text(item.get("asm_group_id"), 20)
    if group:
        details["asm_group_id"] = group
    kind = Kind.UNSUBSCRIBE if event == "group_unsubscribe" else Kind.RESUBSCRIBE
    return EspFinding(kind, address, ident, details, topic, listed=True)


def groups(settings: Settings) -> dict[str, str]:
    """``ADIEU_SENDGRID_GROUPS`` (topic=group id, …) read the other way: topic by group id."""
    # The first topic named for a group wins.
    return {group: topic for topic, group in reversed(topic_map(settings.sendgrid_groups).items())}


PROVIDER = SendGrid()
