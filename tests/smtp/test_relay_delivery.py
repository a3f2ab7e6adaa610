"""What the relay does when the upstream says no, hangs up or cannot take a
copy, and how each recipient's copy is delivered exactly once: across retries,
workers and restarts (the memory is in the ledger's database)."""

from __future__ import annotations

import base64
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from aiosmtpd.controller import Controller
from relay_support import MESSAGE, Relay, Sink, make_app, relay_running, start_sink

from adieu.feedback.classify import classify
from adieu.ledger import Channel, EventType, Reason
from adieu.secret import Secret
from adieu.service import Adieu
from adieu.smtp.relay import RelayHandler, parse_networks
from conftest import MakeSettings
from support import adieu_env, free_port, self_signed, wait_for_port


@pytest.fixture
def app(make_settings: MakeSettings) -> Iterator[Adieu]:
    adieu = make_app(make_settings)
    yield adieu
    adieu.close()


@pytest.fixture(params=[False, True], ids=["", "pipelining"])
def sink(request: pytest.FixtureRequest) -> Iterator[tuple[Sink, Controller]]:
    # Every test twice: an upstream that offers PIPELINING gets MAIL, RCPT
    # and DATA in one write, and must come to the same.
    handler, controller = start_sink(pipelining=request.param)
    yield handler, controller
    controller.stop()


@pytest.fixture
def relay(app: Adieu, sink: tuple[Sink, Controller]) -> Iterator[Relay]:
    yield from relay_running(app, sink[1].port)


def send(port: int, recipients: list[str], message: str | bytes = MESSAGE, **kw: Any) -> Any:
    with smtplib.SMTP("127.0.0.1", port) as client:
        return client.sendmail("news@example.com", recipients, message, **kw)


def events_of(app: Adieu, address: str) -> list[Any]:
    return [e for e in app.ledger.history(address) if e.type != EventType.UNSUBSCRIBE]


# -- a permanent refusal is per recipient -----------------------------------------------


def test_a_recipient_the_upstream_does_not_know_is_recorded_and_the_others_delivered(
    app: Adieu, relay: Relay, sink: tuple[Sink, Controller]
) -> None:
    sink[0].rcpt_replies["bob@example.org"] = (
        "550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown"
    )
    refused = send(relay.port, ["ann@example.org", "bob@example.org", "cat@example.org"])
    assert refused == {}, "the client is not left retrying for ever"
    assert sink[0].recipients() == ["ann@example.org", "cat@example.org"]
    bob = app.ledger.status("bob@example.org")
    assert [s.reason for s in bob.state.suppressions] == [Reason.HARD_BOUNCE]
    (bounce,) = events_of(app, "bob@example.org")
    assert bounce.type == EventType.HARD_BOUNCE and bounce.channel == Channel.BOUNCE
    assert bounce.campaign == "nov"
    details = bounce.details or {}
    assert details["status"] == "5.1.1" and details["code"] == 550
    assert "bob@example.org" not in str(details), "the address is masked in the details"
    assert "User unknown" in details["diagnostic"]
    # Having said 250, the relay tells the sender about bob by mail (RFC 3464).
    ((to, report),) = sink[0].reports()
    assert to == ["news@example.com"]
    parsed = message_from_bytes(report, policy=policy.default)
    assert parsed.get_content_type() == "multipart/report"
    assert parsed["Auto-Submitted"] == "auto-replied"
    parts = [part.get_content_type() for part in parsed.iter_parts()]
    assert parts == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    blocks = re.findall(
        r"Final-Recipient: rfc822; (\S+)\r\nAction: (\w+)\r\nStatus: ([\d.]+)\r\n"
        r"Remote-MTA: [^\r]+\r\nDiagnostic-Code: smtp; ([^\r]+)",
        report.decode(),
    )
    assert blocks == [("bob@example.org", "failed", "5.1.1", mock.ANY)]
    assert "550 5.1.1" in blocks[0][3] and "User unknown" in blocks[0][3]
    returned = next(p for p in parsed.walk() if p.get_content_type() == "text/rfc822-headers")
    assert b"Message-ID: <n1@example.com>" in returned.get_payload(decode=True)
    assert b"X-Adieu-Campaign" not in report
    # A standard DSN: Adieu's own reader finds bob's hard bounce in it.
    found = classify(report, app.codec, ["news@example.com"])
    assert [(f.kind.value, f.address) for f in found.findings] == [
        ("hard_bounce", "bob@example.org")
    ]
    # and the next message to bob is refused at RCPT, from the ledger
    with pytest.raises(smtplib.SMTPRecipientsRefused) as again:
        send(relay.port, ["bob@example.org"])
    assert again.value.recipients["bob@example.org"][0] == 550


