"""Inbound trust: nobody who can merely send mail to the inbound address can
change anyone's consent (``ADIEU_INBOUND_TRUST``).

Four forged reports — an ARF complaint naming its victim in
``Original-Rcpt-To``, a DSN with ``Final-Recipient`` and ``5.1.1 user
unknown``, a DSN whose VERP return path names the victim, and a plain-text
Exim-style bounce — go through every door (the library, the SMTP listener,
the LMTP listener, the pipe). Without a token, and without a recent send
under ``sent``, they change nothing; with Adieu's token (in the returned
original or in the return path) they are recorded.
"""

from __future__ import annotations

import json
import smtplib
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner

from adieu import report
from adieu.addresses import mask
from adieu.cli import main
from adieu.feedback.classify import classify
from adieu.feedback.intake import Intake
from adieu.ledger import EventType
from adieu.mail.stamper import Stamper
from adieu.service import Adieu
from adieu.smtp.inbound import InboundHandler, make_server
from conftest import MakeSettings
from support import Client, adieu_env, free_port, wait_for_port

# -- the forged reports ----------------------------------------------------------------------


def _arf(victim: str, original: str) -> bytes:
    return (
        "From: abuse-reports@isp.example\r\nTo: fbl@example.com\r\nSubject: FW: News\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report;"
        ' boundary="arf"\r\n\r\n--arf\r\nContent-Type: text/plain\r\n\r\n'
        "This is an email abuse report.\r\n\r\n--arf\r\n"
        "Content-Type: message/feedback-report\r\n\r\n"
        "Feedback-Type: abuse\r\nUser-Agent: SomeGenerator/1.0\r\nVersion: 1\r\n"
        f"Original-Rcpt-To: <{victim}>\r\nSource-IP: 192.0.2.1\r\n"
        "\r\n--arf\r\nContent-Type: message/rfc822\r\n\r\n"
        f"{original}\r\n--arf--\r\n"
    ).encode()


def _dsn(recipient: str, original: str) -> bytes:
    headers = original.split("\r\n\r\n", 1)[0]
    return (
        "From: MAILER-DAEMON@mail.example.com (Mail Delivery System)\r\n"
        "To: bounces@example.com\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="dsn"\r\n\r\n'
        "--dsn\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n"
        "--dsn\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mail.example.com\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: user unknown\r\n"
        "\r\n--dsn\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"{headers}\r\n\r\n--dsn--\r\n"
    ).encode()


def _plain(victim: str, original: str) -> bytes:
    return (
        "From: Mail Delivery System <Mailer-Daemon@mx.example.net>\r\n"
        "To: bounces@example.com\r\nSubject: Mail delivery failed: returning message to sender\r\n"
        "Auto-Submitted: auto-replied\r\n\r\n"
        "This message was created automatically by mail delivery software.\r\n\r\n"
        "A message that you sent could not be delivered to one or more of its\r\n"
        "recipients. This is a permanent error. The following address(es) failed:\r\n\r\n"
        f"  {victim}\r\n    SMTP error from remote mail server after RCPT TO:<{victim}>:\r\n"
        "    550 5.1.1 User unknown\r\n\r\n"
        "------ This is a copy of the message, including all the headers. ------\r\n\r\n"
        f"{original}"
    ).encode()


@dataclass(frozen=True)
class Forgery:
    name: str
    victim: str
    kind: str  # what the report claims
    channel: str  # where an unverified finding is recorded

    def message(self, app: Adieu, token_in: str | None = None) -> tuple[bytes, list[str]]:
        """The raw report and its envelope recipients; ``token_in`` puts a valid
        token for the victim in the returned ``original`` or the ``return-path``."""
        original = _original(app, self.victim, with_token=token_in == "original")
        envelope = ["reports@example.com"]
        if self.name == "arf":
            raw = _arf(self.victim, original)
        elif self.name == "dsn":
            raw = _dsn(self.victim, original)
        elif self.name == "verp":
            raw = _dsn("alias@forwarder.example", original)
            local, _, domain = self.victim.partition("@")
            envelope = [f"bounces+{local}={domain}@example.com"]
        else:
            raw = _plain(self.victim, original)
        if token_in == "return-path":
            envelope = [f"bounces+{app.link(self.victim).token}@example.com"]
        return raw, envelope


