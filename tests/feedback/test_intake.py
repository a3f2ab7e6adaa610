"""Inbound mail: mailto unsubscribes, ARF complaints, DSN bounces.

The corpus below is written for these tests from the published formats
(RFC 5965 ARF, RFC 3464 DSN, the providers' documented report layouts and
the classic non-standard MTA bounces), each with the outcome it must have.

These run with the default trust (``ADIEU_INBOUND_TRUST=sent``): a report
without Adieu's token is about an address that was mailed, so each test
records that send first (``mailed``). What happens without one is in
test_trust.py.
"""

from __future__ import annotations

import json
import os
import re
import smtplib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from adieu.feedback.classify import bounce_kind
from adieu.feedback.intake import Intake
from adieu.ledger import EventType
from adieu.ledger import schema as t
from adieu.service import Adieu
from adieu.smtp.inbound import InboundHandler
from conftest import MakeSettings
from support import adieu_env, free_port


@pytest.fixture
def app(make_settings: MakeSettings) -> Iterator[Adieu]:
    adieu = Adieu(make_settings(mailto_domain="unsub.example.net"))
    yield adieu
    adieu.close()


def mailed(app: Adieu, *addresses: str) -> None:
    """Record a send to each address (so a report about it is trusted)."""
    app.ledger.record_sends(addresses, category="transactional")


def events(app: Adieu) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t.events)).scalar_one())


def original(app: Adieu, to: str, redact: bool = True) -> str:
    link = app.link(to, campaign="nov")
    shown = "redacted@example.com" if redact else to
    return (
        f"From: news@example.com\r\nTo: {shown}\r\nSubject: November news\r\n"
        f"List-Unsubscribe: <{link.url}>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        "Message-ID: <n1@example.com>\r\n\r\nHello.\r\n"
    )


def arf(
    feedback_type: str,
    original_message: str,
    extra: str = "",
    agent: str = "Yahoo!-Mail-Feedback/2.0",
) -> bytes:
    return (
        "From: feedback@arf.mail.yahoo.com\r\nTo: fbl@example.com\r\nSubject: FW: November news\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report;"
        ' boundary="arf"\r\n\r\n--arf\r\nContent-Type: text/plain\r\n\r\n'
        "This is an email abuse report.\r\n\r\n--arf\r\n"
        "Content-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: {feedback_type}\r\nUser-Agent: {agent}\r\nVersion: 1\r\n"
        "Arrival-Date: Fri, 27 Nov 2026 10:00:00 +0000\r\nSource-IP: 192.0.2.1\r\n"
        f"Reported-Domain: example.com\r\n{extra}\r\n--arf\r\nContent-Type: message/rfc822\r\n\r\n"
        f"{original_message}\r\n--arf--\r\n"
    ).encode()


def dsn(
    recipient: str,
    status: str,
    diagnostic: str,
    original_message: str = "",
    action: str = "failed",
    mta: str = "mx.example.org",
) -> bytes:
    returned = (
        "\r\n--dsn\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        + original_message.split("\r\n\r\n")[0]
        + "\r\n"
        if original_message
        else ""
    )
    return (
        "From: MAILER-DAEMON@mail.example.com (Mail Delivery System)\r\nTo: news@example.com\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="dsn"\r\n\r\n'
        "--dsn\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your message"
        " could not be delivered.\r\n\r\n--dsn\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mail.example.com\r\n"
        "Arrival-Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nOriginal-Recipient: rfc822; {recipient}\r\n"
        f"Action: {action}\r\nStatus: {status}\r\nRemote-MTA: dns; {mta}\r\n"
        f"Diagnostic-Code: smtp; {diagnostic}\r\n{returned}\r\n--dsn--\r\n"
    ).encode()


def test_yahoo_arf_finds_the_recipient_from_our_token_despite_redaction(app: Adieu) -> None:
    result = Intake(app).process(arf("abuse", original(app, "ann@example.org")))
    assert result.applied == [("complaint", "a•••@example.org")]
    assert app.policy.may_send("ann@example.org").reason == "complaint"
    (event,) = app.ledger.history("ann@example.org")
    assert event.campaign == "nov" and event.details["recipient_from"] == "token"  # type: ignore[index]
    assert event.details["user-agent"].startswith("Yahoo")  # type: ignore[index]


def test_microsoft_jmrp_uses_original_rcpt_to(app: Adieu) -> None:
    plain = "From: news@example.com\r\nTo: someone@example.com\r\nSubject: x\r\n\r\nhi\r\n"
    data = arf(
        "abuse",
        plain,
        "Original-Rcpt-To: bob@outlook.example\r\n",
        agent="Microsoft Junk Mail Reporting Program",
    )
    mailed(app, "bob@outlook.example")
    assert Intake(app).process(data).applied == [("complaint", "b•••@outlook.example")]
    assert not app.policy.is_sendable("bob@outlook.example")


