"""The relay reads a message's DATA in blocks (``FastPathSMTP.smtp_DATA``):
for any bytes a client sends, the same replies, the same message handed on
and the same bytes left unread as aiosmtpd's own line-by-line reader."""

from __future__ import annotations

import asyncio
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from hypothesis import given, settings
from hypothesis import strategies as st

from adieu.smtp.server import FastPathSMTP

#: Pieces a message is made of, chosen for the edges of the reader: dots at
#: the start of a line, the end line in all its false forms, bare CR and LF
#: (the smuggling trick), NUL, and lines near aiosmtpd's 1,001-byte limit.
_PIECES = st.sampled_from(
    [
        b".",
        b"..",
        b"\r\n",
        b"\r",
        b"\n",
        b"x",
        b"\0",
        b".\r\n",
        b"\n.\n",
        b"\r\n.\r\n",
        b"\r\n.\n",
        b"x" * 300,
        b"x" * 997,
        b"x" * 999,
        b"y" * 1001,
        b"z" * 2500,
    ]
)
_STREAMS = st.lists(st.one_of(_PIECES, st.binary(max_size=30)), max_size=30).map(b"".join)
_LIMITS = st.sampled_from([None, 1, 40, 1000, 1003, 2000, 4000, 100_000])


class _Writer:
    def __init__(self) -> None:
        self.replies: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.replies.append(data)

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        return None


class _Keeper:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.original_content)
        return "250 2.0.0 Kept"


def _conversation(
    server_class: type[SMTP], stream: bytes, limit: int | None
) -> tuple[list[bytes], list[bytes], bytes]:
    """DATA on ``server_class`` given ``stream``: the replies, the messages
    its handler got, and what was left unread."""

    async def run() -> tuple[list[bytes], list[bytes], bytes]:
        keeper = _Keeper()
        server = server_class(keeper, data_size_limit=limit, loop=asyncio.get_running_loop())
        reader = asyncio.StreamReader(limit=server.line_length_limit)
        reader.feed_data(stream)
        reader.feed_eof()
        writer = _Writer()
        server._reader = reader
        server._writer = writer  # type: ignore[assignment]
        server.transport = object()  # type: ignore[assignment]
        server.session = Session(asyncio.get_running_loop())
        server.session.peer = ("192.0.2.1", 25)  # type: ignore[assignment]
        server.session.host_name = "client.example"
        server.envelope = Envelope()
        server.envelope.rcpt_tos.append("ann@example.org")
        await server.smtp_DATA("")
        return writer.replies, keeper.messages, await reader.read()

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(run())
    finally:
        loop.close()


@settings(max_examples=400, deadline=None)
@given(_STREAMS, _STREAMS, _LIMITS)
def test_block_reader_equals_aiosmtpd(message: bytes, after: bytes, limit: int | None) -> None:
    # The end of DATA, then what a client might send next (or smuggle).
    stream = message + b"\r\n.\r\n" + after + b"QUIT\r\n"
    assert _conversation(FastPathSMTP, stream, limit) == _conversation(SMTP, stream, limit)


def test_an_empty_message_and_a_first_line_of_one_dot() -> None:
    for stream in (b".\r\nQUIT\r\n", b"\r\n.\r\nQUIT\r\n", b"..\r\n.\r\nQUIT\r\n"):
        replies, messages, rest = _conversation(FastPathSMTP, stream, 1000)
        assert (replies, messages, rest) == _conversation(SMTP, stream, 1000)
        assert rest == b"QUIT\r\n"
    assert _conversation(FastPathSMTP, b"..\r\n.\r\n", 1000)[1] == [b".\r\n"]


def test_too_much_and_too_long_are_refused_and_nothing_is_kept() -> None:
    big = (b"x" * 900 + b"\r\n") * 30 + b".\r\nQUIT\r\n"
    replies, messages, rest = _conversation(FastPathSMTP, big, 10_000)
    assert replies[-1] == b"552 Error: Too much mail data\r\n"
    assert (messages, rest) == ([], b"QUIT\r\n")
    long_line = b"Subject: " + b"y" * 5000 + b"\r\n\r\nbody\r\n.\r\nQUIT\r\n"
    replies, messages, rest = _conversation(FastPathSMTP, long_line, 100_000)
    assert replies[-1] == b"500 Line too long (see RFC5321 4.5.3.1.6)\r\n"
    assert (messages, rest) == ([], b"QUIT\r\n")


_HEADER_PIECES = st.sampled_from(
    [
        b"From: News <news@example.com>",
        b"from:a@example.com",
        b"From ",
        b"X-Adieu-Topic: news",
        b"x-adieu-topic:\t weekly ",
        b"X-ADIEU-CAMPAIGN: nov",
        b"X-Adieu-Category: transactional",
        b"Subject: caf\xc3\xa9",
        b": no name",
        b"Bad Name: x",
        b"\r\n",
        b"\r\n ",
        b"\r\n\t",
        b" ",
        b"\r",
        b"\n",
        b":",
        b"x",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(_HEADER_PIECES, st.binary(max_size=8)), max_size=16).map(b"".join))
def test_header_values_equal_the_email_parser(head: bytes) -> None:
    from email import policy
    from email.parser import BytesHeaderParser

    from adieu.smtp.relay import header_values

    names = ("from", "x-adieu-category", "x-adieu-topic", "x-adieu-campaign", "subject")
    head = head.split(b"\r\n\r\n")[0]  # a header block ends at the first empty line
    parsed = BytesHeaderParser(policy=policy.compat32).parsebytes(head + b"\r\n\r\n")
    ours = header_values(head, names)
    assert {n: str(v) for n, v in ours.items()} == {
        n: str(parsed.get(n)) for n in names if parsed.get(n) is not None
    }
