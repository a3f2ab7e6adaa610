"""Authenticated return paths through the relay: with ``ADIEU_BOUNCE_DOMAIN``
each copy leaves with its own envelope sender, ``bounces+TOKEN@`` that domain,
so a bounce names its recipient exactly (behind an alias too) and a forged
one names nobody."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from relay_support import MESSAGE, Relay, Sink, make_app, relay_running, start_sink

from adieu.feedback.intake import Intake
from adieu.ledger import EventType, Reason
from adieu.service import Adieu
from conftest import MakeSettings

BOUNCES = "bounces.example.com"


@pytest.fixture
def app(make_settings: MakeSettings) -> Iterator[Adieu]:
    adieu = make_app(make_settings, bounce_domain=BOUNCES, inbound_trust="token")
    yield adieu
    adieu.close()


@pytest.fixture
def sink() -> Iterator[tuple[Sink, Controller]]:
    handler, controller = start_sink()
    yield handler, controller
    controller.stop()


@pytest.fixture
def relay(app: Adieu, sink: tuple[Sink, Controller]) -> Iterator[Relay]:
    yield from relay_running(app, sink[1].port)


def dsn(final_recipient: str) -> bytes:
    """What a mailbox provider returns when ``final_recipient`` is unknown
    (an alias's target, not the address the relay sent to)."""
    return (
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n"
        "To: whoever@example.com\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {final_recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n--b--\r\n"
    ).encode()


def sent(app: Adieu, relay: Relay) -> None:
    """Wait until the relay's sends are in the ledger (written in batches)."""
    relay.handler.book.close()
    assert app.ledger.sent_since("ann@example.org", app.ledger.now() - timedelta(hours=1))


def return_paths(sink: Sink) -> dict[str, str]:
    return {rcpts[0]: mail_from for mail_from, rcpts, _ in sink.messages}


def test_each_copy_leaves_with_its_own_return_path_naming_its_recipient(
    app: Adieu, relay: Relay, sink: tuple[Sink, Controller]
) -> None:
    with smtplib.SMTP("127.0.0.1", relay.port) as client:
        client.sendmail("news@example.com", ["ann@example.org", "bob@example.org"], MESSAGE)
    paths = return_paths(sink[0])
    assert sorted(paths) == ["ann@example.org", "bob@example.org"]
    assert paths["ann@example.org"] != paths["bob@example.org"]
    for recipient, path in paths.items():
        local, _, domain = path.rpartition("@")
        assert domain == BOUNCES and local.startswith("bounces+") and len(local) <= 64
        assert "example.org" not in local, "the address is not in the clear"
        token = app.codec.open_compact(local.removeprefix("bounces+"))
        assert token.names(app.hasher.hash(recipient))
        assert token.names_campaign("nov")


def test_a_bounce_to_a_return_path_suppresses_its_recipient_not_the_alias(
    app: Adieu, relay: Relay, sink: tuple[Sink, Controller]
) -> None:
    with smtplib.SMTP("127.0.0.1", relay.port) as client:
        client.sendmail("news@example.com", ["ann@example.org", "bob@example.org"], MESSAGE)
    path = return_paths(sink[0])["bob@example.org"]
    sent(app, relay)
    # bob@example.org forwards to an address that no longer exists; the DSN
    # names only that one, and comes back to bob's return path (case folded).
    result = Intake(app).process(dsn("robert@old-job.example"), [path.upper()])
    assert result.applied == [("hard_bounce", "b•••@example.org")]
    bob = app.ledger.status("bob@example.org")
    assert [s.reason for s in bob.state.suppressions] == [Reason.HARD_BOUNCE]
    assert bob.events[-1].campaign == "nov"
    assert app.ledger.status("ann@example.org").state.suppressions == ()
    assert not app.ledger.status("robert@old-job.example").events


def test_a_forged_return_path_changes_nothing(
    app: Adieu, relay: Relay, sink: tuple[Sink, Controller]
) -> None:
    with smtplib.SMTP("127.0.0.1", relay.port) as client:
        client.sendmail("news@example.com", ["ann@example.org"], MESSAGE)
    path = return_paths(sink[0])["ann@example.org"]
    sent(app, relay)
    local, _, domain = path.rpartition("@")
    last = local[-1]
    forged = f"{local[:-1]}{'b' if last == 'a' else 'a'}@{domain}"
    for envelope in ([forged], ["bounces@" + BOUNCES]):
        result = Intake(app).process(dsn("ann@example.org"), envelope)
        assert result.applied == []
    ann = app.ledger.status("ann@example.org")
    assert ann.state.suppressions == ()
    assert all(e.type != EventType.HARD_BOUNCE for e in ann.events)


def test_the_null_sender_stays_null_and_without_the_setting_the_sender_is_kept(
    make_settings: MakeSettings, app: Adieu, relay: Relay, sink: tuple[Sink, Controller]
) -> None:
    with smtplib.SMTP("127.0.0.1", relay.port) as client:
        client.sendmail("<>", ["ann@example.org"], MESSAGE)
    assert return_paths(sink[0]) == {"ann@example.org": "<>"}
    plain = Adieu(make_settings(dkim_domain="example.com", dkim_selector="s1"))
    try:
        for running in relay_running(plain, sink[1].port):
            with smtplib.SMTP("127.0.0.1", running.port) as client:
                client.sendmail("news@example.com", ["cat@example.org"], MESSAGE)
    finally:
        plain.close()
    assert return_paths(sink[0])["cat@example.org"] == "news@example.com"
