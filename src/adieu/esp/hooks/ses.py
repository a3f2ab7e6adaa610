"""Amazon SES notifications through an Amazon SNS HTTPS subscription.

Authentication is SNS's message signature, checked as Amazon documents it:
the ``TopicArn`` must be one of ``ADIEU_SES_TOPIC_ARNS``; the
``SigningCertURL`` must be ``https://sns.<region>.amazonaws.com/…`` (no other
host, no other port), fetched over verified HTTPS and cached; the signature
(``SignatureVersion`` 1: SHA1withRSA, 2: SHA256withRSA) must hold over the
canonical string: ``Message``, ``MessageId``, ``Subject`` (when present),
``Timestamp``, ``TopicArn``, ``Type`` for a ``Notification``;
``Message``, ``MessageId``, ``SubscribeURL``, ``Timestamp``, ``Token``,
``TopicArn``, ``Type`` for a ``SubscriptionConfirmation`` or
``UnsubscribeConfirmation``; each as its name, a newline, its value, a newline.

A ``SubscriptionConfirmation`` for an allowed topic is confirmed (a GET of its
``SubscribeURL``, which must be an SNS host too). A ``Notification``'s
``Message`` is the SES notification (``notificationType``) or event
(``eventType``): bounces and complaints are read as SES notifications
delivered by mail are (``adieu.feedback.ses``), deliveries and the other
events are acknowledged and ignored. The event id is SES's ``feedbackId``
(the same bounce published to two topics counts once), else SNS's
``MessageId``.

``ADIEU_SNS_TEST_CA_FILE`` and ``ADIEU_SNS_TEST_CERT_HOST`` exist for tests
only: a CA to trust for the certificate's HTTPS and one more host it may come
from.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from adieu.esp.hooks import (
    Context,
    EspFinding,
    HookRequest,
    Kind,
    Malformed,
    Parsed,
    Provider,
    Refused,
    event_id,
    json_of,
)
from adieu.settings import Settings

#: The hosts SNS signs from (and confirms subscriptions at): sns.<region>.amazonaws.com.
SNS_HOST = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")

_SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_SIGNED["UnsubscribeConfirmation"] = _SIGNED["SubscriptionConfirmation"]
_OPTIONAL = {"Subject"}

#: Certificates fetched, by URL (SNS rotates them rarely; a handful at most).
_CERTS: dict[str, Any] = {}
_CERTS_LOCK = threading.Lock()
_CERTS_MAX = 32


def canonical_string(message: dict[str, Any]) -> bytes:
    """The string SNS signs for ``message`` (see the module)."""
    lines = []
    for name in _SIGNED[message["Type"]]:
        if name in _OPTIONAL and name not in message:
            continue
        lines.append(f"{name}\n{message[name]}\n")
    return "".join(lines).encode("utf-8")


def allowed_url(url: str, settings: Settings) -> bool:
    """Whether ``url`` is on an SNS host over HTTPS (or the test host, when set)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme != "https" or parts.username or parts.password:
        return False
    test = settings.sns_test_cert_host
    if test and parts.netloc == test:
        return True
    return port is None and bool(SNS_HOST.fullmatch(parts.hostname or ""))


