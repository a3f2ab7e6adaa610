"""Compact tokens at inbound: mailto addresses and per-recipient return paths
whose local part fits in 64 octets and survives case folding.

A compact token names its recipient by the first bytes of their keyed hash;
``Intake`` resolves it with the ledger (or an address the message names) and
then trusts it as it trusts a full token. Every test runs on SQLite and, when
``ADIEU_TEST_DATABASE_URL`` is set, on PostgreSQL.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from adieu import keys
from adieu.cli import main
from adieu.feedback.classify import classify
from adieu.feedback.intake import Intake
from adieu.ledger import Channel, EventType
from adieu.mail.stamper import Stamper
from adieu.service import Adieu
from adieu.tokens import RETURN_PATH, CompactPayload, TokenCodec
from conftest import MakeSettings
from support import adieu_env

UNSUB = "unsub.example.net"
BOUNCES = "bounces.example.com"


@pytest.fixture
def make_app(make_settings: MakeSettings) -> Iterator[Callable[..., Adieu]]:
    made: list[Adieu] = []

    def make(**settings: Any) -> Adieu:
        values = {"mailto_domain": UNSUB, "bounce_domain": BOUNCES, **settings}
        app = Adieu(make_settings(**values))
        made.append(app)
        return app

    yield make
    for app in made:
        app.close()


@pytest.fixture
def app(make_app: Callable[..., Adieu]) -> Adieu:
    return make_app(inbound_trust="token")  # only a token may change anything


def compact_of(app: Adieu, address: str, **kw: str) -> str:
    """The compact token in the mailto of ``address``'s link."""
    link = app.link(address, **kw)
    assert link.compact is not None
    assert f"<mailto:unsubscribe+{link.compact}@{UNSUB}>" in link.headers["List-Unsubscribe"]
    return link.compact


def mailto(sender: str, to: str) -> bytes:
    return f"From: {sender}\r\nTo: {to}\r\nSubject: unsubscribe\r\n\r\n".encode()


def dsn(*blocks: tuple[str, str, str], original: str = "") -> bytes:
    """A DSN with one block per (recipient, status, diagnostic)."""
    sections = "".join(
        f"\r\nFinal-Recipient: rfc822; {who}\r\nAction: failed\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; {diagnostic}\r\n"
        for who, status, diagnostic in blocks
    )
    returned = (
        f"\r\n--dsn\r\nContent-Type: text/rfc822-headers\r\n\r\n{original}\r\n" if original else ""
    )
    return (
        "From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\r\n"
        "To: bounces@example.com\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="dsn"\r\n\r\n'
        "--dsn\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n"
        "--dsn\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.example.org\r\n{sections}{returned}\r\n--dsn--\r\n"
    ).encode()


def arf(original: str) -> bytes:
    return (
        "From: fbl@isp.example\r\nTo: fbl@example.com\r\nSubject: complaint\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report;"
        ' boundary="arf"\r\n\r\n--arf\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n'
        "\r\n--arf\r\nContent-Type: message/feedback-report\r\n\r\n"
        "Feedback-Type: abuse\r\nUser-Agent: Generator/1.0\r\nVersion: 1\r\n"
        "\r\n--arf\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"{original}\r\n--arf--\r\n"
    ).encode()


def untouched(app: Adieu, address: str) -> bool:
    status = app.ledger.status(address)
    return status.state.suppressions == () and status.soft_bounces == 0 and not status.events


USER_UNKNOWN = ("5.1.1", "550 5.1.1 user unknown")


# -- mailto --------------------------------------------------------------------------------


