"""The inbound doors read every recipient of a message: the SMTP listener
records each RCPT, the LMTP listener answers once per recipient after DATA
(RFC 2033 §4.2), and ``adieu inbound -`` takes one or more recipients and
exits so that the MTA never bounces a message back to a person (sysexits:
75 for anything that may pass, with the file named)."""

from __future__ import annotations

import smtplib
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import OperationalError

from adieu.feedback.intake import Intake
from adieu.service import Adieu
from adieu.smtp.inbound import InboundHandler, make_server
from conftest import MakeSettings
from support import adieu_env, free_port

UNSUB = "unsub.example.net"


@pytest.fixture
def app(make_settings: MakeSettings) -> Iterator[Adieu]:
    adieu = Adieu(make_settings(mailto_domain=UNSUB, inbound_trust="token"))
    yield adieu
    adieu.close()


def mailto_of(app: Adieu, address: str) -> str:
    app.ledger.record_sends([address], category="marketing")
    link = app.link(address)
    assert link.compact is not None
    return f"unsubscribe+{link.compact}@{UNSUB}"


def unsubscribe_mail(*to: str) -> bytes:
    """What a mail program sends for a mailto unsubscribe; a person who
    unsubscribes from two lists at once writes to both addresses."""
    return (
        f"From: Reader <reader@example.org>\r\nTo: {', '.join(to)}\r\n"
        "Subject: unsubscribe\r\n\r\nunsubscribe\r\n"
    ).encode()


def left(app: Adieu, address: str) -> bool:
    return not app.policy.may_send(address, category="marketing")


class LMTPController(Controller):
    def factory(self) -> Any:
        return make_server(self.handler, lmtp=True)