def test_not_spam_is_recorded_but_changes_nothing(app: Adieu) -> None:
    Intake(app).process(arf("not-spam", original(app, "ann@example.org")))
    assert app.policy.is_sendable("ann@example.org")
    assert [e.type for e in app.ledger.history("ann@example.org")] == [EventType.NOT_SPAM]


def test_fully_redacted_complaint_is_kept_for_review_not_guessed(app: Adieu) -> None:
    plain = "From: news@example.com\r\nTo: redacted\r\nSubject: x\r\n\r\nhi\r\n"
    result = Intake(app).process(arf("abuse", plain))
    assert result.review_id is not None and events(app) == 0
    assert app.ledger.review_items()[0][3].startswith("unknown")


@pytest.mark.parametrize(
    ("status", "diagnostic", "kind", "sendable"),
    [
        (
            "5.1.1",
            "550 5.1.1 <dave@example.org>: Recipient address rejected: User unknown",
            "hard_bounce",
            False,
        ),
        ("5.1.2", "550 5.1.2 Host or domain name not found", "hard_bounce", False),
        (
            "5.2.1",
            "550 5.2.1 The email account that you tried to reach is disabled",
            "hard_bounce",
            False,
        ),
        (
            "5.7.1",
            "550 5.7.1 Service unavailable; client host blocked using Spamhaus",
            "rejection",
            True,
        ),
        (
            "5.7.26",
            "550 5.7.26 Unauthenticated email is not accepted: DMARC policy",
            "rejection",
            True,
        ),
        ("5.0.0", "550 Message rejected due to content restrictions", "rejection", True),
        ("4.2.2", "452 4.2.2 Mailbox full", "soft_bounce", True),
        ("5.2.2", "552 5.2.2 The email account is over quota", "soft_bounce", True),
    ],
    ids=[
        "user-unknown",
        "no-domain",
        "disabled",
        "blocklist",
        "dmarc",
        "content",
        "full-4xx",
        "quota-5xx",
    ],
)
def test_dsn_hard_soft_or_the_senders_fault(
    app: Adieu, status: str, diagnostic: str, kind: str, sendable: bool
) -> None:
    mailed(app, "dave@example.org")
    result = Intake(app).process(dsn("dave@example.org", status, diagnostic))
    assert [k for k, _ in result.applied] == [kind]
    assert app.policy.is_sendable("dave@example.org", category="transactional") is sendable


def test_dsn_recipient_comes_from_our_token_first(app: Adieu) -> None:
    data = dsn(
        "alias@forwarder.example",
        "5.1.1",
        "550 5.1.1 user unknown",
        original(app, "erin@example.org", redact=False),
    )
    assert Intake(app).process(data).applied == [("hard_bounce", "e•••@example.org")]


def test_soft_bounces_turn_hard_at_the_limit(app: Adieu) -> None:
    mailed(app, "fay@example.org")
    for _ in range(3):
        Intake(app).process(
            dsn("fay@example.org", "4.2.2", "452 4.2.2 Mailbox full", action="delayed")
        )
    assert app.policy.may_send("fay@example.org", category="transactional").reason == "hard_bounce"


def test_auto_replies_are_ignored(app: Adieu) -> None:
    reply = (
        b"From: ann@example.org\r\nTo: news@example.com\r\nAuto-Submitted: auto-replied\r\n"
        b"Subject: Out of office\r\n\r\nI am away until Monday.\r\n"
    )
    result = Intake(app).process(reply)
    assert result.classification.kind == "auto_reply" and events(app) == 0


