"""The relay's SMTP client sends what smtplib would send, quicker: the MAIL,
RCPT and DATA it writes are compared with smtplib's own for any input."""

from __future__ import annotations

import smtplib
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from adieu.smtp.upstream import _quick_data, _quick_mail, _quick_rcpt


class Recorder(smtplib.SMTP):
    """An unconnected client that keeps what it would write."""

    def __init__(self, replies: list[tuple[int, bytes]] | None = None) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.replies = replies or []
        self.does_esmtp = True
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
