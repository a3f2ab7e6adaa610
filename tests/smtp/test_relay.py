"""`adieu relay` in real SMTP conversations: smtplib → relay → an aiosmtpd sink."""

from __future__ import annotations

import asyncio
import base64
import re
import smtplib
import socket
import ssl
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import dkim
import httpx
import pytest
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives import serialization

from adieu.ledger import Channel
from adieu.mail.dkim import create_key, key_path
from adieu.secret import Secret
from adieu.service import Adieu
from adieu.smtp.relay import RelayConfig, RelayHandler, make_smtp
from conftest import MakeSettings
from support import adieu_env, free_port, free_ports, self_signed, text_of, wait_for_port


class Sink:
    """The upstream stand-in: keeps what it is given; can refuse for a while."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.refuse = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return "451 4.3.0 Try later"
        self.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        )
        return "250 OK"


class RelayController(Controller):
    def __init__(self, handler: RelayHandler, port: int, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=port)
        self.tls = tls

    def factory(self) -> Any:
        return make_smtp(self.handler, tls=self.tls, size_limit=200_000)


@pytest.fixture
def sink() -> Iterator[tuple[Sink, Controller]]:
    handler = Sink()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller
    controller.stop()


@pytest.fixture
def app(make_settings: MakeSettings) -> Iterator[Adieu]:
    settings = make_settings(dkim_domain="example.com", dkim_selector="s1")
    create_key(key_path(settings.data_dir, "s1"))
    adieu = Adieu(settings)
    adieu.ledger.add_topic("news", "News")
    yield adieu
    adieu.close()


def start_relay(app: Adieu, upstream: int, **kw: Any) -> tuple[RelayController, RelayHandler]:
    tls = kw.pop("tls", None)
    config = RelayConfig(upstream=("127.0.0.1", upstream), **kw)
    handler = RelayHandler(app, config)
    controller = RelayController(handler, free_port(), tls)
    controller.start()
    return controller, handler


@pytest.fixture
def relay(
    app: Adieu, sink: tuple[Sink, Controller]
) -> Iterator[tuple[RelayController, RelayHandler]]:
    from adieu.smtp.relay import parse_networks

    controller, handler = start_relay(app, sink[1].port, allow=parse_networks(["127.0.0.1/32"]))
    yield controller, handler
    controller.stop()
    handler.close()


MESSAGE = (
    "From: News <news@example.com>\r\nSubject: November\r\n"
    "Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n"
    "Message-ID: <n1@example.com>\r\nMIME-Version: 1.0\r\nX-Adieu-Campaign: nov\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n\r\nHello from the newsletter.\r\n"
)


def dns_for(app: Adieu) -> Any:
    from adieu.mail.dkim import load_key

    key = load_key(key_path(app.settings.data_dir, "s1"))
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        return b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)

    return dnsfunc


def test_each_recipient_gets_its_own_stamped_signed_copy_and_who_left_gets_nothing(
    app: Adieu, relay: tuple[RelayController, RelayHandler], sink: tuple[Sink, Controller]
) -> None:
    gone = app.link("gone@example.org")
    # leave through the real one-click door first
    import asyncio

    import httpx

    from adieu.web.app import create_app

    async def one_click() -> int:
        transport = httpx.ASGITransport(app=create_app(app))
        async with httpx.AsyncClient(transport=transport, base_url="https://mail.example.net") as c:
            response = await c.post(f"/u/{gone.token}", data={"List-Unsubscribe": "One-Click"})
            return response.status_code

    assert asyncio.run(one_click()) == 200
    with smtplib.SMTP("127.0.0.1", relay[0].port) as client:
        refused = client.sendmail(
            "news@example.com", ["ann@example.org", "gone@example.org", "bob@example.org"], MESSAGE
        )
    assert set(refused) == {"gone@example.org"} and refused["gone@example.org"][0] == 550
    delivered = sink[0].messages
    assert sorted(rcpts[0] for _, rcpts, _ in delivered) == ["ann@example.org", "bob@example.org"]
    for _, (recipient,), data in delivered:
        parsed = message_from_bytes(data, policy=policy.default)
        assert len(parsed.get_all("List-Unsubscribe") or []) == 1
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "X-Adieu-Campaign" not in parsed
        url = str(parsed["List-Unsubscribe"]).strip("<>")
        assert app.codec.open(url.rsplit("/", 1)[1]).address == recipient
        assert url in text_of(parsed, "plain")
        assert dkim.DKIM(data).verify(dnsfunc=dns_for(app))
    relay[1].book.close()  # write the batched send records now
    assert app.ledger.status("ann@example.org").state.last_marketing_send_at is not None
    assert relay[1].counts["refused:unsubscribed"] == 1
    # R13: a message only for someone who left is refused outright; nothing goes out
    before = len(delivered)
    with (
        smtplib.SMTP("127.0.0.1", relay[0].port) as client,
        pytest.raises(smtplib.SMTPRecipientsRefused),
    ):
        client.sendmail(
            "news@example.com", ["gone@example.org"], "From: x@example.com\r\n\r\nYou left."
        )
    assert len(sink[0].messages) == before


def test_upstream_down_gives_451_and_a_retry_delivers_each_copy_once(
    app: Adieu, relay: tuple[RelayController, RelayHandler], sink: tuple[Sink, Controller]
) -> None:
    sink[0].refuse = True
    with (
        smtplib.SMTP("127.0.0.1", relay[0].port) as client,
        pytest.raises(smtplib.SMTPDataError) as failed,
    ):
        client.sendmail("news@example.com", ["ann@example.org", "bob@example.org"], MESSAGE)
    assert failed.value.smtp_code == 451
    assert sink[0].messages == []
    sink[0].refuse = False
    with smtplib.SMTP("127.0.0.1", relay[0].port) as client:
        client.sendmail("news@example.com", ["ann@example.org", "bob@example.org"], MESSAGE)
    assert sorted(r[0] for _, r, _ in sink[0].messages) == ["ann@example.org", "bob@example.org"]


def test_half_delivered_message_is_retried_without_duplicates(
    app: Adieu, relay: tuple[RelayController, RelayHandler], sink: tuple[Sink, Controller]
) -> None:
    original = sink[0].handle_DATA
    calls = {"n": 0}

    async def flaky(server: Any, session: Any, envelope: Any) -> str:
        calls["n"] += 1
        if calls["n"] == 2:
            return "451 4.3.0 Try later"
        return await original(server, session, envelope)

    sink[0].handle_DATA = flaky  # type: ignore[method-assign]
    with smtplib.SMTP("127.0.0.1", relay[0].port) as client, pytest.raises(smtplib.SMTPDataError):
        client.sendmail("news@example.com", ["ann@example.org", "bob@example.org"], MESSAGE)
    assert len(sink[0].messages) == 1
    with smtplib.SMTP("127.0.0.1", relay[0].port) as client:
        client.sendmail("news@example.com", ["ann@example.org", "bob@example.org"], MESSAGE)
    assert sorted(r[0] for _, r, _ in sink[0].messages) == ["ann@example.org", "bob@example.org"]


def test_topic_header_narrows_the_recipients_at_data(
    app: Adieu, relay: tuple[RelayController, RelayHandler], sink: tuple[Sink, Controller]
) -> None:
    app.ledger.unsubscribe("ann@example.org", "news", channel=Channel.PREFERENCES)
    with smtplib.SMTP("127.0.0.1", relay[0].port) as client:
        client.sendmail(
            "news@example.com",
            ["ann@example.org", "bob@example.org"],
            MESSAGE.replace("X-Adieu-Campaign: nov", "X-Adieu-Topic: news"),
        )
    assert [r for _, r, _ in sink[0].messages] == [["bob@example.org"]]
    parsed = message_from_bytes(sink[0].messages[0][2], policy=policy.default)
    assert (
        app.codec.open(str(parsed["List-Unsubscribe"]).strip("<>").rsplit("/", 1)[1]).scope
        == "news"
    )


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (
            b"From: a@example.com\r\nSubject: x\r\n\r\nline\n.\nMAIL FROM:<evil@example.com>\r\n",
            554,
        ),
        (b"From: a@example.com\r\n\r\nbare\rCR\r\n", 554),
        (b"Subject: no sender\r\n\r\nbody\r\n", 554),
        (b"\x00\x01\x02binary junk\xff\xfe\r\n", 554),
    ],
    ids=["smuggling-bare-lf", "bare-cr", "no-from", "binary-junk"],
)
def test_malformed_messages_get_a_clear_reply(
    relay: tuple[RelayController, RelayHandler],
    sink: tuple[Sink, Controller],
    payload: bytes,
    code: int,
) -> None:
    with smtplib.SMTP("127.0.0.1", relay[0].port) as client:
        client.ehlo()
        client.mail("news@example.com")
        client.rcpt("ann@example.org")
        client.putcmd("data")
        assert client.getreply()[0] == 354
        client.send(payload + b".\r\n")
        reply_code, reply = client.getreply()
        assert reply_code == code, reply
        assert client.noop()[0] == 250, "the relay is still there"
    assert sink[0].messages == []


def test_never_an_open_relay(app: Adieu, sink: tuple[Sink, Controller]) -> None:
    controller, handler = start_relay(app, sink[1].port, allow=[])
    try:
        with smtplib.SMTP("127.0.0.1", controller.port) as client:
            client.ehlo()
            code, _ = client.mail("news@example.com")
            assert code == 530
    finally:
        controller.stop()
        handler.close()
    assert handler.counts["refused:not_authenticated"] == 1


def test_auth_over_starttls(app: Adieu, sink: tuple[Sink, Controller], tmp_path: Path) -> None:
    controller, handler = start_relay(
        app,
        sink[1].port,
        allow=[],
        user="sender",
        password=Secret("s3cret"),
        tls=self_signed(tmp_path, "relay.test")[0],
    )
    client_tls = ssl.create_default_context()
    client_tls.check_hostname = False
    client_tls.verify_mode = ssl.CERT_NONE
    try:
        with smtplib.SMTP("127.0.0.1", controller.port) as client:
            client.ehlo()
            assert "auth" not in client.esmtp_features, "no AUTH before TLS"
            client.starttls(context=client_tls)
            client.ehlo()
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.login("sender", "wrong")
        with smtplib.SMTP("127.0.0.1", controller.port) as client:
            client.starttls(context=client_tls)
            client.login("sender", "s3cret")
            client.sendmail("news@example.com", ["ann@example.org"], MESSAGE)
    finally:
        controller.stop()
        handler.close()
    assert [r for _, r, _ in sink[0].messages] == [["ann@example.org"]]


def test_drop_mode_accepts_and_drops(app: Adieu, sink: tuple[Sink, Controller]) -> None:
    from adieu.smtp.relay import parse_networks

    app.ledger.unsubscribe("gone@example.org", channel=Channel.CLI)
    controller, handler = start_relay(
        app, sink[1].port, allow=parse_networks(["127.0.0.1"]), drop_refused=True
    )
    try:
        with smtplib.SMTP("127.0.0.1", controller.port) as client:
            assert (
                client.sendmail(
                    "news@example.com", ["gone@example.org", "ann@example.org"], MESSAGE
                )
                == {}
            )
    finally:
        controller.stop()
        handler.close()
    assert [r for _, r, _ in sink[0].messages] == [["ann@example.org"]]
    assert handler.counts["refused:unsubscribed"] == 1


def test_the_same_message_sent_at_once_arrives_once_and_a_new_one_arrives_too(
    app: Adieu, relay: tuple[RelayController, RelayHandler], sink: tuple[Sink, Controller]
) -> None:
    """A message is known by its sender and its bytes (Message-ID and Date
    included): the same message sent four times at once is one message to
    deliver, as a client's retry is. The attempts that find it under way are
    told to try again later, and their retries deliver nothing more. Another
    message (another Message-ID) to the same person is delivered."""
    from concurrent.futures import ThreadPoolExecutor

    def send(message: str) -> int:
        with smtplib.SMTP("127.0.0.1", relay[0].port) as client:
            try:
                client.sendmail("news@example.com", ["ann@example.org"], message)
            except smtplib.SMTPDataError as exc:
                return exc.smtp_code
            return 250

    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(send, [MESSAGE] * 4))
    assert set(codes) <= {250, 451} and 250 in codes
    assert [send(MESSAGE) for _ in range(2)] == [250, 250], "retries are told it went"
    assert len(sink[0].messages) == 1
    assert send(MESSAGE.replace("<n1@example.com>", "<n2@example.com>")) == 250
    assert len(sink[0].messages) == 2


def test_size_limit_and_oversized_lines_are_refused(
    relay: tuple[RelayController, RelayHandler], sink: tuple[Sink, Controller]
) -> None:
    big = "From: a@example.com\r\nSubject: big\r\n\r\n" + ("x" * 900 + "\r\n") * 300
    with (
        smtplib.SMTP("127.0.0.1", relay[0].port) as client,
        pytest.raises(smtplib.SMTPSenderRefused) as refused,  # at MAIL: smtplib sends SIZE=
    ):
        client.sendmail("news@example.com", ["ann@example.org"], big)
    assert refused.value.smtp_code == 552
    long_header = "From: a@example.com\r\nX-Long: " + "y" * 5000 + "\r\n\r\nbody\r\n"
    with (
        smtplib.SMTP("127.0.0.1", relay[0].port) as client,
        pytest.raises(smtplib.SMTPDataError) as err,
    ):
        client.sendmail("news@example.com", ["ann@example.org"], long_header)
    assert 500 <= err.value.smtp_code < 600
    assert sink[0].messages == []


def test_adieu_relay_command_with_two_workers(
    app: Adieu, sink: tuple[Sink, Controller], tmp_path: Path
) -> None:
    """The command as an operator runs it: two processes on one port, clean stop."""
    import signal
    import subprocess
    import sys

    port = free_port()
    metrics_port = free_ports(2)
    app.ledger.unsubscribe("left@example.org", channel=Channel.ONE_CLICK)
    env = adieu_env(app.settings, dkim_domain="example.com", dkim_selector="s1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "adieu",
            "relay",
            "--listen",
            f"127.0.0.1:{port}",
            "--upstream",
            f"127.0.0.1:{sink[1].port}",
            "--workers",
            "2",
            "--metrics",
            f"127.0.0.1:{metrics_port}",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc)
        for i in range(6):
            with smtplib.SMTP("127.0.0.1", port) as client:
                client.sendmail("news@example.com", [f"reader{i}@example.org"], MESSAGE)
        with smtplib.SMTP("127.0.0.1", port) as client:
            refused = client.sendmail(
                "news@example.com", ["left@example.org", "reader9@example.org"], MESSAGE
            )
        assert list(refused) == ["left@example.org"]
        counted: dict[str, float] = {}
        for worker in range(2):
            wait_for_port(metrics_port + worker, proc)
            text = httpx.get(f"http://127.0.0.1:{metrics_port + worker}/metrics").text
            for decision, value in re.findall(
                r'adieu_relay_decisions_total\{decision="([^"]+)"\} ([0-9.]+)', text
            ):
                counted[decision] = counted.get(decision, 0) + float(value)
            assert "@" not in text
        assert counted == {"delivered": 7.0, "refused:unsubscribed": 1.0}
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert len(sink[0].messages) == 7
    # the batched send records were written on the way out
    assert app.ledger.status("reader5@example.org").state.last_marketing_send_at is not None


def test_adieu_relay_refuses_a_busy_metrics_port_before_starting(
    app: Adieu, sink: tuple[Sink, Controller]
) -> None:
    """Worker 2's metrics port taken: one clear error up front, not a relay
    quietly running on one worker."""
    import subprocess
    import sys

    port = free_port()
    metrics_port = free_ports(2)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", metrics_port + 1))
        busy.listen()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "adieu",
                "relay",
                "--listen",
                f"127.0.0.1:{port}",
                "--upstream",
                f"127.0.0.1:{sink[1].port}",
                "--workers",
                "2",
                "--metrics",
                f"127.0.0.1:{metrics_port}",
            ],
            env=adieu_env(app.settings),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert f"Cannot listen on 127.0.0.1:{metrics_port + 1}" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


@pytest.mark.parametrize(
    "arg",
    [
        "<a@b.com>",
        "<a@b.com> SIZE=1234 BODY=8BITMIME",
        "<>",
        "<>  SIZE=1",
        " <x.y+z@mail.example.co.uk>",
        '<"q q"@b.com>',
        "a@b.com",
        "<a@b.com",
        "<@route:a@b.com>",
        "<a@b.com> (comment) SIZE=1",
        "",
    ],
)
def test_fast_path_parsing_equals_aiosmtpd(arg: str) -> None:
    from aiosmtpd.smtp import SMTP

    from adieu.smtp.relay import RelaySMTP

    handler = object()
    # aiosmtpd makes an event loop when given none: give one, and close it.
    loop = asyncio.new_event_loop()
    try:
        ours = RelaySMTP(handler, loop=loop)._getaddr(arg)
        assert ours == SMTP(handler, loop=loop)._getaddr(arg)
    finally:
        loop.close()


class AuthSink(Sink):
    def __init__(self) -> None:
        super().__init__()
        self.logins: list[tuple[bytes, bool]] = []

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> Any:
        from aiosmtpd.smtp import AuthResult

        ok = data.login == b"esp-user" and data.password == b"esp-pass"
        self.logins.append((data.login, ok))
        return AuthResult(success=ok)


def test_the_relay_logs_in_to_its_upstream_over_verified_starttls(
    app: Adieu, tmp_path: Path
) -> None:
    from adieu.smtp.relay import parse_networks

    context, ca = self_signed(tmp_path, "upstream.test")
    upstream_handler = AuthSink()
    upstream = Controller(
        upstream_handler,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=upstream_handler.authenticate,
    )
    upstream.start()
    allow = parse_networks(["127.0.0.1/32"])
    good, good_handler = start_relay(
        app,
        upstream.port,
        allow=allow,
        upstream_user="esp-user",
        upstream_password=Secret("esp-pass"),
        upstream_ca_file=str(ca),
    )
    # The same upstream, but its certificate is not trusted: nothing may go.
    distrustful, distrustful_handler = start_relay(
        app,
        upstream.port,
        allow=allow,
        upstream_user="esp-user",
        upstream_password=Secret("esp-pass"),
    )
    try:
        with smtplib.SMTP("127.0.0.1", good.port) as client:
            client.sendmail("news@example.com", ["ann@example.org"], MESSAGE)
        with (
            smtplib.SMTP("127.0.0.1", distrustful.port) as client,
            pytest.raises(smtplib.SMTPDataError) as refused,
        ):
            client.sendmail("news@example.com", ["bob@example.org"], MESSAGE)
        assert refused.value.smtp_code == 451
    finally:
        good.stop()
        good_handler.close()
        distrustful.stop()
        distrustful_handler.close()
        upstream.stop()
    assert [r for _, r, _ in upstream_handler.messages] == [["ann@example.org"]]
    assert upstream_handler.logins == [(b"esp-user", True)]


def test_no_password_goes_to_an_upstream_without_tls(
    app: Adieu, sink: tuple[Sink, Controller]
) -> None:
    from adieu.smtp.relay import parse_networks

    controller, handler = start_relay(
        app,
        sink[1].port,
        allow=parse_networks(["127.0.0.1/32"]),
        upstream_user="esp-user",
        upstream_password=Secret("esp-pass"),
    )
    try:
        with (
            smtplib.SMTP("127.0.0.1", controller.port) as client,
            pytest.raises(smtplib.SMTPDataError) as refused,
        ):
            client.sendmail("news@example.com", ["ann@example.org"], MESSAGE)
    finally:
        controller.stop()
        handler.close()
    assert refused.value.smtp_code == 451, "kept for a retry, never sent in the clear"
    assert sink[0].messages == []