def test_mailto_unsubscribe(app: Adieu) -> None:
    token = app.link("ivy@example.org").token
    by_address = (
        f"From: ivy@example.org\r\nTo: unsubscribe+{token}@unsub.example.net\r\n"
        "Subject: unsubscribe\r\n\r\n"
    )
    assert Intake(app).process(by_address.encode()).applied == [("mailto", "i•••@example.org")]
    (event,) = app.ledger.history("ivy@example.org")
    assert event.channel.value == "mailto"
    token2 = app.link("jo@example.org").token
    by_subject = (
        f"From: jo@example.org\r\nTo: list@example.com\r\nSubject: unsubscribe {token2}\r\n\r\n"
    )
    assert Intake(app).process(by_subject.encode()).applied == [("mailto", "j•••@example.org")]
    tampered = by_address.replace(token, token[:-4] + "AAAA")
    result = Intake(app).process(tampered.encode())
    assert result.applied == [] and result.review_id is not None


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.one_of(
        st.binary(max_size=2000),
        st.builds(
            lambda a, b: a + b,
            st.sampled_from(
                [
                    dsn("x@example.org", "5.1.1", "user unknown"),
                    arf("abuse", "To: a@b.example\r\n\r\nx"),
                ]
            ),
            st.binary(max_size=200),
        ),
    )
)
def test_junk_never_crashes_and_changes_nothing_without_a_recipient(app: Adieu, raw: bytes) -> None:
    before = events(app)
    result = Intake(app).process(raw)
    if not result.applied:  # at most an unverified event per untrusted finding
        assert events(app) == before + len(result.unverified)


