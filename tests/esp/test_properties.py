"""Hypothesis on every provider's payload reader, and on the door: whatever
arrives, a reader gives findings with canonical addresses or says the payload
is not the provider's, never anything else; the door never answers 500 and
writes nothing for garbage, even when it is correctly authenticated."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from esp_support import (
    BREVO_TOKEN,
    MAILJET,
    POSTMARK,
    SECRETS,
    SPARKPOST,
    Hooks,
    basic,
    bearer,
    mailgun_body,
    sendgrid_headers,
    svix_headers,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adieu.addresses import canonical
from adieu.esp.hooks import HookRequest, Malformed, providers
from adieu.service import Adieu
from adieu.settings import Settings

#: Keys the readers look for, so that generated payloads reach their branches.
KEYS = [
    "event", "email", "type", "sg_event_id", "reason", "status", "bounce_classification",
    "recipient", "severity", "delivery-status", "code", "message", "id", "RecordType", "ID",
    "TypeCode", "Email", "Details", "Recipient", "SuppressSending", "Origin",
    "SuppressionReason", "data", "to", "bounce", "subType", "msys", "message_event",
    "unsubscribe_event", "rcpt_to", "bounce_class", "raw_reason", "event_id", "hard_bounce",
    "error_related_to", "error", "MessageID", "Message", "Type", "notificationType",
    "bouncedRecipients", "emailAddress", "bounceType", "complaint", "complainedRecipients",
    "event-data", "adieu_topic", "asm_group_id",
]  # fmt: skip
VALUES = [
    "bounce", "blocked", "dropped", "spamreport", "unsubscribe", "group_unsubscribe",
    "group_resubscribe", "failed", "complained", "unsubscribed", "permanent", "temporary",
    "Bounce", "SpamComplaint", "SubscriptionChange", "email.bounced", "email.complained",
    "spam_complaint", "list_unsubscribe", "hard_bounce", "soft_bounce", "spam", "unsub",
    "Permanent", "Transient", "Notification", "Complaint", "Recipient", "recipient",
    "a@example.com", "Ann <ann@example.org>", "not an address", "10", "50", "22", "5.1.1",
    "550 5.1.1 user unknown", "blocked using Spamhaus",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(VALUES),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=6),
    ),
    max_leaves=30,
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
)

READERS = sorted(providers())


@pytest.mark.parametrize("name", READERS)
@settings(max_examples=150, deadline=None)
@given(body=bodies)
def test_every_reader_reads_or_refuses(name: str, body: bytes) -> None:
    provider = providers()[name]
    request = HookRequest({"svix-id": "msg_1"}, body)
    try:
        parsed = provider.parse(request)
    except Malformed:
        return
    for finding in parsed.findings:
        assert finding.address == canonical(finding.address)
        assert finding.event_id and len(finding.event_id) <= 200
        json.dumps(finding.details)  # storable as the event's details
    assert parsed.malformed >= 0 and parsed.ignored >= 0


no_address = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.text(alphabet=st.characters(blacklist_characters="@＠"), max_size=20),
        st.sampled_from([v for v in VALUES if "@" not in v]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=6),
    ),
    max_leaves=25,
)


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Adieu, Hooks]]:
    data: Path = tmp_path_factory.mktemp("door")
    adieu = Adieu(Settings(data_dir=data, base_url="https://mail.example.net", **SECRETS))
    hooks = Hooks(adieu)
    yield adieu, hooks
    hooks.close()
    adieu.close()


def _signed(name: str, body: bytes) -> tuple[bytes, dict[str, str]]:
    """``body`` as ``name`` would post it, authenticated."""
    if name == "sendgrid":
        return body, sendgrid_headers(body)
    if name == "mailgun":
        try:
            inner: Any = json.loads(body)
        except ValueError:
            inner = None
        return mailgun_body(inner), {}
    if name == "resend":
        return body, svix_headers(body)
    if name == "sparkpost":
        return body, basic(*SPARKPOST)
    if name == "brevo":
        return body, bearer(BREVO_TOKEN)
    if name == "mailjet":
        return body, basic(*MAILJET)
    return body, basic(*POSTMARK)


@pytest.mark.parametrize(
    "name", ["sendgrid", "mailgun", "postmark", "resend", "sparkpost", "brevo", "mailjet"]
)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    payload=st.one_of(
        st.binary(max_size=200).filter(lambda b: b"@" not in b),
        no_address.map(lambda v: json.dumps(v).encode()),
    )
)
def test_the_door_never_fails_and_never_writes_garbage(
    door: tuple[Adieu, Hooks], name: str, payload: bytes
) -> None:
    adieu, hooks = door
    body, headers = _signed(name, payload)
    response = hooks.post(name, body, headers)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert response.json()["error"]["code"] == "invalid_payload"
    assert adieu.ledger.count_contacts() == 0


@settings(max_examples=60, deadline=None)
@given(body=bodies)
def test_garbage_at_the_ses_door_is_refused_without_a_fetch(body: bytes) -> None:
    """Unsigned garbage never gets as far as fetching a certificate."""
    from adieu.esp.hooks import Context, Refused

    fetched: list[str] = []

    class Fake:
        settings = Settings(ses_topic_arns="arn:aws:sns:eu-west-1:1:t")

    context = Context.__new__(Context)
    context.settings = Fake.settings
    context._fetch = fetched.append  # type: ignore[assignment]
    with pytest.raises(Refused):
        providers()["ses"].verify(HookRequest({}, body), context)
    assert fetched == []
