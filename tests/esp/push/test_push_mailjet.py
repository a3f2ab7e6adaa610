"""Adieu's decisions reach Mailjet through a local stand-in that speaks its
REST API v3: exclusion from campaigns for unsubscribes from all mail,
complaints and hard bounces, the mapped contact list for a topic, lifts and
resubscribes undoing them, a refused key, trouble at Mailjet, and ``adieu
esp sync mailjet`` both ways over several pages; and what Adieu reads from
Mailjet's answers, over any input."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import Iterator
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from push_support import deliverer_for as _deliverer
from push_support import drain as _drain
from push_support import pending as _pending
from push_support import run_cli
from standin_mailjet import AUTH_FAILURE, NEWS_LIST, MailjetStandIn, mailjet

from adieu.esp.push import ADD, BOUNCE, COMPLAINT, REMOVE, UNSUBSCRIBE
from adieu.esp.push.providers import Page, Unreadable, error_message, providers
from adieu.esp.push.providers import mailjet as push_mailjet
from adieu.esp.push.providers.base import utc_now
from adieu.esp.push.providers.mailjet import (
    Mailjet,
    contact_address,
    excluded_page,
    recipients_page,
)
from adieu.esp.push.queue import PushQueue
from adieu.ledger import Channel
from adieu.ledger.vocabulary import DEAD, PENDING, Reason
from adieu.scopes import ALL
from adieu.service import Adieu
from conftest import MakeSettings

__all__ = ["mailjet"]  # fixtures

TOPIC, UNMAPPED = "news", "offers"
API = "https://api.mailjet.com"


@pytest.fixture
def pushing(
    make_settings: MakeSettings, mailjet: MailjetStandIn, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Adieu]:
    monkeypatch.setattr(push_mailjet, "MAILJET_PAGE", 3)  # several pages of a few
    app = Adieu(make_settings(**mailjet.settings()))
    app.ledger.add_topic(TOPIC, "News")
    app.ledger.add_topic(UNMAPPED, "Offers")
    yield app
    app.close()


def _changes(mailjet: MailjetStandIn, address: str) -> list[tuple[str, str]]:
    return [(action, name) for _, action, name, who in mailjet.applied if who == address]


# -- pushing -------------------------------------------------------------------------


def test_each_kind_of_decision_arrives_at_mailjet(pushing: Adieu, mailjet: MailjetStandIn) -> None:
    mailjet.contact("angry@example.com")  # a contact already; the others are not
    mailjet.member("reader@example.com", unsubscribed=False)
    ledger = pushing.ledger
    ledger.unsubscribe("leaver@example.com", channel=Channel.ONE_CLICK)
    ledger.record_complaint("angry@example.com")
    ledger.record_bounce("gone@example.com", hard=True)
    ledger.unsubscribe("reader@example.com", TOPIC, channel=Channel.LANDING_PAGE)
    ledger.unsubscribe("stranger@example.com", TOPIC, channel=Channel.LANDING_PAGE)
    ledger.record_bounce("soft@example.com", hard=False)  # not a decision
    _drain(pushing, _deliverer(pushing))
    assert mailjet.excluded() == {"leaver@example.com", "angry@example.com", "gone@example.com"}
    assert mailjet.unsubscribed() == {"reader@example.com", "stranger@example.com"}
    assert mailjet.subscribed() == set()
    # Each address one contact, none twice; a soft bounce is no decision.
    assert sorted(c.email for c in mailjet.contacts.values()) == [
        "angry@example.com",
        "gone@example.com",
        "leaver@example.com",
        "reader@example.com",
        "stranger@example.com",
    ]
    assert len(mailjet.applied) == 5, "each decision once"
    assert mailjet.bad_auth == []


def test_a_topic_without_a_list_is_not_pushed(pushing: Adieu, mailjet: MailjetStandIn) -> None:
    target = providers(pushing.settings)[0]
    assert target.takes(ALL) and target.takes(TOPIC) and not target.takes(UNMAPPED)
    pushing.ledger.unsubscribe("picky@example.com", UNMAPPED, channel=Channel.PREFERENCES)
    assert _pending(pushing) == 0, "nothing queued for Mailjet"
    asyncio.run(_deliverer(pushing).run_once())
    assert mailjet.requests == 0 and mailjet.contacts == {}


def test_resubscribes_and_lifts_undo_what_was_pushed(
    pushing: Adieu, mailjet: MailjetStandIn
) -> None:
    ledger = pushing.ledger
    ledger.unsubscribe("back@example.com", channel=Channel.ONE_CLICK)
    ledger.unsubscribe("fan@example.com", TOPIC, channel=Channel.ONE_CLICK)
    ledger.record_bounce("fixed@example.com", hard=True)
    ledger.unsubscribe("both@example.com", channel=Channel.ONE_CLICK)
    ledger.record_bounce("both@example.com", hard=True)
    ledger.record_complaint("deleted@example.com")
    deliverer = _deliverer(pushing)
    _drain(pushing, deliverer)
    assert mailjet.excluded() == {
        "back@example.com",
        "fixed@example.com",
        "both@example.com",
        "deleted@example.com",
    }
    del mailjet.contacts["deleted@example.com"]  # removed in Mailjet's app meanwhile
    ledger.resubscribe("back@example.com", channel=Channel.PREFERENCES)
    ledger.resubscribe("fan@example.com", TOPIC, channel=Channel.PREFERENCES)
    ledger.resubscribe(
        "fixed@example.com", channel=Channel.CLI, lift=[Reason.HARD_BOUNCE], note="typo fixed"
    )
    # The person's own resubscribe leaves their hard bounce: the exclusion stays.
    ledger.resubscribe("both@example.com", channel=Channel.PREFERENCES)
    ledger.resubscribe(
        "deleted@example.com", channel=Channel.CLI, lift=[Reason.COMPLAINT], note="by mistake"
    )
    _drain(pushing, deliverer)
    assert mailjet.excluded() == {"both@example.com"}
    assert mailjet.subscribed() == {"fan@example.com"} and mailjet.unsubscribed() == set()
    assert _changes(mailjet, "back@example.com") == [("add", "excluded"), ("remove", "excluded")]
    assert _changes(mailjet, "fan@example.com") == [
        ("add", f"list:{NEWS_LIST}"),
        ("remove", f"list:{NEWS_LIST}"),
    ]
    assert _changes(mailjet, "fixed@example.com")[-1] == ("remove", "excluded")
    # Nothing left to lift at Mailjet is done, not a dead letter.
    assert "deleted@example.com" not in mailjet.contacts
    assert PushQueue(pushing.engine, pushing.ledger.now).letters(DEAD) == []


def test_a_refused_key_is_retried_and_changes_nothing_until_it_is_right(
    make_settings: MakeSettings, mailjet: MailjetStandIn
) -> None:
    from sqlalchemy import select

    from adieu.ledger import schema as t

    wrong = Adieu(make_settings(**{**mailjet.settings(), "mailjet_api_secret": "not-the-secret"}))
    try:
        wrong.ledger.unsubscribe("locked@example.com", channel=Channel.ONE_CLICK)
        asyncio.run(_deliverer(wrong).run_once())
        q = t.esp_pushes
        with wrong.engine.connect() as conn:
            row = conn.execute(select(q.c.attempts, q.c.last_error, q.c.state)).one()
        assert PushQueue(wrong.engine, wrong.ledger.now).letters(DEAD) == []
    finally:
        wrong.close()
    assert (row.attempts, row.state) == (1, PENDING), "kept, to be tried again"
    assert row.last_error == "HTTP 401: " + AUTH_FAILURE, "in Mailjet's words"
    assert mailjet.bad_auth and mailjet.contacts == {} and mailjet.applied == []
    right = Adieu(make_settings(**mailjet.settings()))
    try:
        _drain(right, _deliverer(right))
    finally:
        right.close()
    assert mailjet.excluded() == {"locked@example.com"}
    assert len(mailjet.applied) == 1


def test_trouble_at_mailjet_delays_but_never_loses_or_reorders(
    pushing: Adieu, mailjet: MailjetStandIn
) -> None:
    ledger = pushing.ledger
    people = [f"p{i}@example.com" for i in range(5)]
    for who in people:
        ledger.unsubscribe(who, channel=Channel.ONE_CLICK)
        ledger.resubscribe(who, channel=Channel.PREFERENCES)
        ledger.unsubscribe(who, channel=Channel.API)
    ledger.unsubscribe("topic@example.com", TOPIC, channel=Channel.ONE_CLICK)
    ledger.resubscribe("topic@example.com", TOPIC, channel=Channel.PREFERENCES)
    mailjet.slow_s = 2.5
    mailjet.script = ["down", "limit", "slow", "down", "down", "limit", "slow", "down"] * 2
    _drain(pushing, _deliverer(pushing, timeout=1.5), seconds=120)
    assert mailjet.script == [], "all the trouble was met"
    for who in people:
        assert [a for a, _ in _changes(mailjet, who)] == ["add", "remove", "add"], who
    assert [a for a, _ in _changes(mailjet, "topic@example.com")] == ["add", "remove"]
    assert mailjet.excluded() == set(people)
    assert mailjet.bad_auth == []


def test_mailjets_refusal_is_a_dead_letter_in_its_own_words(
    make_settings: MakeSettings, mailjet: MailjetStandIn
) -> None:
    # A topic mapped to a list Mailjet does not have (a typo in the setting).
    app = Adieu(make_settings(**mailjet.settings(lists=f"news={NEWS_LIST},offers=999")))
    try:
        app.ledger.add_topic(UNMAPPED, "Offers")
        app.ledger.unsubscribe("typo@example.com", UNMAPPED, channel=Channel.ONE_CLICK)
        _drain(app, _deliverer(app))
        (dead,) = PushQueue(app.engine, app.ledger.now).letters(DEAD)
    finally:
        app.close()
    assert dead.last_error == "HTTP 404: Object not found"


def test_mailjets_error_message_is_read_and_its_addresses_masked() -> None:
    body = json.dumps(
        {
            "ErrorInfo": "",
            "ErrorMessage": 'MJ18 A Contact resource with value "some.one@example.com" '
            "for Email already exists.",
            "StatusCode": 400,
        }
    ).encode()
    text = error_message(body)
    assert text is not None and text.startswith("MJ18 A Contact resource with value")
    assert "some.one@" not in text
    assert error_message(b'{"ErrorMessage": "", "StatusCode": 500}') is None


@given(
    st.emails(),
    st.sampled_from([ADD, REMOVE]),
    st.sampled_from([UNSUBSCRIBE, COMPLAINT, BOUNCE]),
    st.sampled_from([ALL, TOPIC]),
)
@settings(max_examples=60)
def test_every_request_is_authenticated_json_naming_the_address_only_where_mailjet_must(
    address: str, action: str, kind: str, scope: str
) -> None:
    provider = Mailjet(API, "key", "secret", {TOPIC: 42}, utc_now)
    calls = provider.calls(action, kind, scope, address)
    expected = "Basic " + base64.b64encode(b"key:secret").decode()
    assert "secret" not in repr(provider)
    for call in calls:
        assert call.headers["Authorization"] == expected
        assert call.url.startswith(f"{API}/v3/REST/")
        body = json.loads(call.body)
        assert isinstance(body, dict)
        path = urlsplit(call.url).path
        if call.method == "PUT":
            # Mailjet names a contact without its ID only by its address.
            assert path == f"/v3/REST/contact/{quote(address, safe='')}"
            assert body == {"IsExcludedFromCampaigns": action == ADD}
        else:
            assert address not in call.url and body["Email"] == address
    methods = [(c.method, urlsplit(c.url).path) for c in calls]
    if scope == TOPIC:
        wanted = {ADD: "unsub", REMOVE: "addforce"}[action]
        assert methods[-1] == ("POST", "/v3/REST/contactslist/42/managecontact")
        assert json.loads(calls[-1].body)["Action"] == wanted
    elif action == ADD:
        assert [m for m, _ in methods] == ["POST", "PUT"]
        assert json.loads(calls[0].body)["IsExcludedFromCampaigns"] is True
    else:
        assert [m for m, _ in methods] == ["PUT"] and calls[0].done == frozenset({404})


# -- sync ----------------------------------------------------------------------------


def _fill(mailjet: MailjetStandIn) -> None:
    """Seven contacts excluded from campaigns (more than two pages of three),
    three unsubscribed from the news list, and others who are neither."""
    for i in range(5):
        mailjet.contact(f"s{i}@example.com", excluded=True)
    mailjet.contact("c@example.com", excluded=True, spam=True)
    mailjet.contact("shared@example.com", excluded=True)
    for i in range(4):
        mailjet.contact(f"fine{i}@example.com")
        mailjet.member(f"fine{i}@example.com", unsubscribed=False)
    mailjet.member("shared@example.com", unsubscribed=True)
    mailjet.member("t1@example.com", unsubscribed=True)
    mailjet.member("t2@example.com", unsubscribed=True)


def _run(adieu: Adieu, mailjet: MailjetStandIn, monkeypatch: pytest.MonkeyPatch) -> str:
    result = run_cli(adieu, mailjet.settings(), monkeypatch, "esp", "sync", "mailjet")
    assert result.exit_code == 0, result.output
    return result.output


def test_sync_imports_what_adieu_lacks_and_pushes_what_mailjet_lacks(
    pushing: Adieu, mailjet: MailjetStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(mailjet)
    ledger = pushing.ledger
    ledger.unsubscribe("s0@example.com", channel=Channel.ONE_CLICK)  # both hold it
    ledger.record_bounce("only-adieu@example.com", hard=True)
    ledger.unsubscribe("topic-only@example.com", TOPIC, channel=Channel.ONE_CLICK)
    ledger.unsubscribe("erased@example.com", channel=Channel.CLI)
    ledger.erase("erased@example.com", channel=Channel.CLI)
    _drain(pushing, _deliverer(pushing))  # Mailjet has Adieu's own now …
    for who in ("only-adieu@example.com", "topic-only@example.com", "erased@example.com"):
        mailjet.forget(who)  # … and loses them: sync has something to push
    mailjet.applied.clear()
    output = _run(pushing, mailjet, monkeypatch)
    assert "10 entries read" in output, output
    assert "only-adieu@example.com" not in output, "addresses are shown masked"
    # Every page was read: Limit 3, Offset onwards until a short page.
    offsets = [q["Offset"] for p, q in mailjet.reads if p == "/REST/contact"]
    assert offsets == [["0"], ["3"], ["6"]]
    recipients = [q for p, q in mailjet.reads if p == "/REST/listrecipient"]
    assert [q["Offset"] for q in recipients] == [["0"], ["3"]]
    assert all(q["ContactsList"] == [str(NEWS_LIST)] and q["Unsub"] == ["true"] for q in recipients)
    # What Mailjet had is in Adieu now, Mailjet as the source.
    for i in range(5):
        assert ledger.status(f"s{i}@example.com").suppressed_since is not None
    complaint = ledger.status("c@example.com")
    assert {s.reason for s in complaint.state.suppressions} == {Reason.COMPLAINT}
    sources = [(e.details or {}).get("source") for e in complaint.events if e.type == "suppress"]
    assert sources == ["mailjet"]
    for who in ("t1@example.com", "t2@example.com"):
        held = ledger.status(who).state.suppressions
        assert [(s.scope, s.reason) for s in held] == [(TOPIC, Reason.UNSUBSCRIBE)], who
    assert ledger.status("fine0@example.com").state.suppressions == ()
    # What Adieu holds that Mailjet lacks goes out; the erased one cannot.
    assert "Adieu holds 3 that mailjet lacks: 2 queued for it, 1 erased" in output
    _drain(pushing, _deliverer(pushing))
    assert "only-adieu@example.com" in mailjet.excluded()
    assert "topic-only@example.com" in mailjet.unsubscribed()
    pushed = {who for _, action, _, who in mailjet.applied if action == "add"}
    assert pushed == {"only-adieu@example.com", "topic-only@example.com"}, "nothing pushed back"
    assert mailjet.bad_auth == []
    again = _run(pushing, mailjet, monkeypatch)
    assert "12 entries read" in again
    assert "Adieu holds 1 that mailjet lacks: 0 queued for it, 1 erased" in again, again


def test_a_sync_mailjet_refuses_imports_nothing(
    pushing: Adieu, mailjet: MailjetStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(mailjet)
    settings = {**mailjet.settings(), "mailjet_api_secret": "wrong"}
    result = run_cli(pushing, settings, monkeypatch, "esp", "sync", "mailjet")
    assert result.exit_code == 75  # EX_TEMPFAIL: try again once the key is right
    assert "HTTP 401: API key authentication" in result.output
    assert "nothing was imported" in result.output
    assert pushing.ledger.status("s1@example.com").suppressed_since is None


# -- reading Mailjet's answers -------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=20), inner, max_size=5)
    ),
    max_leaves=20,
)
flags = st.booleans() | st.sampled_from(["true", "false", "", "yes"]) | st.none()
rows = st.fixed_dictionaries(
    {
        "Email": st.emails() | st.text(max_size=30) | st.integers(),
        "ID": st.integers() | st.text(max_size=5),
        "ContactID": st.integers(-5, 2**64) | st.from_regex(r"[0-9]{1,22}", fullmatch=True),
        "IsExcludedFromCampaigns": flags,
        "IsSpamComplaining": flags,
        "IsUnsubscribed": flags,
    }
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {
            "Count": st.integers(),
            "Data": st.lists(rows | json_values, max_size=5),
            "Total": st.integers() | st.none(),
        }
    ).map(lambda v: json.dumps(v).encode()),
)
urls = st.sampled_from(
    [
        f"{API}/v3/REST/contact?IsExcludedFromCampaigns=true&Limit=3&Offset=0",
        f"{API}/v3/REST/contact?IsExcludedFromCampaigns=true&Limit=3&Offset=999999999999",
        f"{API}/v3/REST/contact?Limit=abc&Offset=-1",
        f"{API}/v3/REST/listrecipient?ContactsList=42&Unsub=true&Limit=2&Offset=4",
        f"{API}/v3/REST/contact/123",
        "http://[",
    ]
)


def _page_ok(page: Page) -> None:
    for entry in page.entries:
        assert entry.address == entry.address.strip().lower() and "@" in entry.address
        assert entry.reason in (UNSUBSCRIBE, COMPLAINT)
    if page.next_url is not None:
        assert page.next_url.startswith(f"{API}/v3/REST/")


@given(urls, bodies)
def test_every_page_parser_reads_or_refuses_cleanly(url: str, body: bytes) -> None:
    with contextlib.suppress(Unreadable):
        _page_ok(excluded_page(url, body))
    try:
        ids, following = recipients_page(url, body)
    except Unreadable:
        pass
    else:
        assert all(type(i) is int and i > 0 for i in ids) and len(set(ids)) == len(ids)
        _page_ok(Page((), following))
    try:
        address = contact_address(body)
    except Unreadable:
        pass
    else:
        assert address is None or (address == address.strip().lower() and "@" in address)


@given(st.lists(st.tuples(urls, bodies), max_size=6))
def test_the_providers_pages_read_or_refuse_cleanly_in_any_order(
    answers: list[tuple[str, bytes]],
) -> None:
    provider = Mailjet(API, "key", "secret", {TOPIC: 42}, utc_now)
    provider.list_urls()
    for url, body in answers:
        for scope in (ALL, TOPIC):
            try:
                page = provider.page(url, "", scope, body)
            except Unreadable:
                continue
            _page_ok(page)
            assert all(e.scope in (scope, ALL) for e in page.entries)


@given(st.integers(0, 50), st.integers(1, 5), st.integers(0, 30))
def test_a_full_page_points_on_by_its_limit_and_a_short_one_ends(
    offset: int, limit: int, count: int
) -> None:
    url = f"{API}/v3/REST/contact?IsExcludedFromCampaigns=true&Limit={limit}&Offset={offset}"
    data = [{"Email": f"a{i}@example.com", "IsExcludedFromCampaigns": True} for i in range(count)]
    page = excluded_page(url, json.dumps({"Count": count, "Data": data, "Total": count}).encode())
    assert len(page.entries) == count
    if count < limit:
        assert page.next_url is None
    else:
        assert page.next_url is not None
        query = dict(parse_qsl(urlsplit(page.next_url).query))
        assert query == {
            "IsExcludedFromCampaigns": "true",
            "Limit": str(limit),
            "Offset": str(offset + limit),
        }


def test_unsubscribed_list_members_are_named_one_lookup_each_before_the_next_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(push_mailjet, "MAILJET_PAGE", 3)
    provider = Mailjet(API, "key", "secret", {TOPIC: 42}, utc_now)
    (_, (first, reason, scope)) = provider.list_urls()
    assert (reason, scope) == (UNSUBSCRIBE, TOPIC)
    rows = [
        {"ContactID": 7, "IsUnsubscribed": True},
        {"ContactID": 8, "IsUnsubscribed": False},  # subscribed after all: left out
        {"ContactID": 9, "IsUnsubscribed": True},
    ]
    page = provider.page(first, reason, scope, json.dumps({"Count": 3, "Data": rows}).encode())
    assert page.entries == () and page.next_url == f"{API}/v3/REST/contact/7"
    one = json.dumps({"Count": 1, "Data": [{"ID": 7, "Email": "Seven@Example.com"}]}).encode()
    page = provider.page(page.next_url, reason, scope, one)
    assert [(e.address, e.scope) for e in page.entries] == [("seven@example.com", TOPIC)]
    assert page.next_url == f"{API}/v3/REST/contact/9"
    page = provider.page(page.next_url, reason, scope, one)
    assert page.next_url is not None and "Offset=3" in page.next_url
    short = json.dumps({"Count": 0, "Data": []}).encode()
    assert provider.page(page.next_url, reason, scope, short).next_url is None