@pytest.mark.parametrize("fold", [str.upper, str.lower], ids=["upper", "lower"])
def test_a_mailto_to_a_compact_address_unsubscribes_its_person(
    app: Adieu, fold: Callable[[str], str]
) -> None:
    app.ledger.add_topic("news", "News")
    app.ledger.record_send("jane@example.org", topic="news", campaign="2026-11")
    app.ledger.record_send("bob@example.org")
    token = compact_of(app, "Jane@Example.org", topic="news", campaign="2026-11")
    address = fold(f"unsubscribe+{token}@{UNSUB}")  # an MTA folded its case
    # written from another mailbox (a forward): the token decides who leaves
    result = Intake(app).process(mailto("bob@example.org", address), [address])
    assert result.applied == [("mailto", "j•••@example.org")]
    (left,) = app.ledger.history("jane@example.org")
    assert (left.type, left.channel.value, left.scope, left.campaign) == (
        EventType.UNSUBSCRIBE,
        "mailto",
        "news",
        "2026-11",
    )
    assert app.policy.may_send("jane@example.org", topic="news").reason == "topic_opt_out"
    assert app.policy.is_sendable("jane@example.org")  # only the topic
    assert app.policy.is_sendable("bob@example.org", topic="news")
    assert app.ledger.review_items() == []


def test_a_mailto_from_a_link_with_no_ledger_write_resolves_by_its_sender(app: Adieu) -> None:
    token = compact_of(app, "ivy@example.org")  # nobody is in the ledger yet
    raw = mailto("Ivy <IVY@example.org>", f"unsubscribe+{token}@{UNSUB}")
    (finding,) = classify(raw, app.codec).findings
    assert isinstance(finding.token, CompactPayload) and finding.address == ""
    result = Intake(app).process(raw)
    assert result.applied == [("mailto", "i•••@example.org")]
    assert app.policy.may_send("ivy@example.org").reason == "unsubscribed"


def test_a_compact_mailto_that_names_nobody_known_is_kept_for_review(app: Adieu) -> None:
    token = compact_of(app, "ghost@example.org")
    raw = mailto("someone@example.org", f"unsubscribe+{token}@{UNSUB}")
    result = Intake(app).process(raw)
    assert (result.applied, result.unverified, result.unresolved) == ([], [], ["mailto"])
    note = "unresolved: mailto: a compact token that names no known contact"
    assert result.review_note == note
    assert [item[3] for item in app.ledger.review_items()] == [note]
    for address in ("ghost@example.org", "someone@example.org"):
        assert untouched(app, address)


def test_a_compact_mailto_for_a_topic_not_known_is_kept_for_review(app: Adieu) -> None:
    app.ledger.record_send("jane@example.org")
    token = app.codec.mint_compact(app.hasher.hash("jane@example.org"), "gone")
    result = Intake(app).process(mailto("jane@example.org", f"unsubscribe+{token}@{UNSUB}"))
    assert result.applied == [] and "a topic that is not known" in result.review_note
    assert app.policy.is_sendable("jane@example.org")


def test_forged_and_tampered_compact_tokens_change_nothing(app: Adieu) -> None:
    app.ledger.record_send("jane@example.org")
    token = compact_of(app, "jane@example.org")
    flipped = token[:20] + ("a" if token[20] != "a" else "b") + token[21:]
    foreign = TokenCodec({1: os.urandom(32)}).mint_compact(app.hasher.hash("jane@example.org"))
    return_path = app.return_path("jane@example.org")
    assert return_path is not None
    bounce_token = return_path.split("+")[1].split("@")[0]
    for bad in (flipped, foreign, token[:-1], token + "a", bounce_token):
        address = f"unsubscribe+{bad}@{UNSUB}"
        result = Intake(app).process(mailto("jane@example.org", address), [address])
        assert result.applied == [], bad
    for bad in (flipped, foreign):
        result = Intake(app).process(
            dsn(("jane@example.org", *USER_UNKNOWN)), [f"bounces+{bad}@{BOUNCES}"]
        )
        assert result.applied == [] and result.unverified == [("hard_bounce", "j•••@example.org")]
    assert app.policy.is_sendable("jane@example.org", category="transactional")
    assert app.ledger.status("jane@example.org").state.suppressions == ()


