"""The ledger's operations, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Table, event, func, select

from adieu.errors import Erased, InvalidAddress, InvalidInput, TopicExists, UnknownTopic
from adieu.ledger import Channel, EventType, Frequency, Reason, SuppressionRecord
from adieu.ledger import schema as t
from adieu.ledger.records import PreferenceChange
from adieu.service import Adieu
from adieu.times import iso

T0 = datetime(2026, 5, 4, 9, 30, tzinfo=UTC)


def count(adieu: Adieu, table: Table) -> int:
    with adieu.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_unsubscribe_is_idempotent_and_says_since_when(adieu: Adieu) -> None:
    ledger = adieu.ledger
    first = ledger.unsubscribe("Jane@Example.com", channel=Channel.ONE_CLICK, at=T0)
    assert first.changed and first.since == T0
    again = ledger.unsubscribe(
        "jane@example.com", channel=Channel.LANDING_PAGE, at=T0 + timedelta(days=3)
    )
    assert not again.changed
    assert again.since == T0
    assert [e.type for e in ledger.history("jane@example.com")] == [EventType.UNSUBSCRIBE]
    assert count(adieu, t.suppressions) == 1


def test_unsubscribe_records_channel_campaign_and_details(adieu: Adieu) -> None:
    adieu.ledger.unsubscribe(
        "jane@example.com",
        channel=Channel.ONE_CLICK,
        campaign="spring",
        details={"key_id": 1},
        at=T0,
    )
    (event,) = adieu.ledger.history("jane@example.com")
    assert (event.channel, event.campaign, event.scope, event.at) == (
        Channel.ONE_CLICK,
        "spring",
        "all",
        T0,
    )
    assert event.details == {"key_id": 1}


def test_resubscribe_lifts_an_unsubscribe_but_never_a_hard_bounce(adieu: Adieu) -> None:
    ledger, policy = adieu.ledger, adieu.policy
    ledger.unsubscribe("jane@example.com", channel=Channel.CLI)
    assert not policy.is_sendable("jane@example.com")
    assert ledger.resubscribe("jane@example.com", channel=Channel.CLI).changed
    assert policy.is_sendable("jane@example.com")
    assert not ledger.resubscribe("jane@example.com", channel=Channel.CLI).changed

    ledger.record_bounce("bob@example.com", hard=True)
    ledger.unsubscribe("bob@example.com", channel=Channel.CLI)
    outcome = ledger.resubscribe("bob@example.com", channel=Channel.CLI)
    assert outcome.detail == "hard_bounce"
    assert policy.may_send("bob@example.com").reason == "hard_bounce"


def test_topic_unsubscribe_leaves_other_topics(adieu: Adieu) -> None:
    ledger, policy = adieu.ledger, adieu.policy
    ledger.add_topic("news", "News")
    ledger.add_topic("offers", "Offers")
    ledger.unsubscribe("jane@example.com", "news", channel=Channel.ONE_CLICK)
    assert policy.may_send("jane@example.com", "news").reason == "topic_opt_out"
    assert policy.is_sendable("jane@example.com", "offers")
    assert policy.is_sendable("jane@example.com")
    ledger.resubscribe("jane@example.com", "news", channel=Channel.PREFERENCES)
    assert policy.is_sendable("jane@example.com", "news")


def test_topics_are_validated(adieu: Adieu) -> None:
    ledger = adieu.ledger
    ledger.add_topic("news", "News", "Monthly news")
    with pytest.raises(TopicExists):
        ledger.add_topic("news", "Again")
    for bad in ("all", "News", "", "a b", "x" * 65):
        with pytest.raises(InvalidInput):
            ledger.add_topic(bad, "Name")
    with pytest.raises(UnknownTopic):
        ledger.unsubscribe("jane@example.com", "nope", channel=Channel.CLI)
    assert count(adieu, t.contacts) == 0, "a failed call writes nothing"
    assert [topic.key for topic in ledger.topics()] == ["news"]


def test_opt_out_topics_need_an_explicit_yes(adieu: Adieu) -> None:
    ledger, policy = adieu.ledger, adieu.policy
    ledger.add_topic("events", "Events", default_opt_in=False)
    assert policy.may_send("jane@example.com", "events").reason == "not_subscribed"
    assert policy.is_sendable("jane@example.com")
    ledger.set_preferences("jane@example.com", topics={"events": True})
    assert policy.is_sendable("jane@example.com", "events")
    ledger.set_preferences("jane@example.com", topics={"events": False})
    assert not policy.is_sendable("jane@example.com", "events")


def test_set_preferences_reports_changes_and_records_one_event(adieu: Adieu) -> None:
    ledger = adieu.ledger
    ledger.add_topic("news", "News")
    until = T0 + timedelta(days=30)
    changes = ledger.set_preferences(
        "jane@example.com",
        topics={"news": False},
        frequency=Frequency.WEEKLY,
        paused_until=until,
        at=T0,
    )
    assert PreferenceChange("topic", True, False, "news") in changes
    assert PreferenceChange("frequency", "every", "weekly") in changes
    assert PreferenceChange("paused_until", None, iso(until)) in changes
    assert ledger.set_preferences("jane@example.com", topics={"news": False}, at=T0) == []
    events = ledger.history("jane@example.com")
    assert [e.type for e in events] == [EventType.PREFERENCES]
    state = ledger.status("jane@example.com").state
    assert state.frequency is Frequency.WEEKLY and state.paused_until == until


def test_complaint_suppresses_marketing_but_not_transactional(adieu: Adieu) -> None:
    ledger, policy = adieu.ledger, adieu.policy
    outcome = ledger.record_complaint(
        "jane@example.com", campaign="c1", details={"feedback_type": "abuse"}
    )
    assert outcome.changed
    assert policy.may_send("jane@example.com").reason == "complaint"
    assert policy.is_sendable("jane@example.com", category="transactional")
    assert ledger.status("jane@example.com").suppressed_since is not None


def test_hard_bounce_blocks_everything(adieu: Adieu) -> None:
    ledger, policy = adieu.ledger, adieu.policy
    assert ledger.record_bounce("jane@example.com", hard=True).changed
    assert policy.may_send("jane@example.com", category="transactional").reason == "hard_bounce"
    assert not ledger.record_bounce("jane@example.com", hard=True).changed


def test_soft_bounces_become_hard_at_the_threshold_within_the_window(adieu: Adieu) -> None:
    ledger, policy = adieu.ledger, adieu.policy  # limit 3 within 30 days (defaults)
    ledger.record_bounce("jane@example.com", hard=False, at=T0)
    ledger.record_bounce(
        "jane@example.com", hard=False, at=T0 + timedelta(days=40)
    )  # window restarts
    second = ledger.record_bounce("jane@example.com", hard=False, at=T0 + timedelta(days=41))
    assert not second.changed and second.detail == "soft:2"
    assert policy.is_sendable("jane@example.com", at=T0 + timedelta(days=41))
    third = ledger.record_bounce("jane@example.com", hard=False, at=T0 + timedelta(days=42))
    assert third.changed and third.reason is Reason.HARD_BOUNCE
    assert policy.may_send("jane@example.com", category="transactional").reason == "hard_bounce"


def test_frequency_cap_counts_recorded_sends(adieu: Adieu) -> None:
    ledger, policy = adieu.ledger, adieu.policy
    ledger.set_preferences("jane@example.com", frequency=Frequency.WEEKLY)
    ledger.record_send("jane@example.com", at=T0)
    assert policy.may_send("jane@example.com", at=T0 + timedelta(days=3)).reason == "frequency_cap"
    assert policy.is_sendable("jane@example.com", at=T0 + timedelta(days=8))
    ledger.record_send("jane@example.com", category="transactional", at=T0 + timedelta(days=8))
    assert policy.is_sendable("jane@example.com", at=T0 + timedelta(days=8))
    assert count(adieu, t.sends) == 2


def test_pause_blocks_marketing_until_it_ends(adieu: Adieu) -> None:
    ledger, policy = adieu.ledger, adieu.policy
    ledger.set_preferences("jane@example.com", paused_until=T0 + timedelta(days=30), at=T0)
    assert policy.may_send("jane@example.com", at=T0 + timedelta(days=1)).reason == "paused"
    assert policy.is_sendable("jane@example.com", category="transactional", at=T0)
    assert policy.is_sendable("jane@example.com", at=T0 + timedelta(days=31))


def test_unknown_addresses_are_sendable_and_reading_writes_nothing(adieu: Adieu) -> None:
    assert adieu.policy.is_sendable("new@example.com")
    assert adieu.ledger.status("new@example.com").known is False
    assert count(adieu, t.contacts) == 0


def test_invalid_address_writes_nothing(adieu: Adieu) -> None:
    with pytest.raises(InvalidAddress):
        adieu.ledger.unsubscribe("not an address", channel=Channel.CLI)
    assert count(adieu, t.contacts) == 0 and count(adieu, t.events) == 0


def test_a_failure_inside_an_operation_leaves_no_partial_write(adieu: Adieu) -> None:
    """The database fails at the last write of an unsubscribe: nothing of it stays."""

    def fail_on_suppression(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO SUPPRESSIONS"):
            raise RuntimeError("disk full")

    event.listen(adieu.engine, "before_cursor_execute", fail_on_suppression)
    try:
        with pytest.raises(RuntimeError):
            adieu.ledger.unsubscribe("jane@example.com", channel=Channel.CLI)
    finally:
        event.remove(adieu.engine, "before_cursor_execute", fail_on_suppression)
    assert count(adieu, t.events) == 0 and count(adieu, t.contacts) == 0
    assert adieu.ledger.unsubscribe("jane@example.com", channel=Channel.CLI).changed


def test_erase_forgets_the_address_but_keeps_it_suppressed(adieu: Adieu) -> None:
    ledger, policy = adieu.ledger, adieu.policy
    ledger.unsubscribe(
        "jane@example.com", channel=Channel.ONE_CLICK, reason="too many mails", details={"ua": "x"}
    )
    assert ledger.erase("jane@example.com", channel=Channel.API).changed
    with adieu.engine.connect() as conn:
        assert conn.execute(select(t.contacts.c.address)).scalars().all() == [None]
        assert (
            conn.execute(select(t.events.c.reason, t.events.c.details)).all() == [(None, None)] * 2
        )
    status = ledger.status("jane@example.com")
    assert status.address is None and status.erased_at is not None
    assert [e.type for e in status.events] == [EventType.UNSUBSCRIBE, EventType.ERASE]
    assert not policy.is_sendable("jane@example.com")
    # importing the address again does not bring it back
    result = ledger.import_suppressions([SuppressionRecord(address="jane@example.com")])
    assert result.already == 1
    # erasure is final: no resubscribe lifts it, not even an operator's
    with pytest.raises(Erased):
        ledger.resubscribe("jane@example.com", channel=Channel.API)
    with pytest.raises(Erased):
        ledger.resubscribe(
            "jane@example.com", channel=Channel.CLI, lift=["complaint"], note="asked by phone"
        )
    assert not policy.is_sendable("jane@example.com")
    with adieu.engine.connect() as conn:
        assert conn.execute(select(t.contacts.c.address)).scalars().all() == [None]
    assert not ledger.erase("jane@example.com", channel=Channel.API).changed


def test_import_and_export_round_trip(adieu: Adieu) -> None:
    ledger = adieu.ledger
    ledger.add_topic("news", "News")
    since = datetime(2025, 1, 2, tzinfo=UTC)
    records = [
        SuppressionRecord(address="a@example.com", reason=Reason.HARD_BOUNCE, since=since),
        SuppressionRecord(address="b@example.com", reason=Reason.COMPLAINT),
        SuppressionRecord(address="c@example.com", scope="news", reason=Reason.UNSUBSCRIBE),
        SuppressionRecord(address="a@example.com", reason=Reason.HARD_BOUNCE),
    ]
    result = ledger.import_suppressions(records, batch_size=2)
    assert (result.added, result.already) == (3, 1)
    ledger.erase("b@example.com", channel=Channel.CLI)
    exported = list(ledger.export_suppressions())
    by_hash = {r.address_hash: r for r in exported}
    assert {(r.address, r.scope, r.reason) for r in exported} == {
        ("a@example.com", "all", Reason.HARD_BOUNCE),
        (None, "all", Reason.COMPLAINT),
        (None, "all", Reason.MANUAL),
        ("c@example.com", "news", Reason.UNSUBSCRIBE),
    }
    assert by_hash[adieu.hasher.hash("a@example.com")].since == since
    assert [e.channel for e in ledger.history("a@example.com")] == [Channel.IMPORT]


def test_import_of_hash_only_rows_suppresses_without_the_address(adieu: Adieu) -> None:
    digest = adieu.hasher.hash("gone@example.com")
    result = adieu.ledger.import_suppressions(
        [SuppressionRecord(address=None, address_hash=digest)]
    )
    assert result.added == 1
    assert not adieu.policy.is_sendable("gone@example.com")


def test_reason_only_after_unsubscribing(adieu: Adieu) -> None:
    with pytest.raises(InvalidInput):
        adieu.ledger.add_reason("jane@example.com", "too many", channel=Channel.LANDING_PAGE)
    adieu.ledger.unsubscribe("jane@example.com", channel=Channel.LANDING_PAGE)
    adieu.ledger.add_reason(
        "jane@example.com", "  too many  ", choice="too_often", channel=Channel.LANDING_PAGE
    )
    last = adieu.ledger.history("jane@example.com")[-1]
    assert (last.type, last.reason, last.details) == (
        EventType.REASON,
        "too many",
        {"choice": "too_often"},
    )


def test_record_sends_in_batches_creates_contacts_once(adieu: Adieu) -> None:
    assert (
        adieu.ledger.record_sends(["a@example.com", "A@example.com", "b@example.com"], campaign="c")
        == 2
    )
    assert count(adieu, t.contacts) == 2 and count(adieu, t.sends) == 2