def _original(app: Adieu, to: str, *, with_token: bool) -> str:
    """The message as sent, as a report returns it: with Adieu's token as the
    stamper puts it (twice in the headers, twice in the body), or without."""
    headers = f"From: news@example.com\r\nTo: {to}\r\nSubject: News\r\nMessage-ID: <n@example.com>"
    if not with_token:
        return f"{headers}\r\n\r\nHello.\r\n"
    link = app.link(to, campaign="nov")
    token = link.token
    return (
        f"{headers}\r\nList-Unsubscribe: <{link.url}>,\r\n"
        f" <mailto:unsubscribe+{token}@unsub.example.net>\r\n"
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\n"
        f"Hello.\r\n-- \r\nUnsubscribe: {link.url}\r\n"
        f"Change my preferences: {link.preferences_url}\r\n"
    )


FORGERIES = [
    Forgery("arf", "ceo@example.org", "complaint", "complaint"),
    Forgery("dsn", "cfo@example.org", "hard_bounce", "bounce"),
    Forgery("verp", "hr@example.org", "hard_bounce", "bounce"),
    Forgery("plain", "ops@example.org", "hard_bounce", "bounce"),
]
VICTIMS = [f.victim for f in FORGERIES]

# -- the doors -------------------------------------------------------------------------------

Door = Callable[[Adieu, bytes, list[str]], None]


def through_the_library(app: Adieu, raw: bytes, envelope: list[str]) -> None:
    Intake(app).process(raw, envelope)


class _Listener(Controller):
    def __init__(self, app: Adieu, lmtp: bool) -> None:
        super().__init__(InboundHandler(Intake(app)), hostname="127.0.0.1", port=free_port())
        self.lmtp = lmtp

    def factory(self) -> Any:  # what run_inbound serves, SMTP or LMTP
        return make_server(self.handler, lmtp=self.lmtp)


def _listener(app: Adieu, raw: bytes, envelope: list[str], *, lmtp: bool) -> None:
    controller = _Listener(app, lmtp)
    controller.start()
    try:
        client = smtplib.LMTP if lmtp else smtplib.SMTP
        with client("127.0.0.1", controller.port) as session:
            refused = session.sendmail("", envelope, raw)
            assert refused == {}
    finally:
        controller.stop()


def through_the_smtp_listener(app: Adieu, raw: bytes, envelope: list[str]) -> None:
    _listener(app, raw, envelope, lmtp=False)


def through_the_lmtp_listener(app: Adieu, raw: bytes, envelope: list[str]) -> None:
    _listener(app, raw, envelope, lmtp=True)


def through_the_pipe(app: Adieu, raw: bytes, envelope: list[str]) -> None:
    (recipient,) = envelope
    done = cli(app, "inbound", "-", "--recipient", recipient, input=raw)
    assert done.exit_code == 0, done.output


DOORS = {
    "library": through_the_library,
    "smtp": through_the_smtp_listener,
    "lmtp": through_the_lmtp_listener,
    "pipe": through_the_pipe,
}


def _env(app: Adieu) -> dict[str, str]:
    s = app.settings
    return adieu_env(
        s,
        mailto_domain=s.mailto_domain or "",
        inbound_trust=s.inbound_trust,
        inbound_sent_days=str(s.inbound_sent_days),
    )


def cli(app: Adieu, *args: str, input: bytes | None = None) -> Any:
    """``adieu ARGS`` in-process, with ``app``'s settings."""
    return CliRunner().invoke(main, list(args), input=input, env=_env(app), catch_exceptions=False)


# -- fixtures and checks ---------------------------------------------------------------------


@pytest.fixture
def make_app(make_settings: MakeSettings) -> Iterator[Callable[..., Adieu]]:
    made: list[Adieu] = []

    def make(**settings: Any) -> Adieu:
        app = Adieu(make_settings(mailto_domain="unsub.example.net", **settings))
        made.append(app)
        return app

    yield make
    for app in made:
        app.close()


@pytest.fixture(params=sorted(DOORS))
def door(request: pytest.FixtureRequest) -> Door:
    return DOORS[request.param]


def assert_untouched(app: Adieu, address: str) -> None:
    """Mail may go to ``address`` as before: no complaint, no bounce."""
    status = app.ledger.status(address)
    assert status.state.suppressions == (), address
    assert status.soft_bounces == 0, address
    assert app.policy.is_sendable(address), address
    assert app.policy.is_sendable(address, category="transactional"), address