def test_a_copy_too_big_for_the_upstream_is_a_rejection_not_a_bounce(
    app: Adieu, relay: Relay, sink: tuple[Sink, Controller]
) -> None:
    sink[0].data_replies["bob@example.org"] = "552 5.3.4 Message size exceeds fixed limit"
    assert send(relay.port, ["ann@example.org", "bob@example.org"]) == {}
    assert sink[0].recipients() == ["ann@example.org"]
    assert app.ledger.status("bob@example.org").state.suppressions == ()
    (rejection,) = events_of(app, "bob@example.org")
    assert rejection.type == EventType.REJECTION and rejection.channel == Channel.BOUNCE
    assert (rejection.details or {})["status"] == "5.3.4"


def test_a_sender_side_refusal_is_recorded_as_a_rejection(
    app: Adieu, relay: Relay, sink: tuple[Sink, Controller]
) -> None:
    sink[0].rcpt_replies["bob@example.org"] = "554 5.7.1 <bob@example.org>: Relay access denied"
    assert send(relay.port, ["ann@example.org", "bob@example.org"]) == {}
    assert app.ledger.status("bob@example.org").state.suppressions == ()
    assert [e.type for e in events_of(app, "bob@example.org")] == [EventType.REJECTION]


def test_when_every_recipient_is_refused_the_client_gets_a_permanent_refusal(
    app: Adieu, relay: Relay, sink: tuple[Sink, Controller]
) -> None:
    sink[0].rcpt_replies["bob@example.org"] = "550 5.1.1 <bob@example.org>: User unknown"
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(relay.port, ["bob@example.org"])
    assert refused.value.smtp_code == 550
    assert b"5.1.1" in refused.value.smtp_error
    assert sink[0].messages == []
    assert [s.reason for s in app.ledger.status("bob@example.org").state.suppressions] == [
        Reason.HARD_BOUNCE
    ]


def test_a_temporary_refusal_is_451_and_the_retry_sends_only_what_is_missing(
    app: Adieu, relay: Relay, sink: tuple[Sink, Controller]
) -> None:
    sink[0].rcpt_replies["bob@example.org"] = "550 5.1.1 <bob@example.org>: User unknown"
    sink[0].rcpt_replies["cat@example.org"] = ["450 4.2.1 Mailbox busy"]
    everyone = ["ann@example.org", "bob@example.org", "cat@example.org", "dan@example.org"]
    with pytest.raises(smtplib.SMTPDataError) as later:
        send(relay.port, everyone)
    assert later.value.smtp_code == 451
    assert sink[0].recipients() == ["ann@example.org", "dan@example.org"], "others go on"
    # The retry: ann and dan already delivered; bob, recorded as a hard bounce,
    # is refused at RCPT now.
    assert list(send(relay.port, everyone)) == ["bob@example.org"]
    assert sink[0].recipients() == ["ann@example.org", "cat@example.org", "dan@example.org"]
    assert [e.type for e in events_of(app, "bob@example.org")] == [EventType.HARD_BOUNCE]
    ((_, report),) = sink[0].reports()  # bob's, once: cat's 450 was not for good
    assert b"bob@example.org" in report and b"cat@example.org" not in report


def test_no_report_goes_to_the_null_sender_or_for_a_message_refused_as_a_whole(
    app: Adieu, relay: Relay, sink: tuple[Sink, Controller]
) -> None:
    sink[0].rcpt_replies["bob@example.org"] = "550 5.1.1 <bob@example.org>: User unknown"
    with smtplib.SMTP("127.0.0.1", relay.port) as client:
        assert client.sendmail("<>", ["ann@example.org", "bob@example.org"], MESSAGE) == {}
    sink[0].rcpt_replies["cat@example.org"] = "550 5.1.1 <cat@example.org>: User unknown"
    with pytest.raises(smtplib.SMTPDataError):  # the client hears it in the reply
        send(relay.port, ["cat@example.org"])
    assert sink[0].reports() == []
    assert sink[0].recipients() == ["ann@example.org"]


# -- a closed or broken upstream connection ------------------------------------------------