def test_erased_people_stay_erased(app: Adieu) -> None:
    app.ledger.record_send("jane@example.org")
    token = compact_of(app, "jane@example.org")
    app.ledger.erase("jane@example.org", channel=Channel.CLI)
    result = Intake(app).process(mailto("jane@example.org", f"unsubscribe+{token}@{UNSUB}"))
    assert (result.applied, result.review_id) == ([], None)
    assert app.ledger.review_items() == []


def test_key_rotation_keeps_compact_addresses_working(make_app: Callable[..., Adieu]) -> None:
    app = make_app(inbound_trust="token")
    app.ledger.record_send("jane@example.org")
    old = compact_of(app, "jane@example.org")
    keys.rotate(app.settings.key_path)
    rotated = make_app(inbound_trust="token")
    new = compact_of(rotated, "bob@example.org")
    assert rotated.codec.open_compact(new).key_id == 2
    assert rotated.codec.open_compact(old).key_id == 1
    rotated.ledger.record_send("bob@example.org")
    for token, who in ((old, "j•••@example.org"), (new, "b•••@example.org")):
        result = Intake(rotated).process(mailto("x@example.net", f"unsubscribe+{token}@{UNSUB}"))
        assert result.applied == [("mailto", who)]


# -- return paths ---------------------------------------------------------------------------


def test_return_path_is_a_short_per_recipient_address(make_app: Callable[..., Adieu]) -> None:
    app = make_app()
    app.ledger.add_topic("t" * 64, "Long")
    path = app.return_path("Erin@Example.org", "t" * 64, "c" * 100)
    assert path is not None
    local, _, domain = path.rpartition("@")
    assert domain == BOUNCES and local.startswith("bounces+") and len(local) <= 64
    token = app.codec.open_compact(local.removeprefix("bounces+"))
    assert token.purpose == RETURN_PATH
    assert token.names(app.hasher.hash("erin@example.org"))
    assert token.names_topic("t" * 64) and token.names_campaign("c" * 100)
    assert app.return_path("erin@example.org") != path  # the topic and campaign are in it
    assert make_app(bounce_domain=None).return_path("erin@example.org") is None


@pytest.mark.parametrize("fold", [str.upper, str.lower, str], ids=["upper", "lower", "as-is"])
def test_a_dsn_to_a_compact_return_path_names_its_person_not_the_alias(
    app: Adieu, fold: Callable[[str], str]
) -> None:
    app.ledger.record_send("erin@example.org", campaign="2026-11")  # as the relay does
    path = app.return_path("erin@example.org", campaign="2026-11")
    assert path is not None
    raw = dsn(("alias@forwarder.example", *USER_UNKNOWN))
    result = Intake(app).process(raw, [fold(f"<{path}>")])
    assert result.applied == [("hard_bounce", "e•••@example.org")]
    decision = app.policy.may_send("erin@example.org", category="transactional")
    assert decision.reason == "hard_bounce"
    bounce = app.ledger.history("erin@example.org")[-1]
    assert bounce.campaign == "2026-11" and bounce.details is not None
    assert (bounce.details["trusted_by"], bounce.details["recipient_from"]) == (
        "token",
        "return-path-token",
    )
    assert untouched(app, "alias@forwarder.example")


def test_the_pipe_reads_the_return_path_from_recipient(app: Adieu) -> None:
    app.ledger.record_send("erin@example.org")
    path = app.return_path("erin@example.org")
    assert path is not None
    env = adieu_env(app.settings, mailto_domain=UNSUB, bounce_domain=BOUNCES, inbound_trust="token")
    done = CliRunner().invoke(
        main,
        ["inbound", "-", "--recipient", path.upper()],
        input=dsn(("alias@forwarder.example", *USER_UNKNOWN)),
        env=env,
        catch_exceptions=False,
    )
    assert done.exit_code == 0 and done.output == "hard_bounce\te•••@example.org\n"
    assert untouched(app, "alias@forwarder.example")