def test_pipe_transport_exit_codes(app: Adieu, tmp_path: Path) -> None:
    env = adieu_env(app.settings)
    mailed(app, "kim@example.org")
    cmd = [sys.executable, "-m", "adieu", "inbound", "-"]
    done = subprocess.run(
        cmd,
        input=dsn("kim@example.org", "5.1.1", "550 5.1.1 user unknown"),
        env=env,
        capture_output=True,
    )
    assert done.returncode == 0 and b"hard_bounce\tk" in done.stdout
    junk = subprocess.run(cmd, input=b"", env=env, capture_output=True)
    assert junk.returncode == 0 and b"Kept for review" in junk.stdout  # never bounced
    listed = subprocess.run(
        [sys.executable, "-m", "adieu", "inbound", "list-unknown"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert "unusable" in listed.stdout
    broken = dict(env, ADIEU_DATABASE_URL=f"sqlite:///{tmp_path}/no/such/dir/x.db")
    os.makedirs(tmp_path / "no", exist_ok=True)
    (tmp_path / "no" / "such").write_text("a file where a directory should be")
    later = subprocess.run(
        cmd, input=dsn("kim@example.org", "5.1.1", "user unknown"), env=broken, capture_output=True
    )
    assert later.returncode == 75, later.stderr


def test_smtp_listener_end_to_end(app: Adieu) -> None:
    mailed(app, "lee@example.org")
    controller = Controller(InboundHandler(Intake(app)), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        with smtplib.SMTP("127.0.0.1", controller.port) as client:
            client.sendmail(
                "",
                ["bounces@example.com"],
                dsn("lee@example.org", "5.1.1", "550 5.1.1 user unknown"),
            )
            token = app.link("max@example.org").token
            client.sendmail(
                "max@example.org",
                [f"unsubscribe+{token}@unsub.example.net"],
                b"From: max@example.org\r\nSubject: unsubscribe\r\n\r\n",
            )
    finally:
        controller.stop()
    assert not app.policy.is_sendable("lee@example.org", category="transactional")
    assert app.policy.may_send("max@example.org").reason == "unsubscribed"


def test_bounce_kind_rules() -> None:
    assert bounce_kind("5.1.1", "") == "hard_bounce"
    assert bounce_kind("5.7.1", "") == "rejection"  # a policy code alone is the sender's side
    assert bounce_kind("5.7.1", "blocked using zen.spamhaus.org") == "rejection"
    assert bounce_kind("5.7.1", "Recipient address rejected: user unknown") == "hard_bounce"
    assert bounce_kind("5.1.1", "Client host [192.0.2.1] blocked using a blocklist") == "rejection"
    assert bounce_kind("4.4.1", "") == "soft_bounce"
    assert bounce_kind("", "550 sorry, something odd") == "rejection"


CORPUS = Path(__file__).parent / "corpus" / "inbound"
EXPECTED = json.loads((CORPUS / "expected.json").read_text())
CORPUS_ADDRESSES = sorted({e["address"] for e in EXPECTED.values() if "address" in e})
_PLACEHOLDER = re.compile(r"\{\{(URL|TOKEN):([^}]+)\}\}")


def corpus_message(app: Adieu, name: str) -> bytes:
    text = (CORPUS / name).read_bytes().decode("utf-8", "surrogateescape")

    def fill(match: re.Match[str]) -> str:
        link = app.link(match.group(2), campaign="nov")
        return link.url if match.group(1) == "URL" else link.token

    text = _PLACEHOLDER.sub(fill, text)
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8", "surrogateescape")


def _check(app: Adieu, name: str, reviewed_before: int) -> None:
    expected = EXPECTED[name]
    reviewed = len(app.ledger.review_items())
    if expected["kind"] == "review":
        assert reviewed == reviewed_before + 1, name
        assert events(app) == 0, name
        return
    assert reviewed == reviewed_before, name
    if expected["kind"] == "ignored":
        assert events(app) == 0, name
        return
    address = expected["address"]
    assert app.policy.is_sendable(address) is expected["marketing"], name
    assert app.policy.is_sendable(address, category="transactional") is expected["transactional"], (
        name
    )
    last = app.ledger.history(address)[-1]
    assert (last.type.value, last.channel.value) == (expected["event"], expected["channel"]), name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_through_the_library(app: Adieu, name: str) -> None:
    mailed(app, *CORPUS_ADDRESSES)
    Intake(app).process(corpus_message(app, name))
    _check(app, name, 0)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_through_the_smtp_listener(app: Adieu, name: str) -> None:
    mailed(app, *CORPUS_ADDRESSES)
    controller = Controller(InboundHandler(Intake(app)), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        with smtplib.SMTP("127.0.0.1", controller.port) as client:
            client.sendmail("", ["reports@example.com"], corpus_message(app, name))
    finally:
        controller.stop()
    _check(app, name, 0)


@pytest.mark.parametrize("trust", ["token", "sent"])
def test_corpus_without_a_send_applies_only_what_carries_a_token(
    make_settings: MakeSettings, trust: str
) -> None:
    """No send recorded: what names its recipient only in the report changes
    nothing, is an unverified event and is kept for review."""
    app = Adieu(make_settings(mailto_domain="unsub.example.net", inbound_trust=trust))
    try:
        for name, expected in sorted(EXPECTED.items()):
            if expected.get("proof") != "report":
                continue
            before = len(app.ledger.review_items())
            result = Intake(app).process(corpus_message(app, name))
            address = expected["address"]
            assert result.applied == [], name
            assert [k for k, _ in result.unverified] == [expected["kind"]], name
            assert app.policy.is_sendable(address, category="transactional"), name
            assert app.policy.is_sendable(address), name
            (event,) = app.ledger.history(address)
            assert (event.type.value, event.channel.value) == ("unverified", expected["channel"])
            assert event.details["finding"] == expected["kind"], name  # type: ignore[index]
            items = app.ledger.review_items()
            assert len(items) == before + 1, name
            assert items[0][3].startswith(f"unverified: {expected['kind']} for "), name
            assert address not in items[0][3], "the note masks the address"
        for name, expected in sorted(EXPECTED.items()):
            if expected.get("proof") == "token":
                before = len(app.ledger.review_items())
                Intake(app).process(corpus_message(app, name))
                _check(app, name, before)
    finally:
        app.close()


def test_corpus_through_the_pipe_and_adieu_status(app: Adieu, tmp_path: Path) -> None:
    env = adieu_env(app.settings)
    mailed(app, *CORPUS_ADDRESSES)
    for name in sorted(EXPECTED):
        done = subprocess.run(
            [sys.executable, "-m", "adieu", "inbound", "-"],
            input=corpus_message(app, name),
            env=env,
            capture_output=True,
        )
        assert done.returncode == 0, (name, done.stderr)
    status = subprocess.run(
        [sys.executable, "-m", "adieu", "status", "erin@example.org", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    data = json.loads(status)
    assert data["reasons"]["all"] == "hard_bounce"
    assert [(e["type"], e["channel"]) for e in data["events"]] == [("hard_bounce", "bounce")]
    kept = len(app.ledger.review_items())
    assert kept == sum(1 for e in EXPECTED.values() if e["kind"] == "review")


def test_the_inbound_listener_command_speaks_lmtp(app: Adieu, tmp_path: Path) -> None:
    from support import wait_for_port

    port = free_port()
    env = adieu_env(app.settings)
    mailed(app, "frank@gmail.example")
    proc = subprocess.Popen(
        [sys.executable, "-m", "adieu", "inbound", "--listen", f"127.0.0.1:{port}", "--lmtp"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc)
        with smtplib.LMTP("127.0.0.1", port) as client:
            client.sendmail(
                "", ["reports@example.com"], corpus_message(app, "gmail-dsn-no-such-user.eml")
            )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert not app.policy.is_sendable("frank@gmail.example", category="transactional")


def test_verp_return_path_names_the_recipient(app: Adieu) -> None:
    data = dsn("alias@forwarder.example", "5.1.1", "550 5.1.1 user unknown")
    mailed(app, "lou@example.org")
    result = Intake(app).process(data, ["bounces+lou=example.org@example.com"])
    assert result.applied == [("hard_bounce", "l•••@example.org")]
    assert app.policy.is_sendable("alias@forwarder.example", category="transactional")