def test_an_upstream_that_hangs_up_an_idle_connection_with_421_costs_no_451(
    app: Adieu, relay: Relay, sink: tuple[Sink, Controller]
) -> None:
    sink[0].hang_up = True
    for i in range(3):
        send(relay.port, [f"reader{i}@example.org"])
        time.sleep(0.2)  # the upstream says 421 and closes the kept connection
    assert sink[0].recipients() == [f"reader{i}@example.org" for i in range(3)]
    assert sink[0].connections == 3


def test_an_upstream_that_went_away_is_reconnected_once_before_any_451(
    app: Adieu, make_settings: MakeSettings
) -> None:
    port = free_port()
    first, first_sink = Sink(), None
    first_sink = Controller(first, hostname="127.0.0.1", port=port)
    first_sink.start()
    relay = Relay(app, port)
    try:
        send(relay.port, ["ann@example.org"])
        first_sink.stop()  # the kept connection breaks …
        second = Sink()
        restarted = Controller(second, hostname="127.0.0.1", port=port)
        restarted.start()  # … and the upstream is back
        try:
            send(relay.port, ["bob@example.org"])
        finally:
            restarted.stop()
    finally:
        relay.stop()
    assert first.recipients() == ["ann@example.org"]
    assert second.recipients() == ["bob@example.org"]


# -- internationalised addresses (RFC 6531) ---------------------------------------------------

JUERGEN = "jürgen@example.org"


def test_an_internationalised_recipient_passes_through_when_the_upstream_offers_smtputf8(
    app: Adieu, relay: Relay, sink: tuple[Sink, Controller]
) -> None:
    assert send(relay.port, [JUERGEN], MESSAGE.encode(), mail_options=["SMTPUTF8"]) == {}
    assert sink[0].recipients() == [JUERGEN]
    assert "SMTPUTF8" in sink[0].options[0]
    # the kept upstream connection is fine for the next, plain message
    send(relay.port, ["ann@example.org"])
    assert sink[0].recipients() == ["ann@example.org", JUERGEN]


def test_an_internationalised_recipient_the_upstream_cannot_take_is_refused_alone(
    app: Adieu,
) -> None:
    plain, upstream = start_sink(enable_SMTPUTF8=False)
    relay = Relay(app, upstream.port)
    try:
        assert (
            send(
                relay.port,
                [JUERGEN, "ann@example.org"],
                MESSAGE.encode(),
                mail_options=["SMTPUTF8"],
            )
            == {}
        )
        assert plain.recipients() == ["ann@example.org"]
        # Now that the relay knows, it says so at RCPT already.
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            send(relay.port, [JUERGEN], MESSAGE.encode(), mail_options=["SMTPUTF8"])
        code, reply = refused.value.recipients[JUERGEN]
        assert (code, reply[:5]) == (553, b"5.6.7")
        send(relay.port, ["bob@example.org"])  # the upstream connection still works
    finally:
        relay.stop()
        upstream.stop()
    assert plain.recipients() == ["ann@example.org", "bob@example.org"]


def test_an_internationalised_recipient_without_smtputf8_is_refused_at_rcpt(
    relay: Relay, sink: tuple[Sink, Controller]
) -> None:
    with smtplib.SMTP("127.0.0.1", relay.port) as client:
        client.ehlo()
        client.mail("news@example.com")
        client.send("RCPT TO:<jürgen@example.org>\r\n".encode())
        code, reply = client.getreply()
        assert (code, reply[:5]) == (553, b"5.6.7"), reply
        assert client.rcpt("ann@example.org")[0] == 250
        assert client.data(MESSAGE.encode())[0] == 250
    assert sink[0].recipients() == ["ann@example.org"]


# -- exactly once, across retries, workers and restarts ------------------------------------------


def _half_delivered(sink: Sink) -> None:
    """The upstream takes the first copy and not the second, once."""
    sink.rcpt_replies["bob@example.org"] = ["451 4.3.0 Try later"]


def test_a_retry_on_another_worker_does_not_deliver_a_second_copy(
    app: Adieu, make_settings: MakeSettings, sink: tuple[Sink, Controller]
) -> None:
    """Each worker is its own process with its own memory: only the ledger's
    database is shared, as here (two handlers, two Adieu objects)."""
    other = Adieu(app.settings)
    one, two = Relay(app, sink[1].port), Relay(other, sink[1].port)
    try:
        _half_delivered(sink[0])
        with pytest.raises(smtplib.SMTPDataError) as failed:
            send(one.port, ["ann@example.org", "bob@example.org"])
        assert failed.value.smtp_code == 451
        assert send(two.port, ["ann@example.org", "bob@example.org"]) == {}
    finally:
        one.stop()
        two.stop()
        other.close()
    assert sink[0].recipients() == ["ann@example.org", "bob@example.org"]


