"""POST /hooks/{provider} for SendGrid, Mailgun, Postmark, Resend, SparkPost,
Brevo and Mailjet: payloads built and signed as each provider documents,
with keys the test holds; what each event changes in the ledger; what a
forged, stale or replayed request changes (nothing)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from esp_support import (
    BREVO_TOKEN,
    MAILJET,
    POSTMARK,
    SECRETS,
    SPARKPOST,
    SPARKPOST_TOKEN,
    Hooks,
    basic,
    bearer,
    body_of,
    events_of,
    mailgun_body,
    reasons_of,
    sendgrid_headers,
    svix_headers,
)

from adieu.service import Adieu
from conftest import MakeSettings

ALL = "all"
DEAD = "550 5.1.1 The email account that you tried to reach does not exist."
BLOCKLISTED = "550 5.7.1 Service unavailable; client host [192.0.2.1] blocked using Spamhaus"
FULL = "552 5.2.2 The email account that you tried to reach is over quota."


@pytest.fixture
def esp(make_settings: MakeSettings) -> Iterator[Adieu]:
    adieu = Adieu(make_settings(**SECRETS))
    yield adieu
    adieu.close()


@pytest.fixture
def hooks(esp: Adieu) -> Iterator[Hooks]:
    client = Hooks(esp)
    yield client
    client.close()


def nothing_recorded(adieu: Adieu) -> bool:
    return adieu.ledger.count_contacts() == 0


# -- SendGrid -----------------------------------------------------------------------------


def sg(event: str, email: str, ident: str, **more: Any) -> dict[str, Any]:
    return {"event": event, "email": email, "sg_event_id": ident, "timestamp": 1, **more}


def test_sendgrid_events_change_the_ledger(esp: Adieu, hooks: Hooks) -> None:
    esp.ledger.add_topic("news", "News")
    batch = [
        sg(
            "bounce",
            "dead@example.com",
            "e1",
            type="bounce",
            status="5.1.1",
            reason=DEAD,
            bounce_classification="Invalid Address",
        ),
        sg(
            "bounce",
            "listed@example.com",
            "e2",
            type="bounce",
            status="5.7.1",
            reason=BLOCKLISTED,
            bounce_classification="Invalid Address",
        ),
        sg(
            "bounce",
            "blocked@example.com",
            "e3",
            type="blocked",
            status="4.7.0",
            reason="421 4.7.0 Try again later",
            bounce_classification="Reputation",
        ),
        sg("spamreport", "spam@example.com", "e4"),
        sg("unsubscribe", "gone@example.com", "e5"),
        sg("group_unsubscribe", "news@example.com", "e6", asm_group_id=7, adieu_topic="news"),
        sg("dropped", "dropped@example.com", "e7", reason="Bounced Address"),
        sg("delivered", "fine@example.com", "e8"),
        sg("open", "fine@example.com", "e9"),
    ]
    body = body_of(batch)
    response = hooks.post("sendgrid", body, sendgrid_headers(body))
    assert response.status_code == 200, response.text
    assert response.json() == {"recorded": 7, "duplicates": 0, "ignored": 2, "malformed": 0}
    assert reasons_of(esp, "dead@example.com") == {(ALL, "hard_bounce")}
    # A "permanent" bounce a blocklist caused is not a dead address.
    assert reasons_of(esp, "listed@example.com") == set()
    assert events_of(esp, "listed@example.com") == [("rejection", "esp")]
    assert events_of(esp, "blocked@example.com") == [("rejection", "esp")]
    assert reasons_of(esp, "spam@example.com") == {(ALL, "complaint")}
    assert reasons_of(esp, "gone@example.com") == {(ALL, "unsubscribe")}
    assert reasons_of(esp, "news@example.com") == {("news", "unsubscribe")}
    assert reasons_of(esp, "dropped@example.com") == set()
    assert not esp.ledger.status("fine@example.com").known
    event = esp.ledger.history("dead@example.com")[0]
    assert event.details is not None
    assert event.details["provider"] == "sendgrid" and event.details["event_id"] == "e1"
    # A group resubscribe to a topic Adieu knows lifts the person's own "no".
    body = body_of([sg("group_resubscribe", "news@example.com", "e10", adieu_topic="news")])
    assert hooks.post("sendgrid", body, sendgrid_headers(body)).json()["recorded"] == 1
    assert reasons_of(esp, "news@example.com") == set()


def test_sendgrid_refuses_what_it_did_not_sign(esp: Adieu, hooks: Hooks) -> None:
    body = body_of([sg("spamreport", "spam@example.com", "e1")])
    good = sendgrid_headers(body)
    other_key = ec.generate_private_key(ec.SECP256R1())
    cases = [
        {},  # nothing
        {**good, "X-Twilio-Email-Event-Webhook-Signature": ""},  # missing
        sendgrid_headers(body, key=other_key),  # someone else's key
        sendgrid_headers(body, at=time.time() - 3600),  # stale
        sendgrid_headers(body, at=time.time() + 3600),  # from the future
        {**good, "X-Twilio-Email-Event-Webhook-Timestamp": str(int(time.time()) - 1)},
        {**good, "X-Twilio-Email-Event-Webhook-Signature": "not base64!"},
    ]
    for headers in cases:
        response = hooks.post("sendgrid", body, headers)
        assert response.status_code == 401, headers
        assert response.json()["error"]["code"] == "unauthorized"
    tampered = body.replace(b"spam@", b"spom@")
    assert hooks.post("sendgrid", tampered, good).status_code == 401
    assert nothing_recorded(esp)


def test_a_redelivered_event_is_recorded_once(esp: Adieu, hooks: Hooks) -> None:
    body = body_of(
        [
            sg(
                "bounce",
                "soft@example.com",
                "e1",
                type="bounce",
                reason=FULL,
                status="5.2.2",
                bounce_classification="Mailbox Unavailable",
            )
        ]
    )
    first = hooks.post("sendgrid", body, sendgrid_headers(body))
    again = hooks.post("sendgrid", body, sendgrid_headers(body))
    assert first.json()["recorded"] == 1
    assert again.status_code == 200 and again.json()["duplicates"] == 1
    assert events_of(esp, "soft@example.com") == [("soft_bounce", "esp")]
    assert esp.ledger.status("soft@example.com").soft_bounces == 1
    # The same event twice in one batch counts once too.
    body = body_of([sg("spamreport", "twice@example.com", "e2")] * 2)
    response = hooks.post("sendgrid", body, sendgrid_headers(body))
    assert response.json() == {"recorded": 1, "duplicates": 1, "ignored": 0, "malformed": 0}
    assert events_of(esp, "twice@example.com") == [("complaint", "esp")]


def test_a_batch_with_a_malformed_item_records_the_others(esp: Adieu, hooks: Hooks) -> None:
    batch: list[Any] = [
        sg("spamreport", "one@example.com", "e1"),
        {"event": "spamreport", "sg_event_id": "e2"},  # no address
        sg("spamreport", "not an address", "e3"),
        "a string",
        sg("unsubscribe", "two@example.com", "e4"),
    ]
    body = body_of(batch)
    response = hooks.post("sendgrid", body, sendgrid_headers(body))
    assert response.status_code == 200
    assert response.json() == {"recorded": 2, "duplicates": 0, "ignored": 0, "malformed": 3}
    assert reasons_of(esp, "one@example.com") == {(ALL, "complaint")}
    assert reasons_of(esp, "two@example.com") == {(ALL, "unsubscribe")}
    assert esp.ledger.count_contacts() == 2


def test_a_signed_body_that_is_not_json_is_a_clear_400(esp: Adieu, hooks: Hooks) -> None:
    body = b"\xff{not json"
    response = hooks.post("sendgrid", body, sendgrid_headers(body))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_payload"
    assert nothing_recorded(esp)


# -- Mailgun ------------------------------------------------------------------------------


def mg(event: str, recipient: str, ident: str, **more: Any) -> dict[str, Any]:
    return {"event": event, "recipient": recipient, "id": ident, "timestamp": 1.5, **more}


def test_mailgun_events_change_the_ledger(esp: Adieu, hooks: Hooks) -> None:
    events = [
        mg(
            "failed",
            "dead@example.com",
            "m1",
            severity="permanent",
            reason="bounce",
            **{"delivery-status": {"code": 550, "message": DEAD, "description": ""}},
        ),
        mg(
            "failed",
            "listed@example.com",
            "m2",
            severity="permanent",
            reason="bounce",
            **{"delivery-status": {"code": 554, "message": BLOCKLISTED}},
        ),
        mg(
            "failed",
            "later@example.com",
            "m3",
            severity="temporary",
            reason="generic",
            **{"delivery-status": {"code": 452, "message": "4.2.2 Mailbox full"}},
        ),
        mg(
            "failed",
            "held@example.com",
            "m4",
            severity="permanent",
            reason="suppress-bounce",
            **{"delivery-status": {"code": 605}},
        ),
        mg(
            "failed",
            "expired@example.com",
            "m8",
            severity="permanent",
            reason="old",
            **{"delivery-status": {"message": "Too old"}},
        ),
        mg("complained", "spam@example.com", "m5"),
        mg("unsubscribed", "gone@example.com", "m6"),
        mg("delivered", "fine@example.com", "m7"),
    ]
    for event in events:
        response = hooks.post("mailgun", mailgun_body(event), {"Content-Type": "application/json"})
        assert response.status_code == 200, response.text
    assert reasons_of(esp, "dead@example.com") == {(ALL, "hard_bounce")}
    assert events_of(esp, "listed@example.com") == [("rejection", "esp")]
    assert events_of(esp, "later@example.com") == [("soft_bounce", "esp")]
    assert events_of(esp, "held@example.com") == [("rejection", "esp")]
    assert events_of(esp, "expired@example.com") == [("soft_bounce", "esp")]
    assert reasons_of(esp, "spam@example.com") == {(ALL, "complaint")}
    assert reasons_of(esp, "gone@example.com") == {(ALL, "unsubscribe")}
    assert not esp.ledger.status("fine@example.com").known


def test_mailgun_refuses_forged_stale_and_replayed_requests(esp: Adieu, hooks: Hooks) -> None:
    event = mg("complained", "spam@example.com", "m1")
    json = {"Content-Type": "application/json"}
    assert hooks.post("mailgun", mailgun_body(event, key="key-wrong"), json).status_code == 401
    stale = mailgun_body(event, at=time.time() - 3600)
    assert hooks.post("mailgun", stale, json).status_code == 401
    assert hooks.post("mailgun", body_of({"event-data": event}), json).status_code == 401
    assert nothing_recorded(esp)
    signed = mailgun_body(event, token="t" * 50)
    assert hooks.post("mailgun", signed, json).status_code == 200
    # The same token again, even for another event: a replay.
    other = mailgun_body(mg("complained", "other@example.com", "m2"), token="t" * 50)
    replayed = hooks.post("mailgun", other, json)
    assert replayed.status_code == 401
    assert hooks.post("mailgun", signed, json).status_code == 401
    assert not esp.ledger.status("other@example.com").known
    assert events_of(esp, "spam@example.com") == [("complaint", "esp")]


# -- Postmark -----------------------------------------------------------------------------


def test_postmark_records_change_the_ledger(esp: Adieu, hooks: Hooks) -> None:
    auth = basic(*POSTMARK)
    records = [
        {
            "RecordType": "Bounce",
            "ID": 1,
            "Type": "HardBounce",
            "TypeCode": 1,
            "Email": "dead@example.com",
            "Details": "smtp;" + DEAD,
        },
        {
            "RecordType": "Bounce",
            "ID": 2,
            "Type": "HardBounce",
            "TypeCode": 1,
            "Email": "listed@example.com",
            "Details": BLOCKLISTED,
        },
        {
            "RecordType": "Bounce",
            "ID": 3,
            "Type": "Blocked",
            "TypeCode": 100006,
            "Email": "blocked@example.com",
            "Details": "ISP block",
        },
        {
            "RecordType": "Bounce",
            "ID": 4,
            "Type": "SoftBounce",
            "TypeCode": 4096,
            "Email": "soft@example.com",
            "Details": FULL,
        },
        {
            "RecordType": "SpamComplaint",
            "ID": 5,
            "Type": "SpamComplaint",
            "TypeCode": 100001,
            "Email": "spam@example.com",
        },
        {
            "RecordType": "SubscriptionChange",
            "MessageID": "x1",
            "ChangedAt": "2026-12-04T10:00",
            "Recipient": "gone@example.com",
            "SuppressSending": True,
            "SuppressionReason": "ManualSuppression",
            "Origin": "Recipient",
        },
        {
            "RecordType": "SubscriptionChange",
            "MessageID": "x2",
            "ChangedAt": "2026-12-04T10:00",
            "Recipient": "customer@example.com",
            "SuppressSending": True,
            "SuppressionReason": "ManualSuppression",
            "Origin": "Customer",
        },
        {"RecordType": "Delivery", "Recipient": "fine@example.com", "MessageID": "x3"},
    ]
    for record in records:
        response = hooks.post("postmark", body_of(record), auth)
        assert response.status_code == 200, response.text
    assert reasons_of(esp, "dead@example.com") == {(ALL, "hard_bounce")}
    assert events_of(esp, "listed@example.com") == [("rejection", "esp")]
    assert events_of(esp, "blocked@example.com") == [("rejection", "esp")]
    assert events_of(esp, "soft@example.com") == [("soft_bounce", "esp")]
    assert reasons_of(esp, "spam@example.com") == {(ALL, "complaint")}
    assert reasons_of(esp, "gone@example.com") == {(ALL, "unsubscribe")}
    # The sender's own suppression in Postmark is not the person's choice.
    assert not esp.ledger.status("customer@example.com").known
    resubscribe = {
        "RecordType": "SubscriptionChange",
        "MessageID": "x1",
        "ChangedAt": "2026-12-05T10:00",
        "Recipient": "gone@example.com",
        "SuppressSending": False,
        "Origin": "Recipient",
    }
    assert hooks.post("postmark", body_of(resubscribe), auth).json()["recorded"] == 1
    assert reasons_of(esp, "gone@example.com") == set()


def test_postmark_refuses_wrong_credentials(esp: Adieu, hooks: Hooks) -> None:
    body = body_of(
        {"RecordType": "SpamComplaint", "ID": 5, "TypeCode": 100001, "Email": "spam@example.com"}
    )
    for headers in (
        {},
        basic(POSTMARK[0], "wrong"),
        basic("someone", POSTMARK[1]),
        bearer(POSTMARK[1]),
        {"Authorization": "Basic !!!"},
    ):
        assert hooks.post("postmark", body, headers).status_code == 401
    assert nothing_recorded(esp)


# -- Resend (Svix) --------------------------------------------------------------------------


def resend(kind: str, to: list[str], **data: Any) -> bytes:
    return body_of(
        {
            "type": kind,
            "created_at": "2026-12-04T10:00:00Z",
            "data": {"email_id": "abc", "to": to, **data},
        }
    )


def test_resend_events_change_the_ledger(esp: Adieu, hooks: Hooks) -> None:
    bounced = resend(
        "email.bounced",
        ["dead@example.com"],
        bounce={"type": "Permanent", "subType": "General", "message": DEAD},
    )
    listed = resend(
        "email.bounced",
        ["listed@example.com"],
        bounce={"type": "Permanent", "subType": "General", "message": BLOCKLISTED},
    )
    complained = resend("email.complained", ["spam@example.com", "spam2@example.com"])
    delivered = resend("email.delivered", ["fine@example.com"])
    for body in (bounced, listed, complained, delivered):
        assert hooks.post("resend", body, svix_headers(body)).status_code == 200
    assert reasons_of(esp, "dead@example.com") == {(ALL, "hard_bounce")}
    assert events_of(esp, "listed@example.com") == [("rejection", "esp")]
    assert reasons_of(esp, "spam@example.com") == {(ALL, "complaint")}
    assert reasons_of(esp, "spam2@example.com") == {(ALL, "complaint")}
    assert not esp.ledger.status("fine@example.com").known
    # Svix retries with the same svix-id: recorded once.
    again = hooks.post("resend", bounced, svix_headers(bounced, ident="msg_1"))
    assert again.json()["recorded"] == 1
    again = hooks.post("resend", bounced, svix_headers(bounced, ident="msg_1"))
    assert again.json()["duplicates"] == 1


def test_resend_refuses_what_svix_did_not_sign(esp: Adieu, hooks: Hooks) -> None:
    body = resend("email.complained", ["spam@example.com"])
    good = svix_headers(body)
    other = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
    for headers in (
        {},
        {**good, "svix-signature": ""},
        {**good, "svix-signature": "v1,AAAA"},
        {**good, "svix-id": "msg_other"},
        svix_headers(body, secret=other),
        svix_headers(body, at=time.time() - 3600),
    ):
        assert hooks.post("resend", body, headers).status_code == 401
    assert nothing_recorded(esp)
    # Several signatures (a rotated secret): one that verifies is enough.
    two = {**good, "svix-signature": "v1,AAAA " + good["svix-signature"]}
    assert hooks.post("resend", body, two).status_code == 200


# -- SparkPost ----------------------------------------------------------------------------


def msys(group: str, kind: str, rcpt: str, ident: str, **more: Any) -> dict[str, Any]:
    return {"msys": {group: {"type": kind, "rcpt_to": rcpt, "event_id": ident, **more}}}


def test_sparkpost_events_change_the_ledger(esp: Adieu, hooks: Hooks) -> None:
    batch = [
        msys(
            "message_event",
            "bounce",
            "dead@example.com",
            "s1",
            bounce_class="10",
            raw_reason=DEAD,
            error_code="550",
        ),
        msys(
            "message_event",
            "bounce",
            "listed@example.com",
            "s2",
            bounce_class="10",
            raw_reason=BLOCKLISTED,
            error_code="550",
        ),
        msys(
            "message_event",
            "bounce",
            "blocked@example.com",
            "s3",
            bounce_class="51",
            raw_reason="554 5.7.1 rejected",
        ),
        msys(
            "message_event",
            "out_of_band",
            "full@example.com",
            "s4",
            bounce_class="22",
            raw_reason=FULL,
        ),
        msys("message_event", "spam_complaint", "spam@example.com", "s5", fbtype="abuse"),
        msys("unsubscribe_event", "list_unsubscribe", "gone@example.com", "s6"),
        msys("unsubscribe_event", "link_unsubscribe", "left@example.com", "s7"),
        msys("message_event", "delivery", "fine@example.com", "s8"),
        {"msys": {}},
    ]
    body = body_of(batch)
    headers = {**basic(*SPARKPOST), "X-MessageSystems-Batch-ID": "batch-1"}
    response = hooks.post("sparkpost", body, headers)
    assert response.status_code == 200
    assert response.json() == {"recorded": 7, "duplicates": 0, "ignored": 2, "malformed": 0}
    assert reasons_of(esp, "dead@example.com") == {(ALL, "hard_bounce")}
    assert events_of(esp, "listed@example.com") == [("rejection", "esp")]
    assert events_of(esp, "blocked@example.com") == [("rejection", "esp")]
    assert events_of(esp, "full@example.com") == [("soft_bounce", "esp")]
    assert reasons_of(esp, "spam@example.com") == {(ALL, "complaint")}
    assert reasons_of(esp, "gone@example.com") == {(ALL, "unsubscribe")}
    assert reasons_of(esp, "left@example.com") == {(ALL, "unsubscribe")}
    # The same batch again (its batch id): answered at once, nothing new.
    again = hooks.post("sparkpost", body, headers)
    assert again.status_code == 200 and again.json()["duplicates"] == 1
    assert events_of(esp, "full@example.com") == [("soft_bounce", "esp")]


def test_sparkpost_takes_basic_or_bearer_and_nothing_else(esp: Adieu, hooks: Hooks) -> None:
    body = body_of([msys("message_event", "spam_complaint", "spam@example.com", "s1")])
    for headers in ({}, basic(SPARKPOST[0], "wrong"), bearer("wrong"), bearer(SPARKPOST[1])):
        assert hooks.post("sparkpost", body, headers).status_code == 401
    assert nothing_recorded(esp)
    assert hooks.post("sparkpost", body, bearer(SPARKPOST_TOKEN)).status_code == 200
    assert reasons_of(esp, "spam@example.com") == {(ALL, "complaint")}


# -- Brevo --------------------------------------------------------------------------------


def test_brevo_events_change_the_ledger(esp: Adieu, hooks: Hooks) -> None:
    events = [
        {
            "event": "hard_bounce",
            "email": "dead@example.com",
            "message-id": "<b1@x>",
            "ts_event": 1,
            "reason": DEAD,
        },
        {
            "event": "hard_bounce",
            "email": "listed@example.com",
            "message-id": "<b2@x>",
            "ts_event": 1,
            "reason": BLOCKLISTED,
        },
        {
            "event": "soft_bounce",
            "email": "full@example.com",
            "message-id": "<b3@x>",
            "ts_event": 1,
            "reason": FULL,
        },
        {"event": "blocked", "email": "blocked@example.com", "message-id": "<b4@x>", "ts_event": 1},
        {"event": "spam", "email": "spam@example.com", "message-id": "<b5@x>", "ts_event": 1},
        {"event": "unsubscribed", "email": "gone@example.com", "camp_id": 3, "ts_event": 1},
        {"event": "unsubscribe", "email": "left@example.com", "camp_id": 3, "ts_event": 2},
        {"event": "delivered", "email": "fine@example.com", "message-id": "<b6@x>"},
    ]
    for event in events:
        response = hooks.post("brevo", body_of(event), bearer(BREVO_TOKEN))
        assert response.status_code == 200, response.text
    assert reasons_of(esp, "dead@example.com") == {(ALL, "hard_bounce")}
    assert events_of(esp, "listed@example.com") == [("rejection", "esp")]
    assert events_of(esp, "full@example.com") == [("soft_bounce", "esp")]
    assert events_of(esp, "blocked@example.com") == [("rejection", "esp")]
    assert reasons_of(esp, "spam@example.com") == {(ALL, "complaint")}
    assert reasons_of(esp, "gone@example.com") == {(ALL, "unsubscribe")}
    assert reasons_of(esp, "left@example.com") == {(ALL, "unsubscribe")}  # a marketing webhook
    assert not esp.ledger.status("fine@example.com").known


def test_brevo_refuses_a_wrong_token(esp: Adieu, hooks: Hooks) -> None:
    body = body_of({"event": "spam", "email": "spam@example.com", "message-id": "<b5@x>"})
    for headers in ({}, bearer("wrong"), basic("brevo", BREVO_TOKEN)):
        assert hooks.post("brevo", body, headers).status_code == 401
    assert nothing_recorded(esp)


# -- Mailjet ------------------------------------------------------------------------------


def mj(event: str, email: str, message: int, **more: Any) -> dict[str, Any]:
    return {"event": event, "email": email, "MessageID": message, "time": 1, **more}


def test_mailjet_events_change_the_ledger(esp: Adieu, hooks: Hooks) -> None:
    batch = [
        mj(
            "bounce",
            "dead@example.com",
            1,
            hard_bounce=True,
            blocked=False,
            error_related_to="recipient",
            error="user unknown",
            comment=DEAD,
        ),
        mj(
            "bounce",
            "spamblock@example.com",
            2,
            hard_bounce=True,
            blocked=False,
            error_related_to="spam",
            error="sender blocked",
        ),
        mj(
            "bounce",
            "full@example.com",
            3,
            hard_bounce=False,
            blocked=False,
            error_related_to="recipient",
            error="quota exceeded",
            comment=FULL,
        ),
        mj("blocked", "blocked@example.com", 4, error_related_to="recipient", error="preblocked"),
        mj("spam", "spam@example.com", 5, source="JMRPP"),
        mj("unsub", "gone@example.com", 6, mj_list_id=1),
        mj("sent", "fine@example.com", 7),
    ]
    body = body_of(batch)
    response = hooks.post("mailjet", body, basic(*MAILJET))
    assert response.status_code == 200
    assert response.json() == {"recorded": 6, "duplicates": 0, "ignored": 1, "malformed": 0}
    assert reasons_of(esp, "dead@example.com") == {(ALL, "hard_bounce")}
    assert events_of(esp, "spamblock@example.com") == [("rejection", "esp")]
    assert events_of(esp, "full@example.com") == [("soft_bounce", "esp")]
    assert events_of(esp, "blocked@example.com") == [("rejection", "esp")]
    assert reasons_of(esp, "spam@example.com") == {(ALL, "complaint")}
    assert reasons_of(esp, "gone@example.com") == {(ALL, "unsubscribe")}
    # A single event (not grouped) is taken too.
    single = body_of(mj("spam", "single@example.com", 8))
    assert hooks.post("mailjet", single, basic(*MAILJET)).json()["recorded"] == 1


def test_mailjet_refuses_wrong_credentials(esp: Adieu, hooks: Hooks) -> None:
    body = body_of(mj("spam", "spam@example.com", 5))
    for headers in ({}, basic(MAILJET[0], "wrong"), bearer(MAILJET[1])):
        assert hooks.post("mailjet", body, headers).status_code == 401
    assert nothing_recorded(esp)


# -- the door as a whole ---------------------------------------------------------------------


def test_a_provider_without_its_secret_is_not_there(adieu: Adieu) -> None:
    hooks = Hooks(adieu)
    try:
        for provider in (
            "ses",
            "sendgrid",
            "mailgun",
            "postmark",
            "resend",
            "sparkpost",
            "brevo",
            "mailjet",
            "nosuch",
        ):
            response = hooks.post(provider, b"[]", {"Content-Type": "application/json"})
            assert response.status_code == 404, provider
            assert response.json()["error"]["code"] == "not_found"
    finally:
        hooks.close()
    assert nothing_recorded(adieu)


def test_consent_rules_hold_for_what_providers_say(esp: Adieu, hooks: Hooks) -> None:
    # A complaint stays whatever a provider later says about resubscribing.
    auth = basic(*POSTMARK)
    complaint = {
        "RecordType": "SpamComplaint",
        "ID": 9,
        "TypeCode": 100001,
        "Email": "spam@example.com",
    }
    hooks.post("postmark", body_of(complaint), auth)
    resubscribe = {
        "RecordType": "SubscriptionChange",
        "MessageID": "r",
        "ChangedAt": "t",
        "Recipient": "spam@example.com",
        "SuppressSending": False,
        "Origin": "Recipient",
    }
    assert hooks.post("postmark", body_of(resubscribe), auth).status_code == 200
    assert reasons_of(esp, "spam@example.com") == {(ALL, "complaint")}
    # Erasure is final: a provider's resubscribe lifts nothing, and records no address.
    esp.ledger.unsubscribe("erased@example.com", channel=esp_channel())
    esp.ledger.erase("erased@example.com", channel=esp_channel())
    resubscribe = {**resubscribe, "Recipient": "erased@example.com", "MessageID": "r2"}
    assert hooks.post("postmark", body_of(resubscribe), auth).status_code == 200
    digest = esp.hasher.hash("erased@example.com")
    status = esp.ledger.status(None, digest=digest)
    assert status.erased_at is not None and status.state.suppressions


def esp_channel() -> Any:
    from adieu.ledger import Channel

    return Channel.CLI


def test_a_body_over_the_limit_is_refused_before_it_is_read(esp: Adieu, hooks: Hooks) -> None:
    body = b"[" + b" " * (9 * 1024 * 1024) + b"]"
    response = hooks.post("sendgrid", body, sendgrid_headers(body))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert nothing_recorded(esp)


def test_a_failed_write_is_answered_503_and_the_retry_records_all_of_it(
    esp: Adieu, hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from sqlalchemy.exc import OperationalError

    body = body_of(
        [sg("spamreport", "one@example.com", "e1"), sg("spamreport", "two@example.com", "e2")]
    )
    real = esp.ledger.record_complaint
    calls: list[str] = []

    def flaky(address: str, **kwargs: Any) -> Any:
        calls.append(address)
        if address == "two@example.com" and calls.count(address) == 1:
            raise OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))
        return real(address, **kwargs)

    monkeypatch.setattr(esp.ledger, "record_complaint", flaky)
    failed = hooks.post("sendgrid", body, sendgrid_headers(body))
    assert failed.status_code == 503  # SendGrid retries anything but a 2xx
    assert failed.json()["error"]["code"] == "unavailable"
    assert events_of(esp, "one@example.com") == [], "nothing of a failed request stays"
    retried = hooks.post("sendgrid", body, sendgrid_headers(body))
    assert retried.json() == {"recorded": 2, "duplicates": 0, "ignored": 0, "malformed": 0}
    assert events_of(esp, "one@example.com") == [("complaint", "esp")]
    assert events_of(esp, "two@example.com") == [("complaint", "esp")]


def test_a_finding_the_ledger_refuses_is_counted_malformed_and_the_others_stand(
    esp: Adieu, hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adieu.errors import InvalidAddress

    body = body_of(
        [sg("spamreport", "one@example.com", "e1"), sg("spamreport", "two@example.com", "e2")]
    )
    real = esp.ledger.record_complaint

    def picky(address: str, **kwargs: Any) -> Any:
        result = real(address, **kwargs)  # written, then refused: the savepoint undoes it
        if address == "two@example.com":
            raise InvalidAddress("not an address this ledger takes")
        return result

    monkeypatch.setattr(esp.ledger, "record_complaint", picky)
    answer = hooks.post("sendgrid", body, sendgrid_headers(body))
    assert answer.json() == {"recorded": 1, "duplicates": 0, "ignored": 0, "malformed": 1}
    assert events_of(esp, "one@example.com") == [("complaint", "esp")]
    assert events_of(esp, "two@example.com") == []


def test_a_failure_after_the_ledger_writes_never_records_an_event_twice(
    esp: Adieu, hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The step that marks the claims recorded fails (the process could as
    well die there): the request's ledger writes go with it, so neither the
    retry nor a redelivery long after records anything twice."""
    import sqlite3
    from datetime import timedelta

    from sqlalchemy.exc import OperationalError

    from adieu.esp.hooks import Hooks as Door
    from adieu.ledger import schema as t

    body = body_of(
        [sg("spamreport", "one@example.com", "e1"), sg("spamreport", "two@example.com", "e2")]
    )
    real = Door._settle
    failures = [True]

    def flaky(self: Door, *args: Any, **kwargs: Any) -> None:
        if failures:
            failures.pop()
            raise OperationalError("UPDATE", {}, sqlite3.OperationalError("disk I/O error"))
        real(self, *args, **kwargs)

    monkeypatch.setattr(Door, "_settle", flaky)
    assert hooks.post("sendgrid", body, sendgrid_headers(body)).status_code == 503
    retried = hooks.post("sendgrid", body, sendgrid_headers(body))
    assert retried.json()["recorded"] == 2
    with esp.engine.begin() as conn:  # long after, past any claim's staleness
        conn.execute(t.esp_events.update().values(claimed_at=esp.ledger.now() - timedelta(days=1)))
    again = hooks.post("sendgrid", body, sendgrid_headers(body))
    assert again.json() == {"recorded": 0, "duplicates": 2, "ignored": 0, "malformed": 0}
    assert events_of(esp, "one@example.com") == [("complaint", "esp")]
    assert events_of(esp, "two@example.com") == [("complaint", "esp")]


