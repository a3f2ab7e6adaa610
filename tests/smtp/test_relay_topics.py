"""The relay and a retired topic: refused for new mail with a clear permanent
reply, whether it comes from ``X-Adieu-Topic`` or the relay's ``--topic``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.smtp import Envelope

from adieu.errors import TopicRetired
from adieu.service import Adieu
from adieu.smtp.relay import RelayConfig, RelayHandler

MESSAGE = (
    b"From: News <news@example.com>\r\nSubject: November\r\nX-Adieu-Topic: news\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nHello from the newsletter.\r\n"
)


@pytest.fixture
def handler(adieu: Adieu) -> Iterator[RelayHandler]:
    adieu.ledger.add_topic("news", "News")
    adieu.ledger.retire_topic("news")
    # Nothing listens upstream: a retired topic is refused before any copy goes.
    made = RelayHandler(adieu, RelayConfig(upstream=("127.0.0.1", 9)))
    yield made
    made.close()


def test_a_retired_x_adieu_topic_is_refused_at_data(handler: RelayHandler) -> None:
    envelope = Envelope()
    envelope.mail_from = "news@example.com"
    envelope.rcpt_tos = ["ann@example.org"]
    envelope.original_content = MESSAGE
    none: Any = None
    reply = asyncio.run(handler.handle_DATA(none, none, envelope))
    assert reply.startswith("554 5.6.0 The topic 'news' is retired"), reply


def test_a_retired_default_topic_is_refused_at_rcpt(handler: RelayHandler) -> None:
    handler.config.topic = "news"
    none: Any = None
    with pytest.raises(TopicRetired) as raised:
        asyncio.run(handler.handle_RCPT(none, none, Envelope(), "ann@example.org", []))
    reply = asyncio.run(handler.handle_exception(raised.value))
    assert reply.startswith("554 5.6.0 The topic 'news' is retired"), reply