@pytest.mark.parametrize("kind", ["full", "compact"])
def test_one_report_counts_once_for_one_person(app: Adieu, kind: str) -> None:
    """A DSN to one person's return path that lists their message twice (an
    alias that expanded to two mailboxes, both full) is one soft bounce, not two."""
    app.ledger.record_send("fay@example.org")
    token = (
        app.link("fay@example.org").token
        if kind == "full"
        else str(app.return_path("fay@example.org")).split("+")[1].split("@")[0]
    )
    full = ("4.2.2", "452 4.2.2 Mailbox full")
    raw = dsn(("fay@home.example", *full), ("fay@work.example", *full))
    result = Intake(app).process(raw, [f"bounces+{token}@{BOUNCES}"])
    assert result.applied == [("soft_bounce", "f•••@example.org")]
    assert app.ledger.status("fay@example.org").soft_bounces == 1


# -- a stamped original -----------------------------------------------------------------------


def test_a_stamped_original_counts_its_tokens_once(make_app: Callable[..., Adieu]) -> None:
    """The stamp carries the full token (the link, the footer) and the compact
    one (the mailto, CFBL-Feedback-ID): together they name one person."""
    app = make_app(inbound_trust="token", complaint_address="fbl@example.com")
    app.ledger.add_topic("news", "News")
    app.ledger.record_send("erin@example.org", topic="news", campaign="nov")
    sent = (
        b"From: news@example.com\r\nTo: erin@example.org\r\nSubject: News\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nHello.\r\n"
    )
    stamped = Stamper(app).stamp(sent, "erin@example.org", topic="news", campaign="nov")
    headers = stamped.split(b"\r\n\r\n", 1)[0].decode()
    assert "unsubscribe+" in headers and "CFBL-Feedback-ID: " in headers and "/u/" in headers
    (finding,) = classify(arf(headers), app.codec).findings
    assert finding.address == "erin@example.org"  # the full token, not the compact copies
    assert Intake(app).process(arf(headers)).applied == [("complaint", "e•••@example.org")]
    # a provider that strips the links and the mailto: CFBL-Feedback-ID still names them
    stripped = "\r\n".join(
        line
        for line in headers.split("\r\n")
        if not line.startswith(("List-Unsubscribe", " <", "To:"))
    )
    assert "/u/" not in stripped and "unsubscribe+" not in stripped
    result = Intake(app).process(arf(stripped))
    assert result.applied == [("complaint", "e•••@example.org")]
    complaint = app.ledger.history("erin@example.org")[-1]
    assert complaint.campaign == "nov" and complaint.details is not None
    assert complaint.details["trusted_by"] == "token"


def test_compact_tokens_for_two_people_name_nobody(app: Adieu) -> None:
    app.ledger.record_sends(["ann@example.org", "bob@example.org"])
    two = (
        f"CFBL-Feedback-ID: {compact_of(app, 'ann@example.org')}\r\n"
        f"X-Copy: unsubscribe+{compact_of(app, 'bob@example.org')}@{UNSUB}"
    )
    raw = arf(two)
    assert classify(raw, app.codec).kind == "unknown"
    assert Intake(app).process(raw).applied == []
    assert untouched(app, "ann@example.org") and untouched(app, "bob@example.org")


# -- the ledger read ------------------------------------------------------------------------


def test_contacts_by_hash_prefix(app: Adieu) -> None:
    ledger, hasher = app.ledger, app.hasher
    people = [f"p{i}@example.org" for i in range(40)]
    ledger.record_sends(people)
    for person in people:
        digest = hasher.hash(person)
        assert ledger.contacts_by_hash_prefix(digest[:8]) == [(digest, person)]
    ledger.erase(people[0], channel=Channel.CLI)
    gone = hasher.hash(people[0])
    assert ledger.contacts_by_hash_prefix(gone[:8]) == [(gone, None)]
    assert ledger.contacts_by_hash_prefix(hasher.hash("nobody@example.org")[:8]) == []
    assert len(ledger.contacts_by_hash_prefix(b"", limit=5)) == 5
    top = ledger.contacts_by_hash_prefix(b"\xff" * 8)  # the end of the range
    assert all(digest.startswith(b"\xff" * 8) for digest, _ in top)