def test_a_claim_left_by_a_process_that_died_is_taken_over(esp: Adieu) -> None:
    from datetime import timedelta

    from adieu.esp.hooks import Hooks as Door
    from adieu.ledger import schema as t

    door = Door(esp)
    key = ("e1", esp.hasher.hash("one@example.com"))
    with esp.ledger.together() as conn:  # a claim committed without its record
        assert door._claim(conn, "sendgrid", [key]) == [key]
    with esp.ledger.together() as conn:
        assert door._claim(conn, "sendgrid", [key]) == []  # not stale yet
    with esp.engine.begin() as conn:
        conn.execute(
            t.esp_events.update().values(claimed_at=esp.ledger.now() - timedelta(minutes=10))
        )
    with esp.ledger.together() as conn:
        assert door._claim(conn, "sendgrid", [key]) == [key]  # the one that claimed it died
        door._settle(conn, "sendgrid", [key])
    with esp.engine.begin() as conn:
        conn.execute(t.esp_events.update().values(claimed_at=esp.ledger.now() - timedelta(days=10)))
    with esp.ledger.together() as conn:
        assert door._claim(conn, "sendgrid", [key]) == []  # recorded: never again


def test_a_provider_key_that_cannot_work_is_refused_at_start() -> None:
    from adieu.errors import InvalidSettings
    from adieu.settings import Settings

    with pytest.raises(InvalidSettings, match="ADIEU_SENDGRID_PUBLIC_KEY"):
        Settings(sendgrid_public_key="MFkwEwYHnot-a-key")
    with pytest.raises(InvalidSettings, match="ADIEU_RESEND_SECRET"):
        Settings(resend_secret="whsec_!!!")
    from esp_support import SENDGRID_PUBLIC

    lines = [SENDGRID_PUBLIC[i : i + 64] for i in range(0, len(SENDGRID_PUBLIC), 64)]
    pem = "\n".join(["-----BEGIN PUBLIC KEY-----", *lines, "-----END PUBLIC KEY-----"])
    assert Settings(sendgrid_public_key=pem).sendgrid_public_key == pem


