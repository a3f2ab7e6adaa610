"""Resend's webhooks, signed with Svix.

Authentication, as Svix documents it: the signed content is
``svix-id`` + ``.`` + ``svix-timestamp`` + ``.`` + the raw body, its
HMAC-SHA256 under the secret (``ADIEU_RESEND_SECRET``: ``whsec_`` and the
base64 key), base64; ``svix-signature`` holds one or more space-separated
``v1,<signature>`` of which one must match. The timestamp must be within ten
minutes. The ``svix-id`` is the event id (the same on every retry).

Events: ``email.bounced`` (``data.bounce``: ``type`` Permanent, Transient
or Undetermined, ``subType``, ``message``) and ``email.complained``, for each
address in ``data.to``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any

from adieu.esp.hooks import (
    BLOCK,
    HARD,
    SOFT,
    UNSAID,
    Context,
    EspFinding,
    HookRequest,
    Kind,
    Malformed,
    Parsed,
    Provider,
    Refused,
    address_of,
    event_id,
    header,
    json_of,
    judge,
    same,
    text,
)
from adieu.settings import Settings

#: SES's subtypes (Resend sends through it) that are never about the address.
_SENDER_SIDE = {
    "messagetoolarge",
    "contentrejected",
    "attachmentrejected",
    "onaccountsuppressionlist",
}


def secret_key(secret: str) -> bytes | None:
    value = secret.strip()
    if value.startswith("whsec_"):
        value = value[len("whsec_") :]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


class Resend(Provider):
    name = "resend"

    def configured(self, settings: Settings) -> bool:
        return bool(settings.resend_secret)

    def verify(self, request: HookRequest, context: Context) -> None:
        secret = context.settings.resend_secret
        assert secret is not None
        key = secret_key(secret.reveal())
        if not key:
            raise Refused("ADIEU_RESEND_SECRET is not a whsec_ secret")
        ident = header(request, "svix-id").strip()
        timestamp = header(request, "svix-timestamp").strip()
        if not ident or not context.fresh(timestamp):
            raise Refused("no id, or a timestamp out of the window")
        signed = ident.encode() + b"." + timestamp.encode() + b"." + request.body
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        for given in header(request, "svix-signature").split():
            version, _, signature = given.partition(",")
            if version == "v1" and same(signature, expected):
                return
        raise Refused("no signature that verifies")

    def parse(self, request: HookRequest) -> Parsed:
        data = json_of(request.body)
        if not isinstance(data, dict):
            raise Malformed("not a Resend event")
        kind = text(data.get("type"))
        if kind not in ("email.bounced", "email.complained"):
            return Parsed(ignored=1) if kind else Parsed(malformed=1)
        payload = data.get("data")
        if not isinstance(payload, dict):
            return Parsed(malformed=1)
        recipients = payload.get("to")
        if isinstance(recipients, str):
            recipients = [recipients]
        if not isinstance(recipients, list):
            return Parsed(malformed=1)
        ident = event_id(header(request, "svix-id").strip())
        parsed = Parsed()
        found = _finding(kind, payload)
        if found is None:
            return Parsed(malformed=1)
        finding_kind, details = found
        for recipient in recipients[:1000]:
            address = address_of(recipient)
            if address is None:
                parsed.malformed += 1
                continue
            parsed.findings.append(EspFinding(finding_kind, address, ident, dict(details)))
        return parsed


def _finding(kind: str, payload: dict[str, Any]) -> tuple[Kind, dict[str, Any]] | None:
    details: dict[str, Any] = {"event": kind}
    if kind == "email.complained":
        return Kind.COMPLAINT, details
    bounce = payload.get("bounce")
    if not isinstance(bounce, dict):
        return None
    bounce_type = text(bounce.get("type"), 40)
    subtype = text(bounce.get("subType"), 60)
    says = {"permanent": HARD, "transient": SOFT}.get(bounce_type.lower(), UNSAID)
    if subtype.lower() in _SENDER_SIDE:
        says = BLOCK
    found, why = judge(says, "", text(bounce.get("message")))
    details.update(why, bounce_type=bounce_type, bounce_subtype=subtype)
    return found, details


PROVIDER = Resend()