def test_a_retry_after_a_restart_does_not_deliver_a_second_copy(
    app: Adieu, sink: tuple[Sink, Controller]
) -> None:
    _half_delivered(sink[0])
    first = Relay(app, sink[1].port)
    try:
        with pytest.raises(smtplib.SMTPDataError):
            send(first.port, ["ann@example.org", "bob@example.org"])
    finally:
        first.stop()
    restarted = Adieu(app.settings)
    second = Relay(restarted, sink[1].port)
    try:
        send(second.port, ["ann@example.org", "bob@example.org"])
    finally:
        second.stop()
        restarted.close()
    assert sink[0].recipients() == ["ann@example.org", "bob@example.org"]


def test_a_retry_after_a_lost_250_delivers_nothing_twice(
    relay: Relay, sink: tuple[Sink, Controller]
) -> None:
    """The client did not hear the 250 (the connection broke) and sends again."""
    send(relay.port, ["ann@example.org", "bob@example.org"])
    assert send(relay.port, ["ann@example.org", "bob@example.org"]) == {}
    assert sink[0].recipients() == ["ann@example.org", "bob@example.org"]


def test_the_memory_of_delivered_copies_holds_no_address(
    app: Adieu, relay: Relay, sink: tuple[Sink, Controller]
) -> None:
    from sqlalchemy import select

    from adieu.ledger import schema

    send(relay.port, ["ann@example.org"])
    with app.engine.connect() as conn:
        rows = conn.execute(select(schema.relay_deliveries)).all()
    assert len(rows) == 1
    assert b"ann" not in b"".join(bytes(v) for v in rows[0] if isinstance(v, bytes))
    assert rows[0].recipient == app.hasher.hash("ann@example.org")


# -- the send policy at DATA -----------------------------------------------------------------


def test_who_unsubscribes_between_rcpt_and_data_gets_nothing(
    app: Adieu, relay: Relay, sink: tuple[Sink, Controller]
) -> None:
    with smtplib.SMTP("127.0.0.1", relay.port) as client:
        client.ehlo()
        client.mail("news@example.com")
        assert client.rcpt("ann@example.org")[0] == 250
        assert client.rcpt("bob@example.org")[0] == 250
        app.ledger.unsubscribe("ann@example.org", channel=Channel.ONE_CLICK)
        assert client.data(MESSAGE.encode())[0] == 250
    assert sink[0].recipients() == ["bob@example.org"]
    assert relay.handler.counts["dropped:policy_at_data"] == 1


# -- limits --------------------------------------------------------------------------------------


def test_recipients_beyond_the_limit_are_told_to_come_back(
    app: Adieu, sink: tuple[Sink, Controller]
) -> None:
    relay = Relay(app, sink[1].port, max_recipients=3)
    try:
        with smtplib.SMTP("127.0.0.1", relay.port) as client:
            client.ehlo()
            client.mail("news@example.com")
            for i in range(3):
                assert client.rcpt(f"r{i}@example.org")[0] == 250
            code, reply = client.rcpt("r3@example.org")
            assert (code, reply) == (452, b"4.5.3 Too many recipients")
            assert client.data(MESSAGE.encode())[0] == 250
    finally:
        relay.stop()
    assert len(sink[0].messages) == 3