def test_adieu_status_shows_what_a_provider_reported(
    esp: Adieu, hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from click.testing import CliRunner

    from adieu.cli import main

    body = body_of(
        [
            sg(
                "bounce",
                "dead@example.com",
                "e1",
                type="bounce",
                status="5.1.1",
                reason=DEAD,
                bounce_classification="Invalid Address",
            )
        ]
    )
    assert hooks.post("sendgrid", body, sendgrid_headers(body)).status_code == 200
    settings = esp.settings
    monkeypatch.setenv("ADIEU_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("ADIEU_DATABASE_URL", settings.sqlalchemy_url)
    runner = CliRunner()
    shown = runner.invoke(main, ["status", "dead@example.com", "--json"], catch_exceptions=False)
    status = json.loads(shown.output)
    assert status["sendable"]["overall"] is False
    assert [(e["type"], e["channel"]) for e in status["events"]] == [("hard_bounce", "esp")]
    human = runner.invoke(main, ["status", "dead@example.com"], catch_exceptions=False).output
    assert "hard_bounce" in human and "sendgrid webhook" in human


def test_sendgrid_groups_are_the_topics_that_stand_for_them(make_settings: MakeSettings) -> None:
    adieu = Adieu(make_settings(**SECRETS, sendgrid_groups="news=7"))
    hooks = Hooks(adieu)
    try:
        adieu.ledger.add_topic("news", "News")
        batch = [
            sg("group_unsubscribe", "ann@example.com", "g1", asm_group_id=7),
            sg("group_unsubscribe", "bob@example.com", "g2", asm_group_id=9),
        ]
        body = body_of(batch)
        assert hooks.post("sendgrid", body, sendgrid_headers(body)).json()["recorded"] == 2
        assert reasons_of(adieu, "ann@example.com") == {("news", "unsubscribe")}
        # A group Adieu cannot name: leaving it stops all marketing...
        assert reasons_of(adieu, "bob@example.com") == {(ALL, "unsubscribe")}
        batch = [
            sg("group_resubscribe", "ann@example.com", "g3", asm_group_id=7),
            sg("group_resubscribe", "bob@example.com", "g4", asm_group_id=9),
        ]
        body = body_of(batch)
        answer = hooks.post("sendgrid", body, sendgrid_headers(body)).json()
        assert answer == {"recorded": 1, "duplicates": 0, "ignored": 1, "malformed": 0}
        assert reasons_of(adieu, "ann@example.com") == set()
        # ...and coming back to it lifts nothing.
        assert reasons_of(adieu, "bob@example.com") == {(ALL, "unsubscribe")}
    finally:
        hooks.close()
        adieu.close()
