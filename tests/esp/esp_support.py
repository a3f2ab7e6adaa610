"""Keys the tests hold, and requests signed with them the way each provider
documents (SendGrid's ECDSA, Mailgun's HMAC, Svix's HMAC, Basic and bearer)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from adieu.service import Adieu
from support import Client

SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
SENDGRID_PUBLIC = base64.b64encode(
    SENDGRID_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()
MAILGUN_KEY = "key-" + secrets.token_hex(16)
RESEND_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
POSTMARK = ("postmark", "pm-" + secrets.token_hex(8))
SPARKPOST = ("sparkpost", "sp-" + secrets.token_hex(8))
SPARKPOST_TOKEN = "spt-" + secrets.token_hex(8)
BREVO_TOKEN = "bv-" + secrets.token_hex(8)
MAILJET = ("mailjet", "mj-" + secrets.token_hex(8))

#: Every provider's secret, as settings.
SECRETS: dict[str, Any] = {
    "sendgrid_public_key": SENDGRID_PUBLIC,
    "mailgun_signing_key": MAILGUN_KEY,
    "postmark_webhook_user": POSTMARK[0],
    "postmark_webhook_password": POSTMARK[1],
    "resend_secret": RESEND_SECRET,
    "sparkpost_webhook_user": SPARKPOST[0],
    "sparkpost_webhook_password": SPARKPOST[1],
    "sparkpost_webhook_token": SPARKPOST_TOKEN,
    "brevo_webhook_token": BREVO_TOKEN,
    "mailjet_webhook_user": MAILJET[0],
    "mailjet_webhook_password": MAILJET[1],
}


def body_of(payload: Any) -> bytes:
    return payload if isinstance(payload, bytes) else json.dumps(payload).encode()


def sendgrid_headers(body: bytes, *, at: float | None = None, key: Any = None) -> dict[str, str]:
    timestamp = str(int(time.time() if at is None else at))
    signature = (key or SENDGRID_KEY).sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        "Content-Type": "application/json",
    }


def mailgun_body(
    event: dict[str, Any], *, at: float | None = None, token: str | None = None, key: str = ""
) -> bytes:
    timestamp = str(int(time.time() if at is None else at))
    token = token or secrets.token_hex(25)
    signature = hmac.new(
        (key or MAILGUN_KEY).encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    return body_of(
        {
            "signature": {"timestamp": timestamp, "token": token, "signature": signature},
            "event-data": event,
        }
    )


def svix_headers(
    body: bytes, *, ident: str | None = None, at: float | None = None, secret: str = ""
) -> dict[str, str]:
    ident = ident or "msg_" + secrets.token_hex(12)
    timestamp = str(int(time.time() if at is None else at))
    key = base64.b64decode((secret or RESEND_SECRET).removeprefix("whsec_"))
    signed = f"{ident}.{timestamp}.".encode() + body
    signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {
        "svix-id": ident,
        "svix-timestamp": timestamp,
        "svix-signature": f"v1,{signature}",
        "Content-Type": "application/json",
    }


def basic(user: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}", "Content-Type": "application/json"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


class Hooks:
    """Posts to /hooks/{provider} of an app on ``adieu``."""

    def __init__(self, adieu: Adieu) -> None:
        self.client = Client(adieu)

    def post(self, provider: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return self.client.request("POST", f"/hooks/{provider}", content=body, headers=headers)

    def close(self) -> None:
        self.client.close()


def events_of(adieu: Adieu, address: str) -> list[tuple[str, str]]:
    """(type, channel) of each event recorded for ``address``."""
    return [(e.type.value, e.channel.value) for e in adieu.ledger.history(address)]


def reasons_of(adieu: Adieu, address: str) -> set[tuple[str, str]]:
    """(scope, reason) of each suppression that holds for ``address``."""
    state = adieu.ledger.status(address).state
    return {(s.scope, s.reason.value) for s in state.suppressions}
