"""Amazon SES through SNS: messages signed as SNS signs them (versions 1 and
2, over the documented canonical strings) with a certificate from a test CA,
served over HTTPS by a stand-in the test trusts through the test-only
settings; the production default accepts only SNS's own hosts."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from esp_support import Hooks, events_of, reasons_of

from adieu.esp.hooks.ses import allowed_url, canonical_string
from adieu.service import Adieu
from adieu.settings import Settings
from conftest import MakeSettings
from support import self_signed

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-feedback"
OTHER_TOPIC = "arn:aws:sns:eu-west-1:123456789012:someone-else"
DEAD = "smtp; 550 5.1.1 user unknown"
BLOCKLISTED = "smtp; 550 5.7.1 Service unavailable; client host blocked using Spamhaus"


def _signing_cert() -> tuple[rsa.RSAPrivateKey, bytes]:
    """A signing key and its certificate, issued by a test CA."""
    now = dt.datetime.now(dt.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


KEY, CERT_PEM = _signing_cert()


class StandIn:
    """SNS's certificate host and SubscribeURL endpoint, over HTTPS."""

    def __init__(self, directory: Path) -> None:
        context, self.ca_file = self_signed(directory, "localhost")
        self.requests: list[str] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stand_in.requests.append(self.path)
                body = CERT_PEM if self.path.endswith(".pem") else b"<ConfirmSubscriptionResponse/>"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIn]:
    server = StandIn(tmp_path_factory.mktemp("sns"))
    yield server
    server.close()


@pytest.fixture
def esp(make_settings: MakeSettings, stand_in: StandIn) -> Iterator[Adieu]:
    adieu = Adieu(
        make_settings(
            ses_topic_arns=f"{TOPIC},arn:aws:sns:us-east-1:123456789012:more",
            sns_test_ca_file=str(stand_in.ca_file),
            sns_test_cert_host=stand_in.host,
        )
    )
    yield adieu
    adieu.close()


@pytest.fixture
def hooks(esp: Adieu) -> Iterator[Hooks]:
    client = Hooks(esp)
    yield client
    client.close()


def signed(
    stand_in: StandIn, kind: str = "Notification", *, version: str = "1", **fields: Any
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "Type": kind,
        "MessageId": str(uuid.uuid4()),
        "TopicArn": TOPIC,
        "Message": "{}",
        "Timestamp": "2026-12-04T10:00:00.000Z",
        "SignatureVersion": version,
        "SigningCertURL": f"https://{stand_in.host}/SimpleNotificationService-{version}.pem",
        **fields,
    }
    if kind != "Notification":
        message.setdefault("Token", "2336412f37")
        message.setdefault("SubscribeURL", f"https://{stand_in.host}/?Action=ConfirmSubscription")
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = KEY.sign(canonical_string(message), padding.PKCS1v15(), digest)
    message["Signature"] = base64.b64encode(signature).decode()
    return message


