"""The operator's stores: API keys, the webhook outbox, and the report's figures
on a seeded ledger (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adieu.errors import InvalidInput, NotFound
from adieu.ledger import Channel, UnsubscribeRequest
from adieu.ledger.vocabulary import DEAD, DELIVERED, PENDING, Scope
from adieu.policy import Category
from adieu.report import add_business_days, build, complaint_status
from adieu.service import Adieu


def test_an_api_key_is_shown_once_and_stored_only_as_a_hash(adieu: Adieu) -> None:
    key, secret = adieu.api_keys.create("crm sync", scope=Scope.READ)
    assert secret.startswith("adieu_") and len(secret) > 40
    assert secret.startswith(key.prefix)
    with adieu.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT * FROM api_keys").all()
    assert secret not in repr(stored) and secret.encode() not in repr(stored).encode()
    found = adieu.api_keys.verify(secret)
    assert found is not None and found.scope is Scope.READ and found.name == "crm sync"
    assert adieu.api_keys.verify(secret + "x") is None
    assert adieu.api_keys.verify("Bearer " + secret) is None
    adieu.api_keys.revoke(str(key.id))
    assert adieu.api_keys.verify(secret) is None
    assert adieu.api_keys.revoke(key.prefix).revoked_at is not None  # twice: no change
    with pytest.raises(NotFound):
        adieu.api_keys.revoke("999")
    with pytest.raises(InvalidInput):
        adieu.api_keys.create("   ")


@pytest.mark.parametrize("scope", list(Scope))
def test_an_api_key_keeps_its_scope(adieu: Adieu, scope: Scope) -> None:
    key, secret = adieu.api_keys.create(f"{scope} key", scope=scope)
    assert key.scope is scope
    found = adieu.api_keys.verify(secret)
    assert found is not None and found.scope is scope
    assert adieu.api_keys.get(key.id).scope is scope
    assert [k.scope for k in adieu.api_keys.list()] == [scope]


def test_a_key_is_admin_unless_told_otherwise_and_no_other_scope_is_taken(adieu: Adieu) -> None:
    key, _ = adieu.api_keys.create("ops")
    assert key.scope is Scope.ADMIN
    with pytest.raises(InvalidInput, match="read, send or admin"):
        adieu.api_keys.create("odd", scope="write")  # type: ignore[arg-type]
    assert [k.name for k in adieu.api_keys.list()] == ["ops"]


def test_each_scope_allows_the_ones_before_it() -> None:
    allowed = {(a, b) for a in Scope for b in Scope if a.allows(b)}
    assert allowed == {
        (Scope.READ, Scope.READ),
        (Scope.SEND, Scope.READ),
        (Scope.SEND, Scope.SEND),
        (Scope.ADMIN, Scope.READ),
        (Scope.ADMIN, Scope.SEND),
        (Scope.ADMIN, Scope.ADMIN),
    }


def test_every_matching_event_is_queued_in_its_own_transaction(adieu: Adieu) -> None:
    everything = adieu.outbox.create_webhook("https://crm.example/hook")
    complaints = adieu.outbox.create_webhook("http://127.0.0.1:9/x", ["complaint"])
    ledger = adieu.ledger
    ledger.unsubscribe("a@example.com", channel=Channel.ONE_CLICK)
    ledger.record_complaint("b@example.com", details={"feedback_type": "abuse"})
    ledger.unsubscribe_many(
        [UnsubscribeRequest(f"c{i}@example.com", channel=Channel.API) for i in range(5)]
    )
    ledger.unsubscribe("a@example.com", channel=Channel.ONE_CLICK)  # no change, no event
    letters = adieu.outbox.letters(limit=100)
    assert sorted(x.webhook_id for x in letters if x.webhook_id == complaints.id) == [complaints.id]
    assert len([x for x in letters if x.webhook_id == everything.id]) == 7
    assert {x.state for x in letters} == {PENDING}


def test_deliveries_keep_order_per_address_and_retry_then_die(adieu: Adieu) -> None:
    hook = adieu.outbox.create_webhook("https://crm.example/hook")
    ledger = adieu.ledger
    ledger.unsubscribe("a@example.com", channel=Channel.ONE_CLICK)
    ledger.resubscribe("a@example.com", channel=Channel.PREFERENCES)
    ledger.unsubscribe("b@example.com", channel=Channel.ONE_CLICK)
    first = adieu.outbox.claim(limit=10)
    # Only the head of each address: a's resubscribe waits for its unsubscribe.
    assert [(d.event["address"], d.event["type"]) for d in first] == [
        ("a@example.com", "unsubscribe"),
        ("b@example.com", "unsubscribe"),
    ]
    assert adieu.outbox.claim(limit=10) == [], "leased rows are not handed out twice"
    a, b = first
    assert a.secret == hook.secret
    adieu.outbox.delivered([b.id])
    later = ledger.now() + timedelta(minutes=5)
    adieu.outbox.failed([(a.id, "HTTP 503", later)])
    assert adieu.outbox.claim(limit=10) == [], "a's next event waits behind its retry"
    adieu.outbox.failed([(a.id, "HTTP 503", None)])  # gave up: a dead letter
    (nxt,) = adieu.outbox.claim(limit=10)
    assert nxt.event["type"] == "resubscribe"
    adieu.outbox.delivered([nxt.id])
    backlog = adieu.outbox.backlog()
    assert (backlog.pending, backlog.dead) == (0, 1)
    (dead,) = adieu.outbox.letters(DEAD)
    assert dead.attempts == 2 and dead.last_error == "HTTP 503"
    assert adieu.outbox.replay() == 1
    (again,) = adieu.outbox.claim(limit=10)
    assert again.id == a.id and again.attempts == 0
    adieu.outbox.delivered([again.id])
    assert {x.state for x in adieu.outbox.letters()} == {DELIVERED}


def test_an_erased_address_is_not_sent_to_webhooks(adieu: Adieu) -> None:
    adieu.outbox.create_webhook("https://crm.example/hook")
    adieu.ledger.unsubscribe("gone@example.com", channel=Channel.ONE_CLICK)
    adieu.ledger.erase("gone@example.com", channel=Channel.API)
    docs = [d.event for d in adieu.outbox.claim(limit=10)]
    assert docs and all(d["address"] is None for d in docs)
    assert all(len(d["contact"]) == 64 for d in docs)


def test_check_many_gives_each_address_its_decision_in_order(adieu: Adieu) -> None:
    ledger = adieu.ledger
    ledger.add_topic("news", "News")
    ledger.unsubscribe("left@example.com", channel=Channel.ONE_CLICK)
    ledger.unsubscribe("topic@example.com", "news", channel=Channel.PREFERENCES)
    decisions = adieu.policy.check_many(
        ["new@example.com", "LEFT@example.com", "not an address", "topic@example.com"],
        topic="news",
    )
    assert [d.reason for d in decisions] == [
        "ok",
        "unsubscribed",
        "invalid_address",
        "topic_opt_out",
    ]
    transactional = adieu.policy.check_many(["left@example.com"], category=Category.TRANSACTIONAL)
    assert transactional[0].allowed


def test_the_report_counts_a_seeded_ledger_exactly(adieu: Adieu) -> None:
    ledger = adieu.ledger
    ledger.add_topic("news", "News")
    day1 = datetime(2026, 11, 2, 10, tzinfo=UTC)  # a Monday
    day2 = day1 + timedelta(days=1)
    ledger.record_sends(
        [f"r{i}@example.com" for i in range(1000)], topic="news", campaign="nov", at=day1
    )
    ledger.record_sends([f"s{i}@example.com" for i in range(400)], campaign="dec", at=day2)
    for i in range(3):
        ledger.unsubscribe(
            f"r{i}@example.com", channel=Channel.ONE_CLICK, campaign="nov", at=day1, scope="news"
        )
    ledger.unsubscribe("r10@example.com", channel=Channel.LANDING_PAGE, campaign="nov", at=day1)
    ledger.add_reason(
        "r10@example.com", "too_many", choice="too_many", channel=Channel.LANDING_PAGE
    )
    ledger.add_reason("r0@example.com", "Too many!", channel=Channel.LANDING_PAGE, scope="news")
    ledger.record_complaint("r20@example.com", campaign="nov", at=day1)
    for i in range(2):
        ledger.record_complaint(f"s{i}@example.com", campaign="dec", at=day2)
    ledger.record_bounce("s9@example.com", hard=True, campaign="dec", at=day2)
    report = build(adieu.stats, day1 - timedelta(days=1), day2 + timedelta(hours=1))
    assert report.total.sends == 1400
    assert report.total.unsubscribes == {"one_click": 3, "landing_page": 1}
    assert report.total.complaints == 3
    by_key = {(line.day, line.campaign, line.topic): line for line in report.lines}
    news = by_key[(day1.date(), "nov", "news")]
    assert (news.sends, news.unsubscribes) == (1000, {"one_click": 3})
    nov_all = by_key[(day1.date(), "nov", None)]
    assert nov_all.complaints == 1 and nov_all.unsubscribes == {"landing_page": 1}
    dec = by_key[(day2.date(), "dec", None)]
    assert dec.complaint_rate == pytest.approx(2 / 400)
    assert dec.complaint_status == "breach"
    assert dec.hard_bounce_rate == pytest.approx(1 / 400)
    assert [d.day for d in report.days] == [day1.date(), day2.date()]
    assert {(r["choice"], r["text"], r["count"]) for r in report.reasons} == {
        ("too_many", None, 1),
        (None, "too many!", 1),
    }
    # The requests above were "asked" on day 1 or 2 and committed today.
    assert report.to_commit.count == 7
    assert report.to_commit.within_48_hours is False
    assert report.to_webhooks.count == 0
    as_json = report.as_dict()
    assert as_json["total"]["complaint_rate"] == pytest.approx(3 / 1400)


def test_complaint_thresholds_and_business_days() -> None:
    assert complaint_status(0, 1000) == "ok"
    assert complaint_status(1, 1001) == "ok"
    assert complaint_status(1, 1000) == "watch"
    assert complaint_status(3, 1000) == "breach"
    assert complaint_status(1, 0) == "unknown"
    friday = datetime(2026, 11, 27, 12, tzinfo=UTC)
    assert add_business_days(friday, 10) == datetime(2026, 12, 11, 12, tzinfo=UTC)


def test_old_delivery_records_are_pruned_and_pending_ones_never(adieu: Adieu) -> None:
    adieu.outbox.create_webhook("https://crm.example/hook")
    adieu.ledger.unsubscribe("a@example.com", channel=Channel.ONE_CLICK)
    adieu.ledger.unsubscribe("b@example.com", channel=Channel.ONE_CLICK)
    first, _ = adieu.outbox.claim(limit=10)
    adieu.outbox.delivered([first.id])
    assert adieu.outbox.prune(timedelta(days=1)) == 0, "delivered just now: kept"
    assert adieu.outbox.prune(timedelta(seconds=-1)) == 1, "older than the cutoff: gone"
    (left,) = adieu.outbox.letters()
    assert left.state == PENDING
    assert len(adieu.stats.events()) == 2, "the events themselves stay"
