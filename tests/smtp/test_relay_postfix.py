"""The relay wired to Debian's Postfix as an operator would: a private Postfix
instance (``postfix_support``) is the upstream, with one virtual domain whose
unknown users it refuses at RCPT and whose known users get real Maildirs."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Iterator
from email import message_from_bytes, policy

import pytest
from relay_support import MESSAGE, Relay, make_app

from adieu.ledger import EventType, Reason
from adieu.service import Adieu
from conftest import MakeSettings
from postfix_support import PrivatePostfix, needs_postfix

pytestmark = needs_postfix


@pytest.fixture
def app(make_settings: MakeSettings) -> Iterator[Adieu]:
    adieu = make_app(make_settings)
    yield adieu
    adieu.close()


@pytest.fixture
def postfix() -> Iterator[PrivatePostfix]:
    # A short smtpd_timeout: Postfix says 421 and closes a kept connection
    # that idles longer, as it does after five minutes by default.
    with PrivatePostfix(
        mailboxes=["ann@example.net", "cat@example.net", "news@example.net"],
        main={"smtpd_timeout": "2s"},
    ) as mta:
        yield mta


@pytest.fixture
def relay(app: Adieu, postfix: PrivatePostfix) -> Iterator[Relay]:
    relay = Relay(app, postfix.port)
    yield relay
    relay.stop()


def test_postfix_refuses_an_unknown_user_the_others_get_the_mail_and_the_ledger_knows(
    app: Adieu, postfix: PrivatePostfix, relay: Relay
) -> None:
    with smtplib.SMTP("127.0.0.1", relay.port) as client:
        refused = client.sendmail(
            "news@example.net", ["ann@example.net", "bob@example.net", "cat@example.net"], MESSAGE
        )
    assert refused == {}, "answered 250: the client is not left retrying"
    for address in ("ann@example.net", "cat@example.net"):
        (delivered,) = postfix.wait_for(address)
        parsed = message_from_bytes(delivered, policy=policy.default)
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        url = str(parsed["List-Unsubscribe"]).strip("<>")
        assert app.codec.open(url.rsplit("/", 1)[1]).address == address
    assert not postfix.mailbox("bob@example.net").exists()
    bob = app.ledger.status("bob@example.net")
    assert [s.reason for s in bob.state.suppressions] == [Reason.HARD_BOUNCE]
    (bounce,) = bob.events
    assert bounce.type == EventType.HARD_BOUNCE
    details = bounce.details or {}
    assert (details["code"], details["status"]) == (550, "5.1.1")
    assert "User unknown" in details["diagnostic"]
    assert "bob@example.net" not in details["diagnostic"]
    assert "5.1.1" in postfix.log() and "bob@example.net" in postfix.log()
    # The sender heard of bob by mail, through Postfix, from the null sender.
    (report,) = postfix.wait_for("news@example.net")
    assert report.startswith(b"Return-Path: <>")
    parsed = message_from_bytes(report, policy=policy.default)
    assert parsed.get_content_type() == "multipart/report"
    assert b"Final-Recipient: rfc822; bob@example.net" in report
    assert b"ann@example.net" not in report.partition(b"text/rfc822-headers")[0]


def test_a_connection_postfix_closed_while_idle_costs_the_next_message_nothing(
    app: Adieu, postfix: PrivatePostfix, relay: Relay
) -> None:
    with smtplib.SMTP("127.0.0.1", relay.port) as client:
        client.sendmail("news@example.com", ["ann@example.net"], MESSAGE)
    postfix.wait_for("ann@example.net")
    time.sleep(3)  # past smtpd_timeout: Postfix says 421 and hangs up the kept connection
    assert "timeout after END-OF-MESSAGE" in postfix.log()
    second = MESSAGE.replace("<n1@example.com>", "<n2@example.com>")
    with smtplib.SMTP("127.0.0.1", relay.port) as client:
        assert client.sendmail("news@example.com", ["ann@example.net"], second) == {}
    assert len(postfix.wait_for("ann@example.net", 2)) == 2
    assert relay.handler.counts["upstream_failed"] == 0


def test_the_private_postfix_hands_a_routed_domain_to_a_pipe_transport() -> None:
    """The helper's other uses (inbound mail through a pipe or LMTP): a
    master.cf service and a transport_maps entry, added before start."""
    mta = PrivatePostfix()
    out = mta.shared_dir("piped")
    script = mta.shared_dir("bin") / "deliver.sh"
    script.write_text('#!/bin/sh\ncat > "$1"\n')
    script.chmod(0o755)
    mta.add_service(
        f"catch unix - n n - - pipe\n  flags=Rq user=nobody argv={script} {out}/${{queue_id}}"
    )
    mta.add_transport("pipe.example.net", "catch:")
    with mta:
        with smtplib.SMTP("127.0.0.1", mta.port) as client:
            client.sendmail("news@example.com", ["anyone@pipe.example.net"], MESSAGE)
        deadline = time.monotonic() + 30
        while not list(out.iterdir()):
            assert time.monotonic() < deadline, mta.log()[-2000:]
            time.sleep(0.1)
        (piped,) = out.iterdir()
        assert piped.read_bytes().startswith(b"Return-Path: <news@example.com>")
        assert piped.stat().st_uid != 0, "the pipe ran as nobody"
    assert mta.root is None, "stopped and removed"
