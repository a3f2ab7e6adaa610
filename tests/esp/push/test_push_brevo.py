"""Adieu's decisions reach Brevo through a local stand-in that speaks its API
(``standin_brevo``): the blocklist for each kind of decision, a topic's
contact list, removals, a refused key, trouble and Brevo's own rate-limit
header, and ``adieu esp sync brevo`` over several pages of both of its
lists; and what Adieu reads from Brevo's pages, over any input."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from push_support import TOPIC, run_cli
from push_support import deliverer_for as _deliverer
from push_support import drain as _drain
from push_support import pending as _pending
from standin_brevo import BREVO_KEY, NEWS_LIST, OTHER_LIST, Block, BrevoStandIn, brevo

from adieu.esp.push import ADD, BOUNCE, COMPLAINT, REMOVE, UNSUBSCRIBE, configured
from adieu.esp.push.providers import MAX_RETRY_AFTER_S, Page, Unreadable
from adieu.esp.push.providers import brevo as push_brevo
from adieu.esp.push.providers.base import retry_after, utc_now
from adieu.esp.push.providers.brevo import Brevo, blocked_page, contacts_page
from adieu.esp.push.queue import PushQueue
from adieu.ledger import Channel
from adieu.ledger.vocabulary import DEAD, PENDING, Reason
from adieu.scopes import ALL
from adieu.service import Adieu
from conftest import MakeSettings

__all__ = ["brevo"]  # fixture

BASE = "https://api.brevo.com"
#: A topic Adieu has that no Brevo list stands for.
UNMAPPED = "offers"


@pytest.fixture
def pushing(make_settings: MakeSettings, brevo: BrevoStandIn) -> Iterator[Adieu]:
    app = Adieu(make_settings(**brevo.settings()))
    app.ledger.add_topic(TOPIC, "News")
    app.ledger.add_topic(UNMAPPED, "Offers")
    yield app
    app.close()


def _blocklisted(brevo: BrevoStandIn) -> set[str]:
    return {who for who, c in brevo.contacts.items() if c.blocklisted}


# -- pushes ------------------------------------------------------------------------


def test_each_decision_arrives_on_the_blocklist_or_off_the_topics_list(
    pushing: Adieu, brevo: BrevoStandIn
) -> None:
    assert configured(pushing.settings) == ("brevo",)
    brevo.add_contact("leaver@example.com", lists={NEWS_LIST})
    brevo.add_contact("reader@example.com", lists={NEWS_LIST, OTHER_LIST})
    ledger = pushing.ledger
    ledger.unsubscribe("leaver@example.com", channel=Channel.ONE_CLICK)
    ledger.record_complaint("angry@example.com")  # not yet a contact in Brevo
    ledger.record_bounce("gone@example.com", hard=True)
    ledger.unsubscribe("reader@example.com", TOPIC, channel=Channel.LANDING_PAGE)
    ledger.record_bounce("soft@example.com", hard=False)  # not a decision
    _drain(pushing, _deliverer(pushing))
    assert _blocklisted(brevo) == {"leaver@example.com", "angry@example.com", "gone@example.com"}
    assert "soft@example.com" not in brevo.contacts
    # The topic's reader leaves its list only: other lists and other mail go on.
    reader = brevo.contacts["reader@example.com"]
    assert reader.lists == {OTHER_LIST} and not reader.blocklisted
    assert brevo.contacts["leaver@example.com"].lists == {NEWS_LIST}, "blocklisted, not unlinked"
    assert len(brevo.applied) == 4, "each decision once"
    assert all(
        "@" not in path and "%40" not in path for method, path in brevo.seen if method == "POST"
    ), "a contact is created or blocklisted with its address in the body only"
    assert brevo.bad_auth == []


def test_a_topic_without_a_brevo_list_is_not_pushed(pushing: Adieu, brevo: BrevoStandIn) -> None:
    brevo.add_contact("reader@example.com", lists={NEWS_LIST, OTHER_LIST})
    pushing.ledger.unsubscribe("reader@example.com", UNMAPPED, channel=Channel.LANDING_PAGE)
    assert _pending(pushing) == 0, "no list stands for it in ADIEU_BREVO_LISTS"
    assert asyncio.run(_deliverer(pushing).run_once()) == 0
    assert brevo.seen == []
    pushing.ledger.unsubscribe("reader@example.com", TOPIC, channel=Channel.LANDING_PAGE)
    assert _pending(pushing) == 1
    _drain(pushing, _deliverer(pushing))
    assert brevo.contacts["reader@example.com"].lists == {OTHER_LIST}


def test_a_resubscribe_or_a_lift_undoes_what_its_decision_did(
    pushing: Adieu, brevo: BrevoStandIn
) -> None:
    brevo.add_contact("fan@example.com", lists={NEWS_LIST})
    ledger = pushing.ledger
    ledger.unsubscribe("back@example.com", channel=Channel.ONE_CLICK)
    ledger.unsubscribe("fan@example.com", TOPIC, channel=Channel.ONE_CLICK)
    ledger.record_bounce("fixed@example.com", hard=True)
    ledger.unsubscribe("both@example.com", channel=Channel.ONE_CLICK)
    ledger.record_bounce("both@example.com", hard=True)
    ledger.record_complaint("deleted@example.com")
    ledger.unsubscribe("newfan@example.com", TOPIC, channel=Channel.ONE_CLICK)
    deliverer = _deliverer(pushing)
    _drain(pushing, deliverer)
    assert brevo.contacts["fan@example.com"].lists == set()
    assert "newfan@example.com" not in brevo.contacts, "no contact, in no list: nothing to do"
    # Brevo's transactional mail bounced too; someone deleted a contact in Brevo.
    brevo.blocks["fixed@example.com"] = Block("hardBounce", "Hard bounce")
    del brevo.contacts["deleted@example.com"]
    brevo.applied.clear()

    ledger.resubscribe("back@example.com", channel=Channel.PREFERENCES)
    ledger.resubscribe("fan@example.com", TOPIC, channel=Channel.PREFERENCES)
    ledger.resubscribe(
        "fixed@example.com", channel=Channel.CLI, lift=[Reason.HARD_BOUNCE], note="typo fixed"
    )
    ledger.resubscribe("both@example.com", channel=Channel.PREFERENCES)  # the bounce holds
    ledger.resubscribe(
        "deleted@example.com", channel=Channel.CLI, lift=[Reason.COMPLAINT], note="by mistake"
    )
    ledger.resubscribe("newfan@example.com", TOPIC, channel=Channel.PREFERENCES)
    _drain(pushing, deliverer)

    assert _blocklisted(brevo) == {"both@example.com"}
    assert not brevo.contacts["back@example.com"].blocklisted, "the contact stays, unblocked"
    assert brevo.contacts["fan@example.com"].lists == {NEWS_LIST}
    assert brevo.blocks == {}, "the transactional block is lifted with it"
    assert "deleted@example.com" not in brevo.contacts, "a lift creates no contact"
    assert brevo.contacts["newfan@example.com"].lists == {NEWS_LIST}, "back in the list they left"
    assert sorted((a, name, who) for _, a, name, who in brevo.applied) == [
        ("remove", "blocked", "fixed@example.com"),
        ("remove", "blocklist", "back@example.com"),
        ("remove", "blocklist", "fixed@example.com"),
        ("remove", f"unlinked {NEWS_LIST}", "fan@example.com"),
        ("remove", f"unlinked {NEWS_LIST}", "newfan@example.com"),
    ]
    assert PushQueue(pushing.engine, pushing.ledger.now).letters(DEAD) == [], "404s are done"


def test_a_refused_key_is_retried_and_changes_nothing_until_it_is_right(
    make_settings: MakeSettings, brevo: BrevoStandIn
) -> None:
    app = Adieu(make_settings(**{**brevo.settings(), "brevo_api_key": "xkeysib-wrong"}))
    try:
        app.ledger.unsubscribe("wait@example.com", channel=Channel.ONE_CLICK)
        wrong = _deliverer(app)
        assert asyncio.run(wrong.run_once()) == 1
        assert brevo.bad_auth == ["v3: bad api-key"]
        assert brevo.contacts == {}
        queue = PushQueue(app.engine, app.ledger.now)
        assert queue.letters(DEAD) == []
        assert queue.counts()["brevo"].pending == 1, "kept for another try"
        (row,) = queue.letters(PENDING)
        assert row.last_error == "HTTP 401: Key not found" and row.attempts == 1
        # The operator fixes the key: the same row goes through, once.
        right = Brevo(brevo.base, BREVO_KEY, {TOPIC: NEWS_LIST}, app.ledger.now)
        _drain(app, _deliverer(app, [right]))
        assert _blocklisted(brevo) == {"wait@example.com"}
        assert len(brevo.applied) == 1
    finally:
        app.close()


def test_trouble_at_brevo_delays_but_never_loses_or_reorders(
    pushing: Adieu, brevo: BrevoStandIn
) -> None:
    ledger = pushing.ledger
    people = [f"p{i}@example.com" for i in range(4)]
    for who in people:
        ledger.unsubscribe(who, channel=Channel.ONE_CLICK)
        ledger.resubscribe(who, channel=Channel.PREFERENCES)
        ledger.unsubscribe(who, channel=Channel.API)
    brevo.add_contact("t@example.com", lists={NEWS_LIST})
    ledger.unsubscribe("t@example.com", TOPIC, channel=Channel.ONE_CLICK)
    ledger.resubscribe("t@example.com", TOPIC, channel=Channel.PREFERENCES)
    ledger.record_bounce("dead@example.com", hard=True)
    brevo.slow_s = 2.5  # answered after the deliverer gave up, and nothing done
    brevo.script = ["down", "limit", "slow", "down", "limit", "down", "down", "limit"]
    _drain(pushing, _deliverer(pushing, timeout=1.5), seconds=120)
    assert brevo.script == [], "all the trouble was met"
    for who in people:
        actions = [(a, name) for _, a, name, addr in brevo.applied if addr == who]
        assert actions == [
            ("add", "blocklist"),
            ("remove", "blocklist"),
            ("add", "blocklist"),
        ], who
    topic = [(a, name) for _, a, name, addr in brevo.applied if addr == "t@example.com"]
    assert topic == [("add", f"unlinked {NEWS_LIST}"), ("remove", f"unlinked {NEWS_LIST}")]
    assert _blocklisted(brevo) == {*people, "dead@example.com"}
    assert len(brevo.applied) == 3 * len(people) + 3, "each decision arrived once"
    assert brevo.bad_auth == []


def test_a_429_holds_brevos_pushes_for_the_seconds_its_reset_header_names(
    pushing: Adieu, brevo: BrevoStandIn
) -> None:
    from sqlalchemy import select

    from adieu.ledger import schema as t

    for who in ("a@example.com", "b@example.com"):
        pushing.ledger.unsubscribe(who, channel=Channel.ONE_CLICK)
    now = pushing.ledger.now()
    brevo.reset_s = 42  # Brevo sends no Retry-After: only x-sib-ratelimit-reset
    brevo.script = ["limit"]
    queue = PushQueue(pushing.engine, lambda: now)
    deliverer = _deliverer(pushing, concurrency=1, clock=lambda: now)
    deliverer.queue = queue
    claimed = queue.claim(100)
    assert len(claimed) == 2

    async def one_round() -> Any:
        async with deliverer.client() as client:
            return await deliverer._provider_round(client, "brevo", claimed)

    deliverer._record([asyncio.run(one_round())])
    q = t.esp_pushes
    with pushing.engine.connect() as conn:
        rows = conn.execute(
            select(q.c.attempts, q.c.next_attempt_at, q.c.last_error).order_by(q.c.id)
        ).all()
    assert [r.attempts for r in rows] == [1, 0], "the other one was not tried"
    assert {r.next_attempt_at for r in rows} == {now + timedelta(seconds=42)}
    assert {r.last_error for r in rows} == {"HTTP 429: The expected rate limit is exceeded."}
    assert brevo.contacts == {}


def test_retry_after_reads_brevos_seconds_left() -> None:
    now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    assert retry_after({"x-sib-ratelimit-reset": "42"}, now) == 42
    assert retry_after({"X-Sib-RateLimit-Reset": " 3 "}, now) == 3
    assert retry_after({"x-sib-ratelimit-reset": "0"}, now) == 0
    assert retry_after({"x-sib-ratelimit-reset": "99999"}, now) == MAX_RETRY_AFTER_S
    assert retry_after({"x-sib-ratelimit-reset": "soon"}, now) is None
    assert retry_after({"x-sib-ratelimit-reset": "-5"}, now) is None
    assert retry_after({"x-sib-ratelimit-reset": "1.5"}, now) is None
    # A Retry-After, when there is one, is what counts.
    assert retry_after({"Retry-After": "7", "x-sib-ratelimit-reset": "42"}, now) == 7


@given(
    st.dictionaries(
        st.sampled_from(
            ["x-sib-ratelimit-reset", "X-SIB-RATELIMIT-RESET", "x-sib-ratelimit-limit"]
        ),
        st.text(max_size=20),
    )
)
def test_brevos_reset_header_is_never_a_negative_nor_an_endless_wait(
    headers: dict[str, str],
) -> None:
    delay = retry_after(headers, datetime(2026, 12, 4, tzinfo=UTC))
    assert delay is None or 0 <= delay <= MAX_RETRY_AFTER_S


# -- sync --------------------------------------------------------------------------


def _run(adieu: Adieu, stand_in: BrevoStandIn, monkeypatch: pytest.MonkeyPatch) -> str:
    result = run_cli(adieu, stand_in.settings(), monkeypatch, "esp", "sync", "brevo")
    assert result.exit_code == 0, result.output
    return result.output


def _reasons(adieu: Adieu, address: str) -> set[tuple[Reason, str]]:
    return {(s.reason, s.scope) for s in adieu.ledger.status(address).state.suppressions}


def test_sync_reads_every_page_imports_what_adieu_lacks_and_pushes_what_brevo_lacks(
    pushing: Adieu, brevo: BrevoStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(push_brevo, "BREVO_CONTACTS_PAGE", 3)  # several pages of a few
    monkeypatch.setattr(push_brevo, "BREVO_BLOCKED_PAGE", 2)
    for i in range(5):
        brevo.add_contact(f"s{i}@example.com", blocklisted=True)
    for i in range(3):
        brevo.add_contact(f"n{i}@example.com", lists={NEWS_LIST})  # subscribed: nothing to read
    brevo.add_contact("t@example.com", lists={OTHER_LIST}, unsubscribed={NEWS_LIST})
    brevo.add_contact("o@example.com", unsubscribed={OTHER_LIST})  # no topic: not read
    brevo.add_contact("topic-only@example.com", lists={NEWS_LIST})
    brevo.blocks["b@example.com"] = Block("hardBounce", "Hard bounce")
    brevo.blocks["c@example.com"] = Block("contactFlaggedAsSpam", "Contact flagged as spam")
    brevo.blocks["u@example.com"] = Block("unsubscribedViaEmail", "Unsubscribed via email")
    brevo.blocks["a@example.com"] = Block("adminBlocked", "Admin blocked")
    ledger = pushing.ledger
    ledger.unsubscribe("s0@example.com", channel=Channel.ONE_CLICK)  # both hold it
    ledger.record_bounce("only-adieu@example.com", hard=True)
    ledger.unsubscribe("topic-only@example.com", TOPIC, channel=Channel.ONE_CLICK)
    ledger.unsubscribe("erased@example.com", channel=Channel.ONE_CLICK)
    ledger.erase("erased@example.com", channel=Channel.CLI)
    queue = PushQueue(pushing.engine, ledger.now)
    assert queue.counts()["brevo"].pending == 4, "the four decisions above, already queued"

    output = _run(pushing, brevo, monkeypatch)

    reads = [
        {**parse_qs(urlsplit(raw).query), "path": [urlsplit(raw).path]}
        for method, raw in brevo.seen
        if method == "GET"
    ]
    # Eleven contacts three at a time (the last page short), then four blocks
    # two at a time and the empty page after them; each in the order of creation.
    assert [(r["path"][0], r["offset"][0]) for r in reads] == [
        ("/v3/contacts", "0"),
        ("/v3/contacts", "3"),
        ("/v3/contacts", "6"),
        ("/v3/contacts", "9"),
        ("/v3/smtp/blockedContacts", "0"),
        ("/v3/smtp/blockedContacts", "2"),
        ("/v3/smtp/blockedContacts", "4"),
    ]
    assert all(r["sort"] == ["asc"] for r in reads)
    assert "brevo: 10 entries read; 9 imported into Adieu, 1 already there, 0 for topics" in output
    assert "Adieu holds 3 that brevo lacks: 2 queued for it, 1 erased" in output
    assert "only-adieu@example.com" not in output, "addresses are shown masked"
    for i in range(1, 5):
        assert _reasons(pushing, f"s{i}@example.com") == {(Reason.UNSUBSCRIBE, ALL)}
    assert _reasons(pushing, "t@example.com") == {(Reason.UNSUBSCRIBE, TOPIC)}
    assert _reasons(pushing, "b@example.com") == {(Reason.HARD_BOUNCE, ALL)}
    assert _reasons(pushing, "c@example.com") == {(Reason.COMPLAINT, ALL)}
    assert _reasons(pushing, "u@example.com") == {(Reason.UNSUBSCRIBE, ALL)}
    assert _reasons(pushing, "a@example.com") == {(Reason.UNSUBSCRIBE, ALL)}
    assert _reasons(pushing, "o@example.com") == set()
    assert _reasons(pushing, "n0@example.com") == set()
    events = ledger.status("c@example.com").events
    assert [(e.details or {}).get("source") for e in events if e.type == "suppress"] == ["brevo"]

    brevo.applied.clear()
    _drain(pushing, _deliverer(pushing))
    # The decisions queued before (the erased person's too: their suppression
    # lives on at Brevo) and the sync's, each a change once; nothing that came
    # from Brevo goes back to it.
    assert sorted((a, name, who) for _, a, name, who in brevo.applied) == [
        ("add", "blocklist", "erased@example.com"),
        ("add", "blocklist", "only-adieu@example.com"),
        ("add", f"unlinked {NEWS_LIST}", "topic-only@example.com"),
    ]
    assert brevo.bad_auth == []


def test_sync_with_a_refused_key_imports_nothing(
    pushing: Adieu, brevo: BrevoStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    brevo.add_contact("s@example.com", blocklisted=True)
    settings = {**brevo.settings(), "brevo_api_key": "xkeysib-wrong"}
    result = run_cli(pushing, settings, monkeypatch, "esp", "sync", "brevo")
    assert result.exit_code == 75
    assert "HTTP 401: Key not found" in result.output and "nothing was imported" in result.output
    assert pushing.ledger.status("s@example.com").suppressed_since is None


# -- reading Brevo's pages ---------------------------------------------------------------

CONTACTS = f"{BASE}/v3/contacts?limit=3&offset=6&sort=asc"
BLOCKED = f"{BASE}/v3/smtp/blockedContacts?limit=2&offset=0&sort=asc"
TOPICS = {NEWS_LIST: TOPIC}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=16,
)
contacts = st.fixed_dictionaries(
    {
        "email": st.emails() | st.text(max_size=30) | json_values,
        "emailBlacklisted": st.booleans() | json_values,
        "listIds": st.lists(st.integers(), max_size=3) | json_values,
        "listUnsubscribed": st.lists(st.sampled_from([NEWS_LIST, OTHER_LIST, 0]), max_size=3)
        | json_values,
    }
)
blocks = st.fixed_dictionaries(
    {
        "email": st.emails() | st.text(max_size=30) | json_values,
        "reason": st.fixed_dictionaries(
            {
                "code": st.sampled_from(
                    ["hardBounce", "contactFlaggedAsSpam", "unsubscribedViaEmail", "adminBlocked"]
                )
                | json_values,
                "message": json_values,
            }
        )
        | json_values,
    }
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"contacts": st.lists(contacts | blocks, max_size=4) | json_values, "count": json_values}
    ).map(lambda v: json.dumps(v).encode()),
)


def _page_is_sound(url: str, page: Page) -> None:
    for entry in page.entries:
        assert entry.address == entry.address.strip().lower() and "@" in entry.address
        assert entry.reason in (UNSUBSCRIBE, COMPLAINT, BOUNCE)
        assert entry.scope in (ALL, TOPIC)
    if page.next_url is not None:
        before, after = urlsplit(url), urlsplit(page.next_url)
        assert (after.scheme, after.netloc, after.path) == (
            before.scheme,
            before.netloc,
            before.path,
        )
        assert int(parse_qs(after.query)["offset"][0]) > int(parse_qs(before.query)["offset"][0])


@given(bodies)
def test_any_answer_is_read_as_a_page_or_refused_cleanly(body: bytes) -> None:
    parsers: list[tuple[str, Callable[[], Page]]] = [
        (CONTACTS, lambda: contacts_page(CONTACTS, body, TOPICS)),
        (BLOCKED, lambda: blocked_page(BLOCKED, body)),
    ]
    for url, parse in parsers:
        try:
            page = parse()
        except Unreadable:
            continue
        _page_is_sound(url, page)


@given(st.text(max_size=40), st.text(max_size=40), st.integers(0, 5))
def test_any_page_url_is_followed_only_onwards_on_the_same_path(
    limit: str, offset: str, count: int
) -> None:
    from urllib.parse import urlencode

    url = f"{BASE}/v3/contacts?{urlencode({'limit': limit, 'offset': offset, 'sort': 'asc'})}"
    items = [{"email": f"x{i}@example.com", "emailBlacklisted": True} for i in range(count)]
    page = contacts_page(url, json.dumps({"contacts": items, "count": 99}).encode(), TOPICS)
    assert len(page.entries) == count
    if page.next_url is not None:
        _page_is_sound(url, page)


def test_a_full_page_leads_to_the_next_and_a_short_or_empty_one_ends_the_list() -> None:
    two = [{"email": "A@Example.com", "emailBlacklisted": True}, {"email": "b@example.com"}]
    full = contacts_page(
        f"{BASE}/v3/contacts?limit=2&offset=4&sort=asc",
        json.dumps({"contacts": two, "count": 9}).encode(),
        TOPICS,
    )
    assert full.next_url == f"{BASE}/v3/contacts?limit=2&offset=6&sort=asc"
    assert [(e.address, e.reason, e.scope) for e in full.entries] == [
        ("a@example.com", UNSUBSCRIBE, ALL)
    ], "a contact that is not blocklisted is not read"
    short = contacts_page(CONTACTS, json.dumps({"contacts": two, "count": 8}).encode(), TOPICS)
    assert short.next_url is None
    # Brevo leaves out an empty list's contacts (and its count).
    for empty in (b"{}", b'{"count": 0}', b'{"contacts": [], "count": 0}'):
        assert contacts_page(CONTACTS, empty, TOPICS) == Page((), None)
        assert blocked_page(BLOCKED, empty) == Page((), None)
    for refused in (b'{"code": "unauthorized", "message": "Key not found"}', b"[]", b"null"):
        with pytest.raises(Unreadable):
            contacts_page(CONTACTS, refused, TOPICS)


def test_a_list_a_contact_left_is_read_only_when_it_stands_for_a_topic() -> None:
    item = {
        "email": "t@example.com",
        "emailBlacklisted": False,
        "listIds": [OTHER_LIST],
        "listUnsubscribed": [NEWS_LIST, OTHER_LIST, True],
    }
    page = contacts_page(CONTACTS, json.dumps({"contacts": [item]}).encode(), TOPICS)
    assert [(e.address, e.reason, e.scope) for e in page.entries] == [
        ("t@example.com", UNSUBSCRIBE, TOPIC)
    ]


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("hardBounce", BOUNCE),
        ("contactFlaggedAsSpam", COMPLAINT),
        ("unsubscribedViaEmail", UNSUBSCRIBE),
        ("unsubscribedViaMA", UNSUBSCRIBE),
        ("unsubscribedViaApi", UNSUBSCRIBE),
        ("adminBlocked", UNSUBSCRIBE),
        ("somethingNew", UNSUBSCRIBE),
        (None, UNSUBSCRIBE),
    ],
)
def test_each_block_is_read_by_its_reason_code(code: str | None, reason: str) -> None:
    item = {"email": "x@example.com", "reason": {"code": code, "message": "Hard bounce"}}
    page = blocked_page(BLOCKED, json.dumps({"count": 1, "contacts": [item]}).encode())
    assert [(e.address, e.reason, e.scope) for e in page.entries] == [
        ("x@example.com", reason, ALL)
    ]
    assert page.next_url is None


def test_brevo_is_configured_by_its_key_and_takes_the_topics_its_lists_stand_for(
    make_settings: MakeSettings,
) -> None:
    assert Brevo.from_settings(make_settings(), utc_now) is None
    provider = Brevo.from_settings(
        make_settings(brevo_api_key="xkeysib-secret", brevo_lists=f" {TOPIC} = 12 ,b=3"), utc_now
    )
    assert provider is not None and provider.base == BASE
    assert provider.topics == {TOPIC: 12, "b": 3}
    assert provider.takes(ALL) and provider.takes(TOPIC) and not provider.takes(UNMAPPED)
    assert provider.list_urls() == [
        (f"{BASE}/v3/contacts?limit=1000&offset=0&sort=asc", "", ALL),
        (f"{BASE}/v3/smtp/blockedContacts?limit=100&offset=0&sort=asc", "", ALL),
    ]
    assert provider.read_headers("")["api-key"] == "xkeysib-secret"
    assert "xkeysib-secret" not in repr(provider)


@given(
    st.emails(), st.sampled_from([ADD, REMOVE]), st.sampled_from([UNSUBSCRIBE, COMPLAINT, BOUNCE])
)
def test_the_address_is_in_a_url_only_where_brevo_names_a_contact_by_it(
    address: str, action: str, kind: str
) -> None:
    provider = Brevo(BASE, "k", {TOPIC: NEWS_LIST}, utc_now)
    for scope in (ALL, TOPIC):
        for call in provider.calls(action, kind if scope == ALL else UNSUBSCRIBE, scope, address):
            assert call.headers["api-key"] == "k"
            if call.method == "POST":
                assert address not in call.url
                assert json.loads(call.body)["email"] == address
            else:
                assert call.url.split("?")[0].endswith("/" + quote(address, safe=""))
                assert call.done == frozenset({404}), "nothing there is nothing to undo"