def test_the_default_recipient_limit_is_the_setting(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    from adieu.settings import Settings

    assert Settings(data_dir=tmp_path).relay_max_recipients == 100
    assert make_settings(relay_max_recipients=7).relay_max_recipients == 7


def test_nul_bytes_are_refused(relay: Relay, sink: tuple[Sink, Controller]) -> None:
    with smtplib.SMTP("127.0.0.1", relay.port) as client:
        client.ehlo()
        client.mail("news@example.com")
        client.rcpt("ann@example.org")
        code, reply = client.data(MESSAGE.replace("Hello", "Hel\x00lo").encode())
    assert code == 554 and reply.startswith(b"5.6."), reply
    assert sink[0].messages == []


def test_size_is_the_upstreams_when_it_is_smaller(app: Adieu) -> None:
    from adieu.smtp.relay import STAMP_HEADROOM

    _, small = start_sink(data_size_limit=100_000)
    relay = Relay(app, small.port, size_limit=10_000_000)
    try:
        relay.handler.learn_upstream()
        with smtplib.SMTP("127.0.0.1", relay.port) as client:
            client.ehlo()
            assert client.esmtp_features["size"] == str(100_000 - STAMP_HEADROOM)
    finally:
        relay.stop()
        small.stop()
    _, big = start_sink(data_size_limit=50_000_000)
    relay = Relay(app, big.port, size_limit=10_000_000)
    try:
        relay.handler.learn_upstream()
        with smtplib.SMTP("127.0.0.1", relay.port) as client:
            client.ehlo()
            assert client.esmtp_features["size"] == "10000000"
    finally:
        relay.stop()
        big.stop()


# -- who may use the relay ------------------------------------------------------------------------


def _login(port: int, password: str, tls: ssl.SSLContext) -> int:
    """One AUTH PLAIN attempt; the reply code (421 when the relay hung up)."""
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.starttls(context=tls)
        client.ehlo()
        token = base64.b64encode(f"\0sender\0{password}".encode()).decode()
        try:
            code, _ = client.docmd("AUTH", f"PLAIN {token}")
        except smtplib.SMTPServerDisconnected:
            return 421
        if code == 421:
            with pytest.raises((smtplib.SMTPServerDisconnected, OSError)):
                client.noop()
        return code


def test_failed_logins_are_slowed_then_refused_and_the_right_password_waits_too(
    app: Adieu, sink: tuple[Sink, Controller], tmp_path: Path
) -> None:
    client_tls = ssl.create_default_context()
    client_tls.check_hostname = False
    client_tls.verify_mode = ssl.CERT_NONE
    relay = Relay(
        app,
        sink[1].port,
        allow=[],
        user="sender",
        password=Secret("s3cret"),
        tls=self_signed(tmp_path, "relay.test")[0],
        auth_window=3.0,
        auth_delay=0.01,
    )
    try:
        started = time.monotonic()
        codes = [_login(relay.port, f"wrong{i}", client_tls) for i in range(40)]
        assert codes[0] == 535
        assert 421 in codes, "a client guessing passwords is disconnected"
        assert codes.index(421) <= 10
        assert time.monotonic() - started > 0.1, "and slowed down before that"
        assert _login(relay.port, "s3cret", client_tls) == 421, "even the right password"
        time.sleep(3.1)
        assert _login(relay.port, "s3cret", client_tls) == 235, "once the window has passed"
    finally:
        relay.stop()
    assert relay.handler.counts["auth_failed"] >= 5


def test_ipv4_clients_of_a_relay_on_all_ipv6_addresses_are_matched_against_ipv4_networks(
    app: Adieu, sink: tuple[Sink, Controller]
) -> None:
    """``--listen [::]:PORT`` takes IPv4 connections as ``::ffff:127.0.0.1``."""
    import signal
    import subprocess
    import sys

    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    port = free_port()
    env = adieu_env(app.settings, relay_allow="127.0.0.1/32")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "adieu",
            "relay",
            "--listen",
            f"[::]:{port}",
            "--upstream",
            f"127.0.0.1:{sink[1].port}",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc)
        assert send(port, ["ann@example.org"]) == {}
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert sink[0].recipients() == ["ann@example.org"]


def test_an_ipv4_mapped_peer_is_matched_and_other_ipv6_peers_are_not(app: Adieu) -> None:
    from aiosmtpd.smtp import Session

    from adieu.smtp.relay import RelayConfig

    handler = RelayHandler(
        app, RelayConfig(upstream=("127.0.0.1", 25), allow=parse_networks(["192.0.2.0/24"]))
    )
    try:

        def trusted(peer: tuple[str, int] | tuple[str, int, int, int]) -> bool:
            session = Session(loop=None)  # type: ignore[arg-type]
            session.peer = peer  # type: ignore[assignment]
            return handler._trusted(session)

        assert trusted(("192.0.2.7", 25))
        assert trusted(("::ffff:192.0.2.7", 25, 0, 0))
        assert not trusted(("::ffff:198.51.100.1", 25, 0, 0))
        assert not trusted(("2001:db8::1", 25, 0, 0))
    finally:
        handler.close()