def assert_recorded(app: Adieu, forgery: Forgery) -> None:
    if forgery.kind == "complaint":
        assert app.policy.may_send(forgery.victim).reason == "complaint", forgery.name
    else:
        decision = app.policy.may_send(forgery.victim, category="transactional")
        assert decision.reason == "hard_bounce", forgery.name
    types = [e.type for e in app.ledger.history(forgery.victim)]
    assert EventType.UNVERIFIED not in types, forgery.name


def assert_unverified(app: Adieu, forgery: Forgery, why: str) -> None:
    assert_untouched(app, forgery.victim)
    (event,) = app.ledger.history(forgery.victim)
    assert (event.type, event.channel.value) == (EventType.UNVERIFIED, forgery.channel)
    assert event.details is not None
    assert (event.details["finding"], event.details["why"]) == (forgery.kind, why)


NO_TOKEN = "no token from Adieu in the report or its return path"
NO_SEND = "no token and no send to this address in the last {days} days"
WHY = {"token": (NO_TOKEN, "no token"), "sent": (NO_SEND, "no token, no recent send")}


# -- forged reports change nothing -----------------------------------------------------------


@pytest.mark.parametrize("trust", ["sent", "token"])
def test_forged_reports_change_nothing(
    make_app: Callable[..., Adieu], door: Door, trust: str
) -> None:
    app = make_app(inbound_trust=trust)
    for forgery in FORGERIES:
        raw, envelope = forgery.message(app)
        door(app, raw, envelope)
    why, short = WHY[trust]
    for forgery in FORGERIES:
        assert_unverified(app, forgery, why.format(days=30))
    notes = [item[3] for item in app.ledger.review_items()]
    assert sorted(notes) == sorted(
        f"unverified: {f.kind} for {mask(f.victim)}: {short}" for f in FORGERIES
    )
    listed = cli(app, "inbound", "list-unknown").output
    for note in notes:
        assert note in listed
    for victim in VICTIMS:
        assert victim not in "".join(notes) + listed, "only masked addresses in notes"


@pytest.mark.parametrize("trust", ["sent", "token"])
@pytest.mark.parametrize("token_in", ["original", "return-path"])
def test_the_same_reports_with_a_token_are_recorded(
    make_app: Callable[..., Adieu], door: Door, trust: str, token_in: str
) -> None:
    app = make_app(inbound_trust=trust)
    for forgery in FORGERIES:
        raw, envelope = forgery.message(app, token_in)
        door(app, raw, envelope)
    for forgery in FORGERIES:
        assert_recorded(app, forgery)
        last = app.ledger.history(forgery.victim)[-1]
        assert last.details is not None and last.details["trusted_by"] == "token"
    assert app.ledger.review_items() == []


def test_a_recent_send_makes_them_trusted_under_sent(
    make_app: Callable[..., Adieu], door: Door
) -> None:
    app = make_app()  # sent, the default
    app.ledger.record_sends(VICTIMS, category="transactional")
    for forgery in FORGERIES:
        door(app, *forgery.message(app))
    for forgery in FORGERIES:
        assert_recorded(app, forgery)
        last = app.ledger.history(forgery.victim)[-1]
        assert last.details is not None and last.details["trusted_by"] == "send"
    assert app.ledger.review_items() == []


def test_a_recent_send_is_not_enough_under_token(
    make_app: Callable[..., Adieu], door: Door
) -> None:
    app = make_app(inbound_trust="token")
    app.ledger.record_sends(VICTIMS)
    for forgery in FORGERIES:
        door(app, *forgery.message(app))
    for forgery in FORGERIES:
        assert_unverified(app, forgery, NO_TOKEN)
    assert len(app.ledger.review_items()) == len(FORGERIES)


def test_any_trusts_the_route(make_app: Callable[..., Adieu], door: Door) -> None:
    app = make_app(inbound_trust="any")
    for forgery in FORGERIES:
        door(app, *forgery.message(app))
    for forgery in FORGERIES:
        assert_recorded(app, forgery)
        last = app.ledger.history(forgery.victim)[-1]
        assert last.details is not None and last.details["trusted_by"] == "route"
    assert app.ledger.review_items() == []