def notification(stand_in: StandIn, found: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return signed(stand_in, Message=json.dumps(found), **fields)


def bounce(address: str, bounce_type: str, subtype: str, diagnostic: str, **more: Any) -> Any:
    return {
        "notificationType": "Bounce",
        "bounce": {
            "feedbackId": str(uuid.uuid4()),
            "bounceType": bounce_type,
            "bounceSubType": subtype,
            "bouncedRecipients": [
                {"emailAddress": address, "action": "failed", "diagnosticCode": diagnostic}
            ],
            **more,
        },
        "mail": {"messageId": "m1", "destination": [address]},
    }


def post(hooks: Hooks, message: dict[str, Any]) -> Any:
    body = json.dumps(message).encode()
    return hooks.post("ses", body, {"Content-Type": "text/plain; charset=UTF-8"})


@pytest.mark.parametrize("version", ["1", "2"])
def test_signed_notifications_change_the_ledger(
    esp: Adieu, hooks: Hooks, stand_in: StandIn, version: str
) -> None:
    found = [
        bounce("dead@example.com", "Permanent", "General", DEAD),
        bounce("listed@example.com", "Permanent", "General", BLOCKLISTED),
        bounce("later@example.com", "Transient", "MailboxFull", "smtp; 452 4.2.2 full"),
        {
            "notificationType": "Complaint",
            "complaint": {
                "feedbackId": "c1",
                "complaintFeedbackType": "abuse",
                "complainedRecipients": [{"emailAddress": "spam@example.com"}],
            },
        },
        {
            "eventType": "Bounce",  # event publishing's shape
            **{
                k: v
                for k, v in bounce("pub@example.com", "Permanent", "General", DEAD).items()
                if k != "notificationType"
            },
        },
        {"notificationType": "Delivery", "delivery": {"recipients": ["fine@example.com"]}},
    ]
    for item in found:
        response = post(hooks, notification(stand_in, item, version=version))
        assert response.status_code == 200, response.text
    assert reasons_of(esp, "dead@example.com") == {("all", "hard_bounce")}
    # SES's "Permanent" for a blocklist is not a dead address.
    assert events_of(esp, "listed@example.com") == [("rejection", "esp")]
    assert events_of(esp, "later@example.com") == [("soft_bounce", "esp")]
    assert reasons_of(esp, "spam@example.com") == {("all", "complaint")}
    assert reasons_of(esp, "pub@example.com") == {("all", "hard_bounce")}
    assert not esp.ledger.status("fine@example.com").known
    details = esp.ledger.history("spam@example.com")[0].details
    assert details is not None and details["provider"] == "ses" and details["event_id"] == "c1"


def test_forged_or_foreign_messages_are_refused(
    esp: Adieu, hooks: Hooks, stand_in: StandIn
) -> None:
    item = bounce("dead@example.com", "Permanent", "General", DEAD)
    good = notification(stand_in, item)
    fetched = len(stand_in.requests)
    cases = [
        {**good, "Message": good["Message"].replace("dead@", "other@")},  # tampered
        {**good, "Signature": base64.b64encode(b"x" * 256).decode()},
        {**good, "Signature": "not base64"},
        {k: v for k, v in good.items() if k != "Signature"},
        {**good, "SignatureVersion": "3"},
        notification(stand_in, item, TopicArn=OTHER_TOPIC),  # a topic not allowed
        notification(
            stand_in, item, SigningCertURL="https://sns.eu-west-1.amazonaws.com.evil.test/a.pem"
        ),
        notification(stand_in, item, SigningCertURL=f"http://{stand_in.host}/a.pem"),
        {"Type": "Notification"},
        [good],
    ]
    for message in cases:
        response = hooks.post("ses", json.dumps(message).encode(), {})
        assert response.status_code == 401, message
        assert response.json()["error"]["code"] == "unauthorized"
    assert esp.ledger.count_contacts() == 0
    # Only the tampered ones fetched the certificate: a foreign topic or host never does.
    assert all(path.endswith(".pem") for path in stand_in.requests[fetched:])


def test_subscriptions_are_confirmed_for_allowed_topics_only(
    esp: Adieu, hooks: Hooks, stand_in: StandIn
) -> None:
    before = [p for p in stand_in.requests if "ConfirmSubscription" in p]
    foreign = signed(stand_in, "SubscriptionConfirmation", TopicArn=OTHER_TOPIC)
    assert post(hooks, foreign).status_code == 401
    elsewhere = signed(
        stand_in, "SubscriptionConfirmation", SubscribeURL="https://example.com/confirm"
    )
    assert post(hooks, elsewhere).status_code == 401
    assert [p for p in stand_in.requests if "ConfirmSubscription" in p] == before
    allowed = signed(stand_in, "SubscriptionConfirmation", version="2")
    assert post(hooks, allowed).status_code == 200
    assert len([p for p in stand_in.requests if "ConfirmSubscription" in p]) == len(before) + 1
    assert post(hooks, signed(stand_in, "UnsubscribeConfirmation")).status_code == 200
    assert esp.ledger.count_contacts() == 0


def test_a_redelivered_notification_is_recorded_once(
    esp: Adieu, hooks: Hooks, stand_in: StandIn
) -> None:
    message = notification(stand_in, bounce("later@example.com", "Transient", "General", ""))
    first, again = post(hooks, message), post(hooks, message)
    assert first.json()["recorded"] == 1 and again.json()["duplicates"] == 1
    assert esp.ledger.status("later@example.com").soft_bounces == 1


def test_the_production_default_accepts_only_sns_hosts() -> None:
    settings = Settings()
    assert allowed_url(
        "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-a.pem", settings
    )
    assert allowed_url("https://sns.cn-north-1.amazonaws.com.cn/a.pem", settings)
    for url in (
        "http://sns.eu-west-1.amazonaws.com/a.pem",
        "https://sns.eu-west-1.amazonaws.com:8443/a.pem",
        "https://sns.eu-west-1.amazonaws.com.evil.test/a.pem",
        "https://evil.test/sns.eu-west-1.amazonaws.com/a.pem",
        "https://user@sns.eu-west-1.amazonaws.com/a.pem",
        "https://127.0.0.1:8443/a.pem",
        "https://s3.amazonaws.com/a.pem",
    ):
        assert not allowed_url(url, settings), url
