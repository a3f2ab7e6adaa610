"""Adieu's decisions reach Resend's contacts through a local stand-in that
speaks its API (``standin_resend``): each kind of decision, topics, removals,
a refused key, trouble at Resend, and ``adieu esp sync resend`` over several
pages; and what Adieu reads from Resend's pages, over any input."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from push_support import TOPIC, deliverer_for, drain, pending, run_cli
from standin_resend import RESEND_KEY, TOPIC_ID, ResendStandIn, resend

from adieu.esp.push import configured
from adieu.esp.push.providers import Unreadable
from adieu.esp.push.providers.resend import resend_page
from adieu.ledger import Channel
from adieu.ledger.vocabulary import Reason
from adieu.scopes import ALL
from adieu.service import Adieu
from conftest import MakeSettings

__all__ = ["resend"]  # fixture


@pytest.fixture
def pushing(make_settings: MakeSettings, resend: ResendStandIn) -> Iterator[Adieu]:
    app = Adieu(make_settings(**resend.settings()))
    app.ledger.add_topic(TOPIC, "News")
    app.ledger.add_topic("offers", "Offers")
    yield app
    app.close()


def test_each_decision_marks_the_contact_unsubscribed_creating_it_when_needed(
    pushing: Adieu, resend: ResendStandIn
) -> None:
    assert configured(pushing.settings) == ("resend",)
    resend.contact("known@example.com")
    ledger = pushing.ledger
    ledger.unsubscribe("known@example.com", channel=Channel.ONE_CLICK)
    ledger.unsubscribe("new@example.com", channel=Channel.ONE_CLICK)
    ledger.record_complaint("angry@example.com")
    ledger.record_bounce("gone@example.com", hard=True)
    ledger.record_bounce("soft@example.com", hard=False)  # not a decision
    drain(pushing, deliverer_for(pushing))
    assert resend.unsubscribed() == {
        "known@example.com",
        "new@example.com",
        "angry@example.com",
        "gone@example.com",
    }
    changed = [who for _, action, _, who in resend.applied if action == "add"]
    assert sorted(changed) == sorted(resend.unsubscribed()), "each contact changed once"
    assert resend.bad_auth == []


def test_a_topic_unsubscribe_opts_out_of_its_resend_topic_only_where_mapped(
    pushing: Adieu, resend: ResendStandIn
) -> None:
    resend.contact("reader@example.com")
    ledger = pushing.ledger
    ledger.unsubscribe("reader@example.com", TOPIC, channel=Channel.LANDING_PAGE)
    ledger.unsubscribe("stranger@example.com", TOPIC, channel=Channel.LANDING_PAGE)
    ledger.unsubscribe("reader@example.com", "offers", channel=Channel.LANDING_PAGE)
    assert pending(pushing) == 2, "a topic Resend has no topic for is not queued"
    drain(pushing, deliverer_for(pushing))
    assert resend.opted_out() == {"reader@example.com"}
    assert resend.unsubscribed() == set(), "a topic's opt-out is not a global one"
    assert "stranger@example.com" not in resend.contacts, "no contact made to opt out"
    ledger.resubscribe("reader@example.com", TOPIC, channel=Channel.PREFERENCES)
    drain(pushing, deliverer_for(pushing))
    assert resend.contacts["reader@example.com"].topics == {TOPIC_ID: "opt_in"}


def test_a_resubscribe_or_a_lift_clears_the_flag(pushing: Adieu, resend: ResendStandIn) -> None:
    ledger = pushing.ledger
    ledger.unsubscribe("back@example.com", channel=Channel.ONE_CLICK)
    ledger.record_bounce("fixed@example.com", hard=True)
    ledger.unsubscribe("deleted@example.com", channel=Channel.ONE_CLICK)
    deliverer = deliverer_for(pushing)
    drain(pushing, deliverer)
    del resend.contacts["deleted@example.com"]  # removed in Resend meanwhile
    ledger.resubscribe("back@example.com", channel=Channel.PREFERENCES)
    ledger.resubscribe(
        "fixed@example.com", channel=Channel.CLI, lift=[Reason.HARD_BOUNCE], note="typo fixed"
    )
    ledger.resubscribe("deleted@example.com", channel=Channel.PREFERENCES)
    drain(pushing, deliverer)
    assert resend.unsubscribed() == set()
    assert "deleted@example.com" not in resend.contacts, "a lift never makes a contact"


def test_a_refused_key_is_retried_and_changes_nothing_until_it_is_right(
    make_settings: MakeSettings, resend: ResendStandIn
) -> None:
    wrong = Adieu(make_settings(**{**resend.settings(), "resend_api_key": "re_wrong"}))
    try:
        wrong.ledger.unsubscribe("leaver@example.com", channel=Channel.ONE_CLICK)
        assert asyncio.run(deliverer_for(wrong).run_once()) == 1
        assert pending(wrong) == 1, "kept, to be tried again"
        assert resend.contacts == {} and resend.bad_auth
        right = Adieu(wrong.settings.replace(resend_api_key=RESEND_KEY))
        try:
            drain(right, deliverer_for(right), seconds=60)
        finally:
            right.close()
    finally:
        wrong.close()
    assert resend.unsubscribed() == {"leaver@example.com"}


def test_trouble_at_resend_delays_but_never_loses_or_reorders(
    pushing: Adieu, resend: ResendStandIn
) -> None:
    resend.script = ["down", "limit", "slow", "down"]
    ledger = pushing.ledger
    ledger.unsubscribe("flip@example.com", channel=Channel.ONE_CLICK)
    ledger.resubscribe("flip@example.com", channel=Channel.PREFERENCES)
    ledger.unsubscribe("flip@example.com", channel=Channel.ONE_CLICK)
    ledger.unsubscribe("other@example.com", channel=Channel.ONE_CLICK)
    drain(pushing, deliverer_for(pushing), seconds=60)
    flips = [action for _, action, name, who in resend.applied if who == "flip@example.com"]
    assert flips == ["add", "remove", "add"], "in order, each once"
    assert resend.unsubscribed() == {"flip@example.com", "other@example.com"}


def test_sync_imports_what_adieu_lacks_and_pushes_what_resend_lacks(
    pushing: Adieu, resend: ResendStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(5):
        resend.contact(f"s{i}@example.com", unsubscribed=True)
    for i in range(3):
        resend.contact(f"fine{i}@example.com")
    ledger = pushing.ledger
    ledger.unsubscribe("s0@example.com", channel=Channel.ONE_CLICK)  # both hold it
    ledger.record_bounce("only-adieu@example.com", hard=True)
    resend.applied.clear()
    resend.script.clear()
    result = run_cli(pushing, resend.settings(), monkeypatch, "esp", "sync", "resend")
    assert result.exit_code == 0, result.output
    assert "5 entries read" in result.output, result.output
    afters = [q.get("after") for q in resend.reads]
    assert len(afters) == 3 and afters[0] is None, "every page, after the last id"
    for i in range(5):
        held = ledger.status(f"s{i}@example.com").state.suppressions
        assert [(s.scope, s.reason) for s in held] == [(ALL, Reason.UNSUBSCRIBE)]
    assert ledger.status("fine0@example.com").state.suppressions == ()
    assert "Adieu holds 1 that resend lacks: 1 queued for it" in result.output, result.output
    drain(pushing, deliverer_for(pushing))
    assert {who for _, action, _, who in resend.applied if action == "add"} == {
        "only-adieu@example.com"
    }, "nothing pushed back"


def test_sync_with_a_refused_key_imports_nothing(
    pushing: Adieu, resend: ResendStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    resend.contact("s0@example.com", unsubscribed=True)
    settings = {**resend.settings(), "resend_api_key": "re_wrong"}
    result = run_cli(pushing, settings, monkeypatch, "esp", "sync", "resend")
    assert result.exit_code == 75, result.output
    assert pushing.ledger.status("s0@example.com").state.suppressions == ()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)


@given(
    st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries(
            {
                "has_more": st.booleans() | st.none(),
                "data": st.lists(
                    st.fixed_dictionaries(
                        {
                            "id": st.text(max_size=40) | st.integers(),
                            "email": st.emails() | st.text(max_size=20),
                            "unsubscribed": st.booleans() | st.text(max_size=3),
                        }
                    ),
                    max_size=4,
                ),
            }
        ).map(lambda v: json.dumps(v).encode()),
    )
)
def test_every_page_reads_or_refuses_cleanly(body: bytes) -> None:
    url = "https://api.resend.com/contacts?limit=100"
    try:
        page = resend_page(url, body)
    except Unreadable:
        return
    assert all("@" in e.address and e.scope == ALL for e in page.entries)
    if page.next_url is not None:
        assert page.next_url.startswith("https://api.resend.com/contacts?")
        assert page.next_url != url