def test_a_send_older_than_the_window_does_not_count(make_app: Callable[..., Adieu]) -> None:
    app = make_app()
    now = app.ledger.now()
    (arf, dsn, verp, plain) = FORGERIES
    app.ledger.record_send(arf.victim, at=now - timedelta(days=31))
    app.ledger.record_send(dsn.victim, at=now - timedelta(days=29))
    for forgery in (arf, dsn):
        Intake(app).process(*forgery.message(app))
    assert_unverified(app, arf, NO_SEND.format(days=30))
    assert_recorded(app, dsn)
    wider = make_app(inbound_sent_days=45)
    wider.ledger.record_send(verp.victim, at=now - timedelta(days=31))
    wider.ledger.record_send(plain.victim, at=now - timedelta(days=46))
    for forgery in (verp, plain):
        Intake(wider).process(*forgery.message(wider))
    assert_recorded(wider, verp)
    assert_unverified(wider, plain, NO_SEND.format(days=45))


# -- the real commands -----------------------------------------------------------------------


def test_the_pipe_command_says_what_it_did_not_trust(make_app: Callable[..., Adieu]) -> None:
    app = make_app()
    forgery = FORGERIES[1]
    raw, _ = forgery.message(app)
    env = adieu_env(app.settings)
    done = subprocess.run(
        [sys.executable, "-m", "adieu", "inbound", "-"], input=raw, env=env, capture_output=True
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    assert f"unverified\thard_bounce\t{mask(forgery.victim)}\n" in out
    assert f"unverified: hard_bounce for {mask(forgery.victim)}: no token, no recent send" in out
    assert forgery.victim not in out
    listed = subprocess.run(
        [sys.executable, "-m", "adieu", "inbound", "list-unknown"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "unverified: hard_bounce for c•••@example.org: no token, no recent send" in listed
    status = subprocess.run(
        [sys.executable, "-m", "adieu", "status", forgery.victim, "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    data = json.loads(status)
    assert (data["sendable"]["overall"], data["reasons"], data["suppressions"]) == (True, {}, [])
    assert [(e["type"], e["channel"]) for e in data["events"]] == [("unverified", "bounce")]


def test_the_lmtp_listener_command_honours_the_setting(make_app: Callable[..., Adieu]) -> None:
    app = make_app()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "adieu", "inbound", "--listen", f"127.0.0.1:{port}", "--lmtp"],
        env=adieu_env(app.settings, inbound_trust="token"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc)
        app.ledger.record_sends(VICTIMS)  # not enough under token
        with smtplib.LMTP("127.0.0.1", port) as client:
            for forgery in FORGERIES:
                raw, envelope = forgery.message(app)
                client.sendmail("", envelope, raw)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    for forgery in FORGERIES:
        assert_unverified(app, forgery, NO_TOKEN)


# -- what classification gives trust to ------------------------------------------------------


def _headers_of(message: bytes) -> str:
    return message.split(b"\r\n\r\n", 1)[0].decode()


def test_a_stamped_original_proves_its_recipient(make_app: Callable[..., Adieu]) -> None:
    """The stamper puts one token in List-Unsubscribe twice (URL and mailto)
    and in the footer's links: the copies count as one token."""
    app = make_app(inbound_trust="token")
    sent = (
        b"From: news@example.com\r\nTo: erin@example.org\r\nSubject: News\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nHello.\r\n"
    )
    stamped = Stamper(app).stamp(sent, "erin@example.org", campaign="nov")
    assert stamped.count(b"/u/") >= 2 and b"mailto:unsubscribe+" in stamped
    headers_only = _dsn("redacted@forwarder.example", _headers_of(stamped) + "\r\n\r\n")
    result = Intake(app).process(headers_only)
    assert result.applied == [("hard_bounce", "e•••@example.org")]
    whole = _arf("someone@example.org", stamped.decode())
    assert Intake(app).process(whole).applied == [("complaint", "e•••@example.org")]
    (bounce, complaint) = app.ledger.history("erin@example.org")
    assert (bounce.type, complaint.type) == (EventType.HARD_BOUNCE, EventType.COMPLAINT)
    assert complaint.campaign == "nov" and app.ledger.review_items() == []


def test_tokens_for_different_addresses_prove_nothing(make_app: Callable[..., Adieu]) -> None:
    app = make_app(inbound_trust="token")
    two = (
        "From: news@example.com\r\nTo: ann@example.org\r\nSubject: News\r\n"
        f"List-Unsubscribe: <{app.link('ann@example.org').url}>\r\n"
        f"X-Forwarded-From: {app.link('bob@example.org').url}\r\n\r\nHello.\r\n"
    )
    for raw in (_arf("ceo@example.org", two), _dsn("ceo@example.org", two)):
        (finding,) = classify(raw, app.codec).findings
        assert (finding.address, finding.token) == ("ceo@example.org", None)
        result = Intake(app).process(raw)
        assert result.applied == [] and result.unverified[0][1] == "c•••@example.org"
    for address in ("ann@example.org", "bob@example.org", "ceo@example.org"):
        assert_untouched(app, address)


def test_the_return_path_token_comes_first(make_app: Callable[..., Adieu]) -> None:
    app = make_app(inbound_trust="token")
    raw = _dsn("cfo@example.org", _original(app, "ann@example.org", with_token=True))
    envelope = [f"<b.o+unce+{app.link('ivy@example.org').token}@bounces.example.net>"]
    (finding,) = classify(raw, app.codec, envelope).findings
    assert finding.address == "ivy@example.org"
    assert finding.details["recipient_from"] == "return-path-token"
    assert Intake(app).process(raw, envelope).applied == [("hard_bounce", "i•••@example.org")]
    assert_untouched(app, "ann@example.org")


def test_a_tampered_return_path_token_proves_nothing(make_app: Callable[..., Adieu]) -> None:
    app = make_app(inbound_trust="token")
    token = app.link("ivy@example.org").token
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    raw = _plain("ops@example.org", "")
    for envelope in (
        [f"bounces+{tampered}@example.com"],
        [f"bounces+{token.lower()}@example.com"],  # a local part whose case was folded
        [f"bounces-{token}@example.com"],
    ):
        result = Intake(app).process(raw, envelope)
        assert result.applied == [], envelope
    assert_untouched(app, "ops@example.org")
    assert_untouched(app, "ivy@example.org")


# -- the ledger read, the report and the metrics ---------------------------------------------


def test_sent_since(make_app: Callable[..., Adieu]) -> None:
    ledger = make_app().ledger
    now = ledger.now()
    assert not ledger.sent_since("ann@example.org", now - timedelta(days=30))
    ledger.record_send("Ann@Example.org", category="transactional", at=now - timedelta(days=10))
    ledger.record_send("bob@example.org", at=now - timedelta(days=40))
    assert ledger.sent_since("ANN@example.org", now - timedelta(days=30))
    assert not ledger.sent_since("ann@example.org", now - timedelta(days=5))
    assert not ledger.sent_since("bob@example.org", now - timedelta(days=30))
    assert ledger.sent_since("bob@example.org", now - timedelta(days=40))
    ledger.record_complaint("cat@example.org")  # known, never mailed
    assert not ledger.sent_since("cat@example.org", now - timedelta(days=365))


def test_the_report_counts_unverified_reports(make_app: Callable[..., Adieu]) -> None:
    app = make_app()
    for forgery in FORGERIES:
        Intake(app).process(*forgery.message(app))
    now = app.ledger.now()
    built = report.build(app.stats, now - timedelta(days=1), now).as_dict()
    total = built["total"]
    assert (total["unverified"], total["complaints"], total["hard_bounces"]) == (4, 0, 0)
    assert [day["unverified"] for day in built["days"]] == [4]
    assert sum(line["unverified"] for line in built["lines"]) == 4
    table = cli(app, "report").output
    assert "Unverified" in table


def test_the_metrics_count_unverified_reports(make_app: Callable[..., Adieu]) -> None:
    app = make_app()
    for forgery in FORGERIES:
        Intake(app).process(*forgery.message(app))
    client = Client(app)
    try:
        text = client.request("GET", "/metrics").text
    finally:
        client.close()
    assert 'adieu_ledger_events_total{channel="complaint",type="unverified"} 1.0' in text
    assert 'adieu_ledger_events_total{channel="bounce",type="unverified"} 3.0' in text
    assert 'adieu_inbound_unverified_total{channel="bounce"} 3.0' in text
    assert 'adieu_inbound_unverified_total{channel="complaint"} 1.0' in text
    assert "adieu_complaints_total 0.0" in text
    assert "@" not in text


def test_the_note_never_holds_a_clear_address(make_app: Callable[..., Adieu]) -> None:
    app = make_app()
    raw, envelope = FORGERIES[0].message(app)
    result = Intake(app).process(raw, envelope)
    assert result.unverified == [("complaint", "c•••@example.org")]
    note = "unverified: complaint for c•••@example.org: no token, no recent send"
    assert result.review_note == note
    (item,) = app.ledger.review_items()
    assert item[3] == note and item[4] == raw, "the whole message is kept"
