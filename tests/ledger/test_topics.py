"""Topics are retired, never deleted: every link that names one keeps working,
while new links and sends may not name it. On SQLite and PostgreSQL alike."""

from __future__ import annotations

import pytest

from adieu.errors import InvalidInput, TopicExists, TopicRetired, UnknownTopic
from adieu.ledger import Channel, EventType
from adieu.mail.stamper import Stamper
from adieu.policy import Category
from adieu.scopes import ALL
from adieu.service import Adieu

MESSAGE = (
    b"From: News <news@example.com>\r\nSubject: November\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nHello.\r\n"
)


@pytest.fixture
def retired(adieu: Adieu) -> Adieu:
    """A ledger with two topics, "news" retired and "events" in use."""
    adieu.ledger.add_topic("news", "Monthly news")
    adieu.ledger.add_topic("events", "Events")
    adieu.ledger.retire_topic("news")
    return adieu


def test_a_retired_topic_is_found_but_not_offered(retired: Adieu) -> None:
    ledger = retired.ledger
    news = ledger.topic("news")
    assert news.retired and news.retired_at is not None and news.name == "Monthly news"
    assert [t.key for t in ledger.topics()] == ["events"], "not among the choices"
    assert [(t.key, t.retired) for t in ledger.topics(retired=True)] == [
        ("events", False),
        ("news", True),
    ]
    assert ledger.check_scope("news") == "news", "consent records may name it"
    with pytest.raises(UnknownTopic):
        ledger.retire_topic("nope")
    again = ledger.retire_topic("news")
    assert again.retired_at == news.retired_at, "retiring twice changes nothing"


def test_a_retired_topic_takes_no_new_links_or_sends(retired: Adieu) -> None:
    ledger, policy = retired.ledger, retired.policy
    assert ledger.send_scope("events") == "events" and ledger.send_scope(None) == ALL
    for refused in (
        lambda: ledger.send_scope("news"),
        lambda: retired.link("jane@example.com", topic="news"),
        lambda: policy.may_send("jane@example.com", "news"),
        lambda: policy.check_many(["jane@example.com"], "news"),
        lambda: policy.screen("news"),
        lambda: Stamper(retired).stamp(MESSAGE, "jane@example.com", topic="news"),
    ):
        with pytest.raises(TopicRetired, match="'news' is retired") as caught:
            refused()
        assert caught.value.code == "topic_retired"
    # Transactional mail has no topic to refuse; the topic's sendable view is gone.
    assert policy.may_send("jane@example.com", category=Category.TRANSACTIONAL)
    state = ledger.status("jane@example.com").state
    assert set(policy.sendable_by_topic(state)) == {ALL, "events"}


def test_a_retired_topic_still_records_what_its_links_ask(retired: Adieu) -> None:
    """One-click and the landing page's buttons go through ``unsubscribe``;
    the preference center and "subscribe again" through their own calls."""
    ledger = retired.ledger
    left = ledger.unsubscribe("jane@example.com", "news", channel=Channel.ONE_CLICK)
    assert left.changed and left.scope == "news"
    (event,) = ledger.history("jane@example.com")
    assert (event.type, event.scope) == (EventType.UNSUBSCRIBE, "news")
    assert {s.scope for s in ledger.status("jane@example.com").state.suppressions} == {"news"}
    assert retired.policy.is_sendable("jane@example.com"), "all marketing still goes"
    ledger.add_reason("jane@example.com", "too many", channel=Channel.LANDING_PAGE, scope="news")
    assert ledger.history("jane@example.com")[-1].scope == "news"


def test_adding_a_retired_topic_again_brings_it_back(retired: Adieu) -> None:
    ledger = retired.ledger
    with pytest.raises(TopicExists):
        ledger.add_topic("events", "Events")
    with pytest.raises(InvalidInput, match="was opt-in"):
        ledger.add_topic("news", "News", default_opt_in=False)
    back = ledger.add_topic("news", "News again", "Every month")
    assert (back.retired, back.name, back.description) == (False, "News again", "Every month")
    assert ledger.send_scope("news") == "news"
    assert [t.key for t in ledger.topics()] == ["events", "news"]
    assert retired.policy.is_sendable("jane@example.com", "news")