class Ses(Provider):
    name = "ses"

    def configured(self, settings: Settings) -> bool:
        return bool(topics(settings))

    def verify(self, request: HookRequest, context: Context) -> None:
        try:
            message = json.loads(request.body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise Refused("not an SNS message") from None
        kind = message.get("Type") if isinstance(message, dict) else None
        if not isinstance(kind, str) or kind not in _SIGNED:
            raise Refused("not an SNS message")
        needed = [n for n in _SIGNED[message["Type"]] if n not in _OPTIONAL]
        wanted = (*needed, "Signature", "SignatureVersion", "SigningCertURL")
        if any(not isinstance(message.get(n), str) for n in wanted):
            raise Refused("an SNS message without its signed fields")
        if "Subject" in message and not isinstance(message["Subject"], str):
            raise Refused("an SNS message with a Subject that is not text")
        if message["TopicArn"] not in topics(context.settings):
            raise Refused("a topic not in ADIEU_SES_TOPIC_ARNS")
        version = message["SignatureVersion"]
        if version not in ("1", "2"):
            raise Refused("an unknown signature version")
        url = message["SigningCertURL"]
        if not allowed_url(url, context.settings):
            raise Refused("a signing certificate from a host that is not SNS")
        if message["Type"] == "SubscriptionConfirmation" and not allowed_url(
            message["SubscribeURL"], context.settings
        ):
            raise Refused("a SubscribeURL on a host that is not SNS")
        try:
            signature = base64.b64decode(message["Signature"], validate=True)
        except (binascii.Error, ValueError):
            raise Refused("a signature that is not base64") from None
        key = _public_key(url, context)
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, rsa

        if not isinstance(key, rsa.RSAPublicKey):
            raise Refused("a signing certificate without an RSA key")
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()
        try:
            key.verify(signature, canonical_string(message), padding.PKCS1v15(), digest)
        except InvalidSignature:
            raise Refused("a signature that does not verify") from None

    def parse(self, request: HookRequest) -> Parsed:
        message = json_of(request.body)
        if not isinstance(message, dict):
            raise Malformed("not an SNS message")
        kind = message.get("Type")
        if kind == "SubscriptionConfirmation":
            url = message.get("SubscribeURL")
            if not isinstance(url, str) or not url.startswith("https://"):
                raise Malformed("a SubscribeURL that is not an HTTPS address")
            return Parsed(confirm=url)
        if kind != "Notification":
            return Parsed(ignored=1)
        try:
            found = json.loads(str(message.get("Message", "")))
        except (ValueError, RecursionError):
            return Parsed(malformed=1)
        if not isinstance(found, dict):
            return Parsed(malformed=1)
        return read_notification(found, str(message.get("MessageId", "")))


def read_notification(found: dict[str, Any], message_id: str) -> Parsed:
    """The findings of one SES notification or event (a parsed ``Message``)."""
    from adieu.feedback import ses

    kind = str(found.get("notificationType") or found.get("eventType") or "")
    if kind not in ("Bounce", "Complaint"):
        return Parsed(ignored=1)  # Delivery, Send, Open, DeliveryDelay, …: nothing to record
    part = found.get(kind.lower())
    if not isinstance(part, dict):
        return Parsed(malformed=1)
    try:
        reading = ses.from_notification(found)
    except Exception:  # a shape the reader did not expect: this item only
        return Parsed(malformed=1)
    feedback = part.get("feedbackId")
    ident = event_id(feedback if isinstance(feedback, str) and feedback else message_id)
    findings = []
    for reported in reading.reported:
        details = {k: v for k, v in reported.details.items() if k != "recipient_from"}
        findings.append(EspFinding(Kind(reported.kind), reported.address, ident, details))
    if not findings:
        return Parsed(malformed=1)
    return Parsed(findings)


def topics(settings: Settings) -> set[str]:
    return {t.strip() for t in settings.ses_topic_arns.split(",") if t.strip()}


def _public_key(url: str, context: Context) -> Any:
    """The public key of the certificate at ``url`` (fetched once, then cached)."""
    from cryptography import x509

    with _CERTS_LOCK:
        cert = _CERTS.get(url)
    if cert is None:
        try:
            pem = context.fetch(url)
            cert = x509.load_pem_x509_certificate(pem)
        except Exception:
            raise Refused("the signing certificate could not be fetched") from None
        with _CERTS_LOCK:
            if len(_CERTS) >= _CERTS_MAX:
                _CERTS.clear()
            _CERTS[url] = cert
    now = datetime.now(UTC)
    if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
        raise Refused("a signing certificate that is not valid now")
    return cert.public_key()


PROVIDER = Ses()
