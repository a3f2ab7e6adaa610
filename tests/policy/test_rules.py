"""The send rules as a pure function of the ledger's state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adieu.ledger import Frequency, Reason, SendState, Suppression, Topic
from adieu.policy import Category, decide

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
NEWS = Topic("news", "News", "", True)
EVENTS = Topic("events", "Events", "", False)
M, T = Category.MARKETING, Category.TRANSACTIONAL


def state(*sups: tuple[str, Reason], **kw: object) -> SendState:
    return SendState(
        known=True,
        suppressions=tuple(
            Suppression(scope, reason, NOW - timedelta(days=1)) for scope, reason in sups
        ),
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("sendstate", "topic", "category", "reason"),
    [
        (SendState(known=False), None, M, "ok"),
        (SendState(known=False), EVENTS, M, "not_subscribed"),
        (SendState(known=False), EVENTS, T, "ok"),
        (state(("all", Reason.UNSUBSCRIBE)), None, M, "unsubscribed"),
        (state(("all", Reason.UNSUBSCRIBE)), None, T, "ok"),
        (state(("all", Reason.COMPLAINT)), NEWS, M, "complaint"),
        (state(("all", Reason.COMPLAINT)), None, T, "ok"),
        (state(("all", Reason.HARD_BOUNCE)), None, T, "hard_bounce"),
        (state(("all", Reason.UNSUBSCRIBE), ("all", Reason.HARD_BOUNCE)), None, M, "hard_bounce"),
        (state(("all", Reason.IMPORT)), None, M, "suppressed"),
        (state(("news", Reason.UNSUBSCRIBE)), NEWS, M, "topic_opt_out"),
        (state(("news", Reason.UNSUBSCRIBE)), None, M, "ok"),
        (state(("news", Reason.UNSUBSCRIBE)), NEWS, T, "ok"),
        (state(), EVENTS, M, "not_subscribed"),
        (state(subscribed_topics=frozenset({"events"})), EVENTS, M, "ok"),
        (state(paused_until=NOW + timedelta(days=1)), None, M, "paused"),
        (state(paused_until=NOW - timedelta(days=1)), None, M, "ok"),
        (state(paused_until=NOW + timedelta(days=1)), None, T, "ok"),
        (
            state(frequency=Frequency.WEEKLY, last_marketing_send_at=NOW - timedelta(days=6)),
            None,
            M,
            "frequency_cap",
        ),
        (
            state(frequency=Frequency.WEEKLY, last_marketing_send_at=NOW - timedelta(days=7)),
            None,
            M,
            "ok",
        ),
        (
            state(frequency=Frequency.MONTHLY, last_marketing_send_at=NOW - timedelta(days=29)),
            None,
            M,
            "frequency_cap",
        ),
        (state(frequency=Frequency.EVERY, last_marketing_send_at=NOW), None, M, "ok"),
    ],
)
def test_decide(sendstate: SendState, topic: Topic | None, category: Category, reason: str) -> None:
    decision = decide(sendstate, topic, category, NOW)
    assert decision.reason == reason
    assert bool(decision) is (reason == "ok")


def test_refusals_say_since_or_until_when() -> None:
    unsub = decide(state(("all", Reason.UNSUBSCRIBE)), None, M, NOW)
    assert unsub.since == NOW - timedelta(days=1)
    capped = decide(
        state(frequency=Frequency.WEEKLY, last_marketing_send_at=NOW - timedelta(days=2)),
        None,
        M,
        NOW,
    )
    assert capped.until == NOW + timedelta(days=5)
