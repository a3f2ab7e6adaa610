"""The relay's SMTP client sends what smtplib would send, quicker: the MAIL,
RCPT and DATA it writes are compared with smtplib's own for any input, and
so is a copy sent with PIPELINING, with whatever the upstream answers."""

from __future__ import annotations

import smtplib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from adieu.smtp.upstream import _SMTP, _quick_data, _quick_mail, _quick_rcpt, _sendmail


class Recorder(_SMTP):
    """An unconnected client that keeps what it would write."""

    def __init__(self, replies: list[tuple[int, bytes]] | None = None) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.replies = replies or []
        self.does_esmtp = True
        self.ehlo_resp = b"upstream.test"  # greeted already
        self.esmtp_features = {"smtputf8": "", "size": "1000000"}

    def send(self, s: Any) -> None:
        self.written.append(s if isinstance(s, bytes) else s.encode(self.command_encoding))

    def getreply(self) -> tuple[int, bytes]:
        return self.replies.pop(0) if self.replies else (250, b"OK")


local = st.text(alphabet="abcXYZ019!#$%&'*+/=?^_`{|}~.-", min_size=1, max_size=20)
addresses = st.one_of(
    st.builds(lambda a, b: f"{a}@{b}", local, st.from_regex(r"[a-z0-9.-]{1,20}", fullmatch=True)),
    st.text(max_size=40),
    st.just(""),
    st.just("<>"),
)
options = st.lists(st.sampled_from(["SIZE=100", "BODY=8BITMIME", "SMTPUTF8"]), max_size=2)


def written(call: Any, *args: Any) -> tuple[Any, list[bytes]]:
    connection = Recorder([(354, b"go ahead"), (250, b"OK")])
    try:
        outcome: Any = call(connection, *args)
    except Exception as exc:
        outcome = type(exc)
    return outcome, connection.written


@given(addresses, options)
def test_mail_and_rcpt_are_smtplibs(address: str, given_options: list[str]) -> None:
    assert written(_quick_mail, address, given_options) == written(
        smtplib.SMTP.mail, address, given_options
    )
    assert written(_quick_rcpt, address, given_options) == written(
        smtplib.SMTP.rcpt, address, given_options
    )


@given(
    st.binary(max_size=400)
    | st.lists(st.sampled_from([b".", b"\r\n", b"..", b"a", b"\n"])).map(b"".join)
)
def test_data_is_dot_stuffed_as_smtplib_does_it(message: bytes) -> None:
    assert written(_quick_data, message) == written(smtplib.SMTP.data, message)


plain = st.builds(
    lambda a, b: f"{a}@{b}", local, st.from_regex(r"[a-z0-9-]{1,10}\.[a-z]{2,3}", fullmatch=True)
)


def _server(
    mail: int, rcpt: int, data: int, final: int, pipelined: bool, lax: bool
) -> list[tuple[int, bytes]]:
    """What an upstream answers a client that sends one copy: command by
    command (smtplib), or MAIL, RCPT and DATA at once (RFC 2920); then RSET
    (250) after a refusal, as each client resets (smtplib not after DATA
    itself is refused), unless the upstream said 421. A ``lax`` upstream
    takes DATA even without a recipient (RFC 2920 §3.1 says it must not),
    and refuses the empty message then sent."""
    reset = [(250, b"reset")]
    if not pipelined:
        if mail != 250:
            return [(mail, b"mail")] + ([] if mail == 421 else reset)
        if rcpt not in (250, 251):
            return [(mail, b"mail"), (rcpt, b"rcpt")] + ([] if rcpt == 421 else reset)
        if data != 354:
            return [(mail, b"mail"), (rcpt, b"rcpt"), (data, b"data")]
        replies = [(mail, b"mail"), (rcpt, b"rcpt"), (data, b"data"), (final, b"final")]
        return replies + ([] if final in (250, 421) else reset)
    taken = mail == 250 and rcpt in (250, 251)
    rcpt = rcpt if mail == 250 else 503
    data = data if taken or lax else 554
    replies = [(mail, b"mail"), (rcpt, b"rcpt"), (data, b"data")]
    if data == 354:
        replies.append((final, b"final") if taken else (554, b"no valid recipients"))
    if not taken:
        first = mail if mail != 250 else rcpt
    elif data != 354:
        first = data
    else:
        first = final
    return replies + ([] if first in (250, 421) else reset)


@settings(max_examples=400)
@given(
    st.one_of(plain, st.just(""), st.just("<>")),
    plain,
    st.lists(st.sampled_from(["BODY=8BITMIME"]), max_size=1),
    st.sampled_from([250, 421, 451, 550]),
    st.sampled_from([250, 251, 421, 450, 550]),
    st.sampled_from([354, 451, 554]),
    st.sampled_from([250, 421, 451, 552]),
    st.binary(max_size=60),
    st.booleans(),
)
def test_a_pipelined_copy_comes_to_what_smtplib_comes_to(
    sender: str,
    recipient: str,
    given_options: list[str],
    mail: int,
    rcpt: int,
    data: int,
    final: int,
    message: bytes,
    lax: bool,
) -> None:
    def outcome(pipelined: bool) -> tuple[Any, list[bytes]]:
        connection = Recorder(_server(mail, rcpt, data, final, pipelined, lax))
        if pipelined:
            connection.esmtp_features["pipelining"] = ""
        try:
            _sendmail(connection, sender, recipient, message, list(given_options))
        except smtplib.SMTPException as exc:
            result: Any = (type(exc), exc.args)
        else:
            result = "sent"
        # Every reply read, none waited for in vain: the session is in step
        # for the next copy.
        assert connection.replies == []
        return result, connection.written

    ours, ours_written = outcome(pipelined=True)
    theirs, theirs_written = outcome(pipelined=False)
    assert ours == theirs
    if ours == "sent":
        # The same bytes, in two writes rather than four.
        assert b"".join(ours_written) == b"".join(theirs_written)
        assert len(ours_written) == 2 < len(theirs_written)
