"""Who may lift what (docs/REQUIREMENTS.md, "Who may change consent"): the
person lifts their own "no" through their link; only an operator lifts a
complaint or a hard bounce, naming it and saying why; nothing lifts an erasure,
and an erased person is never stored in the clear again."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from adieu.errors import Erased, InvalidInput
from adieu.ledger import Channel, EventType, Reason, SuppressionRecord
from adieu.ledger import schema as t
from adieu.service import Adieu
from adieu.settings import Settings


def reasons(adieu: Adieu, address: str) -> set[str]:
    return {s.reason.value for s in adieu.ledger.status(address).state.suppressions}


def test_a_link_lifts_an_unsubscribe_but_never_a_complaint(adieu: Adieu) -> None:
    ledger = adieu.ledger
    ledger.unsubscribe("ann@example.org", channel=Channel.ONE_CLICK)
    ledger.record_complaint("ann@example.org")
    outcome = ledger.resubscribe("ann@example.org", channel=Channel.LANDING_PAGE)
    # the unsubscribe is the person's own and goes; the complaint stays
    assert outcome.detail == "complaint"
    assert reasons(adieu, "ann@example.org") == {"complaint"}
    assert not adieu.policy.is_sendable("ann@example.org")
    # nor can a link, or any door that is not an operator's, lift it by naming it
    for channel in (Channel.LANDING_PAGE, Channel.ONE_CLICK, Channel.PREFERENCES, Channel.MAILTO):
        with pytest.raises(InvalidInput):
            ledger.resubscribe(
                "ann@example.org", channel=channel, lift=["complaint"], note="I want it"
            )
    assert reasons(adieu, "ann@example.org") == {"complaint"}


def test_an_operator_resubscribe_without_lift_leaves_complaints_and_bounces(adieu: Adieu) -> None:
    ledger = adieu.ledger
    ledger.record_complaint("ann@example.org")
    ledger.record_bounce("bob@example.org", hard=True)
    assert ledger.resubscribe("ann@example.org", channel=Channel.API).detail == "complaint"
    assert ledger.resubscribe("bob@example.org", channel=Channel.CLI).detail == "hard_bounce"
    assert reasons(adieu, "ann@example.org") == {"complaint"}
    assert reasons(adieu, "bob@example.org") == {"hard_bounce"}


def test_an_operator_lifts_a_hard_bounce_on_purpose_and_the_event_says_who_and_why(
    adieu: Adieu,
) -> None:
    ledger = adieu.ledger
    for _ in range(2):
        ledger.record_bounce("bob@example.org", hard=False)
    ledger.record_bounce("bob@example.org", hard=True)
    ledger.unsubscribe("bob@example.org", "all", channel=Channel.ONE_CLICK)
    with pytest.raises(InvalidInput, match="why"):
        ledger.resubscribe("bob@example.org", channel=Channel.CLI, lift=["hard_bounce"])
    with pytest.raises(InvalidInput, match="Only"):
        ledger.resubscribe(
            "bob@example.org", channel=Channel.CLI, lift=["unsubscribe"], note="not a fact"
        )
    outcome = ledger.resubscribe(
        "bob@example.org",
        channel=Channel.CLI,
        lift=["hard_bounce"],
        note="mailbox re-created, confirmed by phone",
        details={"by": "cli"},
    )
    assert outcome.changed and outcome.detail is None
    assert reasons(adieu, "bob@example.org") == set()
    assert adieu.policy.is_sendable("bob@example.org")
    status = ledger.status("bob@example.org")
    assert status.soft_bounces == 0
    last = status.events[-1]
    assert last.type == EventType.RESUBSCRIBE and last.channel == Channel.CLI
    assert last.details == {
        "by": "cli",
        "lifted": ["hard_bounce", "unsubscribe"],
        "note": "mailbox re-created, confirmed by phone",
    }


def test_a_complaint_is_lifted_only_for_all_mail(adieu: Adieu) -> None:
    ledger = adieu.ledger
    ledger.add_topic("news", "News")
    ledger.record_complaint("ann@example.org")
    with pytest.raises(InvalidInput, match="all mail"):
        ledger.resubscribe(
            "ann@example.org", "news", channel=Channel.API, lift=["complaint"], note="opted in"
        )
    ledger.resubscribe("ann@example.org", channel=Channel.API, lift=["complaint"], note="opted in")
    assert adieu.policy.is_sendable("ann@example.org")


def test_erasure_is_final_through_every_ledger_operation(adieu: Adieu) -> None:
    ledger = adieu.ledger
    ledger.add_topic("news", "News", default_opt_in=False)
    ledger.unsubscribe("eve@example.org", channel=Channel.ONE_CLICK)
    ledger.erase("eve@example.org", channel=Channel.CLI)
    for channel in (Channel.CLI, Channel.API, Channel.LANDING_PAGE):
        with pytest.raises(Erased):
            ledger.resubscribe("eve@example.org", channel=channel)
    with pytest.raises(Erased):
        ledger.resubscribe("eve@example.org", "news", channel=Channel.LANDING_PAGE)
    with pytest.raises(Erased):
        ledger.set_preferences("eve@example.org", topics={"news": True})
    ledger.import_suppressions([SuppressionRecord("eve@example.org", reason=Reason.UNSUBSCRIBE)])
    ledger.unsubscribe("eve@example.org", "news", channel=Channel.ONE_CLICK)
    assert not adieu.policy.is_sendable("eve@example.org")
    assert not adieu.policy.is_sendable("eve@example.org", "news")
    assert ledger.status("eve@example.org").address is None


def test_erasing_an_address_never_seen_keeps_its_keyed_hash_and_says_so(adieu: Adieu) -> None:
    outcome = adieu.ledger.erase("new@example.org", channel=Channel.CLI)
    assert outcome.changed and outcome.detail == "never_seen"
    assert not adieu.policy.is_sendable("new@example.org")
    with adieu.engine.connect() as conn:
        assert conn.execute(select(t.contacts.c.address)).scalars().all() == [None]
    assert adieu.ledger.erase("new@example.org", channel=Channel.CLI).changed is False


def test_after_erasure_nothing_new_stores_the_clear_address(adieu: Adieu) -> None:
    ledger = adieu.ledger
    ledger.keep_for_review(b"Subject: hi\r\n\r\nFor Eve@Example.org, from a forwarder\r\n", "x")
    ledger.erase("eve@example.org", channel=Channel.CLI)
    # the earlier review item is redacted, whatever the case it was written in
    (before,) = ledger.review_items()
    assert b"eve@example.org" not in before[4].lower()
    assert "e•••@example.org".encode() in before[4]
    # later bounces, events and review items keep the address only masked
    ledger.record_bounce(
        "eve@example.org",
        hard=True,
        details={
            "diagnostic": "550 5.1.1 <eve@example.org>: user unknown",
            "by": ["eve@example.org"],
        },
    )
    ledger.record_event(
        "eve@example.org",
        EventType.REJECTION,
        channel=Channel.BOUNCE,
        details={"note": "eve@example.org"},
    )
    ledger.keep_for_review(b"To: eve@example.org\r\n\r\nbounced\r\n", "unknown")
    with adieu.engine.connect() as conn:
        kept = [str(d) for d in conn.execute(select(t.events.c.details)).scalars()]
        review = [bytes(c) for c in conn.execute(select(t.inbound_review.c.content)).scalars()]
    assert kept and not any("eve@example.org" in d for d in kept)
    assert any("e•••@example.org" in d for d in kept)
    assert not any(b"eve@example.org" in r.lower() for r in review)


def test_no_trace_of_an_erased_address_in_the_data_dir(tmp_path: Path) -> None:
    """A ``strings``-style scan of the SQLite files after erase, a bounce and
    a review item for the erased person."""
    data = tmp_path / "data"
    adieu = Adieu(Settings(data_dir=data, base_url="https://mail.example.net"))
    try:
        ledger = adieu.ledger
        address = "zoe.secret@example.org"
        ledger.unsubscribe(address, channel=Channel.ONE_CLICK, reason="too many", details={"a": 1})
        ledger.record_bounce(address, hard=False, details={"diagnostic": f"452 {address} full"})
        ledger.keep_for_review(f"To: {address}\r\n\r\nhello {address}\r\n".encode(), "unknown")
        for i in range(50):  # other people around it, as in a real ledger
            ledger.unsubscribe(f"other{i}@example.org", channel=Channel.ONE_CLICK)
        ledger.erase(address, channel=Channel.CLI)
        ledger.record_bounce(address, hard=True, details={"diagnostic": f"550 <{address}> unknown"})
        ledger.keep_for_review(f"Final-Recipient: rfc822; {address}\r\n\r\nx\r\n".encode(), "u")
        adieu.close()
        adieu.engine.dispose()
        files = [p for p in data.iterdir() if p.name.startswith("adieu.db")]
        assert files
        for path in files:
            content = path.read_bytes().lower()
            assert address.encode() not in content, path.name
            assert b"other7@example.org" in content or path.name != "adieu.db"
    finally:
        adieu.close()