@pytest.fixture
def smtp_listener(app: Adieu) -> Iterator[int]:
    controller = Controller(InboundHandler(Intake(app)), hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port
    controller.stop()


@pytest.fixture
def lmtp_listener(app: Adieu) -> Iterator[int]:
    controller = LMTPController(InboundHandler(Intake(app)), hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port
    controller.stop()


def lmtp(port: int, recipients: list[str], message: bytes) -> list[bytes]:
    """One LMTP transaction, spoken by hand (smtplib reads one reply to DATA);
    the replies after the message, one line each."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        stream = sock.makefile("rwb")

        def reply() -> bytes:
            lines = [stream.readline()]
            while lines[-1][3:4] == b"-":
                lines.append(stream.readline())
            return lines[-1]

        def say(line: bytes) -> bytes:
            stream.write(line + b"\r\n")
            stream.flush()
            return reply()

        assert reply().startswith(b"220")
        assert say(b"LHLO mx.example.net").startswith(b"250")
        assert say(b"MAIL FROM:<reader@example.org>").startswith(b"250")
        for recipient in recipients:
            assert say(f"RCPT TO:<{recipient}>".encode()).startswith(b"250")
        assert say(b"DATA").startswith(b"354")
        stream.write(message + b".\r\n")
        stream.flush()
        sock.settimeout(3)
        replies = []
        for _ in recipients:
            try:
                replies.append(reply())
            except TimeoutError:
                break
        say(b"QUIT")
        return replies


def test_the_smtp_listener_records_every_recipient(app: Adieu, smtp_listener: int) -> None:
    ann, bob = mailto_of(app, "ann@example.org"), mailto_of(app, "bob@example.org")
    with smtplib.SMTP("127.0.0.1", smtp_listener) as client:
        assert client.sendmail("reader@example.org", [ann, bob], unsubscribe_mail(ann, bob)) == {}
    assert left(app, "ann@example.org") and left(app, "bob@example.org")


def test_a_mailto_recipient_counts_even_when_to_names_others(app: Adieu) -> None:
    ann, bob = mailto_of(app, "ann@example.org"), mailto_of(app, "bob@example.org")
    (result,) = Intake(app).process_each(unsubscribe_mail(ann, bob), [bob.upper()])
    assert result.applied == [("mailto", "b•••@example.org")]
    assert left(app, "bob@example.org") and not left(app, "ann@example.org")


def test_the_lmtp_listener_answers_once_per_recipient(app: Adieu, lmtp_listener: int) -> None:
    ann, bob = mailto_of(app, "ann@example.org"), mailto_of(app, "bob@example.org")
    replies = lmtp(lmtp_listener, [ann, bob], unsubscribe_mail(ann, bob))
    assert [r[:3] for r in replies] == [b"250", b"250"]
    assert left(app, "ann@example.org") and left(app, "bob@example.org")


def test_lmtp_tells_which_recipient_to_try_again(
    app: Adieu, lmtp_listener: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann, bob = mailto_of(app, "ann@example.org"), mailto_of(app, "bob@example.org")
    unsubscribe = app.ledger.unsubscribe

    def flaky(address: str, *args: Any, **kw: Any) -> Any:
        if address == "bob@example.org":
            raise OperationalError("UPDATE", {}, Exception("database is locked"))
        return unsubscribe(address, *args, **kw)

    monkeypatch.setattr(app.ledger, "unsubscribe", flaky)
    replies = lmtp(lmtp_listener, [ann, bob], unsubscribe_mail(ann, bob))
    assert [r[:5] for r in replies] == [b"250 2", b"451 4"]
    assert left(app, "ann@example.org") and not left(app, "bob@example.org")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    recipients=st.lists(st.text(min_size=1, max_size=80), min_size=1, max_size=4),
    body=st.binary(max_size=300),
)
def test_any_recipients_give_one_result_each_and_change_nothing_unproved(
    app: Adieu, recipients: list[str], body: bytes
) -> None:
    results = Intake(app).process_each(b"Subject: x\r\n\r\n" + body, recipients)
    assert len(results) == len(recipients)
    assert all(r.applied == [] for r in results)


# -- the pipe ---------------------------------------------------------------------------------


def pipe(env: dict[str, str], *args: str, data: bytes) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "adieu", "inbound", "-", *args],
        input=data.decode(),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_pipe_takes_every_recipient_postfix_gives(app: Adieu) -> None:
    ann, bob = mailto_of(app, "ann@example.org"), mailto_of(app, "bob@example.org")
    env = adieu_env(app.settings, mailto_domain=UNSUB, inbound_trust="token")
    # argv=... inbound - --recipient ${recipient}, with two recipients
    done = pipe(env, "--recipient", ann, bob, data=unsubscribe_mail(ann, bob))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["mailto\ta•••@example.org", "mailto\tb•••@example.org"]
    assert left(app, "ann@example.org") and left(app, "bob@example.org")


def test_the_pipe_says_try_later_naming_the_file_it_cannot_use(app: Adieu, tmp_path: Path) -> None:
    ann = mailto_of(app, "ann@example.org")
    env = adieu_env(app.settings, mailto_domain=UNSUB)
    broken_key = tmp_path / "key-is-a-directory"
    broken_key.mkdir()
    config_dir = tmp_path / "adieu.toml"
    config_dir.mkdir()
    cases = {
        "key file": (dict(env, ADIEU_KEYS_FILE=str(broken_key)), str(broken_key)),
        "settings file": (dict(env, ADIEU_CONFIG=str(config_dir)), str(config_dir)),
        "bad setting": (dict(env, ADIEU_INBOUND_TRUST="sometimes"), "INBOUND_TRUST"),
    }
    for case, (environment, named) in cases.items():
        done = pipe(environment, "--recipient", ann, data=unsubscribe_mail(ann))
        assert done.returncode == 75, (case, done.returncode, done.stderr)
        assert named in done.stderr, (case, done.stderr)
        assert "Traceback" not in done.stderr, case
    assert not left(app, "ann@example.org")
    done = pipe(env, ann, data=unsubscribe_mail(ann))
    assert done.returncode == 0 and left(app, "ann@example.org")


@pytest.mark.parametrize("junk", [b"", b"not a message at all, not one header field\r\n"])
def test_a_message_nobody_can_read_is_kept_and_never_bounced(
    app: Adieu, tmp_path: Path, junk: bytes
) -> None:
    # Kept for review: done, exit 0 (65 would make the MTA bounce it to its writer).
    env = adieu_env(app.settings, mailto_domain=UNSUB)
    done = pipe(env, "--recipient", f"unsubscribe@{UNSUB}", data=junk)
    assert done.returncode == 0, (done.returncode, done.stderr)
    assert "Kept for review" in done.stdout
    assert [note for _, _, _, note, _ in app.ledger.review_items()] == [
        "unusable: no header fields"
    ]
    # Nowhere to keep it: try later (75), the MTA keeps the message meanwhile.
    (tmp_path / "no").write_text("a file where a directory should be")
    broken = dict(env, ADIEU_DATABASE_URL=f"sqlite:///{tmp_path}/no/x.db")
    later = pipe(broken, "--recipient", f"unsubscribe@{UNSUB}", data=junk)
    assert later.returncode == 75, (later.returncode, later.stderr)
    assert "Traceback" not in later.stderr
