"""Adieu's decisions reach SparkPost's suppression list through a local
stand-in that speaks its API (``standin_sparkpost``): the type each kind of
decision calls for, removals, a refused key, trouble at SparkPost, and
``adieu esp sync sparkpost`` over several pages; and what Adieu reads from
SparkPost's pages, over any input."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from push_support import TOPIC, run_cli
from push_support import deliverer_for as _deliverer
from push_support import drain as _drain
from push_support import pending as _pending
from standin_sparkpost import SPARKPOST_KEY, SparkPostStandIn, Suppression, sparkpost

from adieu.esp.push import BOUNCE, COMPLAINT, UNSUBSCRIBE, configured
from adieu.esp.push.providers import Unreadable
from adieu.esp.push.providers import sparkpost as push_sparkpost
from adieu.esp.push.providers.base import utc_now
from adieu.esp.push.providers.sparkpost import DESCRIPTIONS, SparkPost, sparkpost_page
from adieu.esp.push.queue import PushQueue
from adieu.ledger import Channel
from adieu.ledger.vocabulary import DEAD, Reason
from adieu.scopes import ALL
from adieu.service import Adieu
from conftest import MakeSettings

__all__ = ["sparkpost"]  # fixture

BOTH = {"transactional", "non_transactional"}
MARKETING = {"non_transactional"}
BASE = "https://api.sparkpost.com"


@pytest.fixture
def pushing(make_settings: MakeSettings, sparkpost: SparkPostStandIn) -> Iterator[Adieu]:
    app = Adieu(make_settings(**sparkpost.settings()))
    app.ledger.add_topic(TOPIC, "News")
    yield app
    app.close()


# -- pushes ------------------------------------------------------------------------


def test_each_decision_arrives_with_the_types_it_calls_for(
    pushing: Adieu, sparkpost: SparkPostStandIn
) -> None:
    assert configured(pushing.settings) == ("sparkpost",)
    ledger = pushing.ledger
    ledger.unsubscribe("leaver@example.com", channel=Channel.ONE_CLICK)
    ledger.record_complaint("angry@example.com")
    ledger.record_bounce("gone@example.com", hard=True)
    ledger.record_bounce("soft@example.com", hard=False)  # not a decision
    _drain(pushing, _deliverer(pushing))
    # Marketing stops for the leaver and the complainer, their receipts still
    # go; nothing at all goes to a dead mailbox.
    assert sparkpost.types_of("leaver@example.com") == MARKETING
    assert sparkpost.types_of("angry@example.com") == MARKETING
    assert sparkpost.types_of("gone@example.com") == BOTH
    assert sparkpost.types_of("soft@example.com") == set()
    descriptions = {who: e.description for (who, _), e in sparkpost.entries.items()}
    assert "complaint" in descriptions["angry@example.com"].lower()
    assert "hard bounce" in descriptions["gone@example.com"].lower()
    assert "unsubscribe" in descriptions["leaver@example.com"].lower()
    assert not any("@" in text for text in descriptions.values()), "no address in a description"
    assert len(sparkpost.applied) == 4, "each entry written once"
    writes = [(m, path) for m, path in sparkpost.seen if m == "PUT"]
    assert len(writes) == 3 and all("@" not in path for _, path in writes)
    assert sparkpost.bad_auth == []


def test_a_topic_unsubscribe_is_not_pushed(pushing: Adieu, sparkpost: SparkPostStandIn) -> None:
    pushing.ledger.unsubscribe("reader@example.com", TOPIC, channel=Channel.LANDING_PAGE)
    assert _pending(pushing) == 0, "SparkPost has no list for a topic"
    assert asyncio.run(_deliverer(pushing).run_once()) == 0
    assert sparkpost.seen == [] and sparkpost.entries == {}


def test_a_resubscribe_or_a_lift_deletes_only_the_types_its_decision_wrote(
    pushing: Adieu, sparkpost: SparkPostStandIn
) -> None:
    ledger = pushing.ledger
    ledger.unsubscribe("back@example.com", channel=Channel.ONE_CLICK)
    ledger.record_bounce("fixed@example.com", hard=True)
    ledger.unsubscribe("both@example.com", channel=Channel.ONE_CLICK)
    ledger.record_bounce("both@example.com", hard=True)
    ledger.unsubscribe("cleared@example.com", channel=Channel.ONE_CLICK)
    deliverer = _deliverer(pushing)
    _drain(pushing, deliverer)
    # The sender's own wish about this person's receipts, made in SparkPost.
    sparkpost.entries[("back@example.com", "transactional")] = Suppression(
        "Manually Added", "No receipts by mail"
    )
    # Someone removed this entry in SparkPost already: the delete finds nothing.
    del sparkpost.entries[("cleared@example.com", "non_transactional")]
    ledger.resubscribe("back@example.com", channel=Channel.PREFERENCES)
    ledger.resubscribe(
        "fixed@example.com", channel=Channel.CLI, lift=[Reason.HARD_BOUNCE], note="typo fixed"
    )
    ledger.resubscribe("both@example.com", channel=Channel.PREFERENCES)  # the bounce holds
    ledger.resubscribe("cleared@example.com", channel=Channel.PREFERENCES)
    _drain(pushing, deliverer)
    assert sparkpost.types_of("back@example.com") == {"transactional"}
    assert sparkpost.types_of("fixed@example.com") == set()
    assert sparkpost.types_of("both@example.com") == BOTH
    assert sparkpost.types_of("cleared@example.com") == set()
    removed = sorted(
        (who, kind) for _, action, kind, who in sparkpost.applied if action == "remove"
    )
    assert removed == [
        ("back@example.com", "non_transactional"),
        ("fixed@example.com", "non_transactional"),
        ("fixed@example.com", "transactional"),
    ]
    assert PushQueue(pushing.engine, pushing.ledger.now).letters(DEAD) == [], "a 404 is done"


def test_a_compliance_entry_that_cannot_be_removed_ends_as_a_dead_letter_saying_so(
    pushing: Adieu, sparkpost: SparkPostStandIn
) -> None:
    pushing.ledger.unsubscribe("held@example.com", channel=Channel.ONE_CLICK)
    deliverer = _deliverer(pushing, max_attempts=50)
    _drain(pushing, deliverer)
    sparkpost.entries[("held@example.com", "non_transactional")] = Suppression(
        "Compliance", "Held by SparkPost"
    )
    pushing.ledger.resubscribe("held@example.com", channel=Channel.PREFERENCES)
    _drain(pushing, deliverer)
    dead = PushQueue(pushing.engine, pushing.ledger.now).letters(DEAD)
    assert [d.last_error for d in dead] == ["HTTP 403: Recipient could not be removed - Compliance"]
    assert [d.attempts for d in dead] == [1], "a refusal for good is not tried again"
    assert sparkpost.types_of("held@example.com") == MARKETING


def test_a_refused_key_is_retried_and_changes_nothing_until_it_is_right(
    make_settings: MakeSettings, sparkpost: SparkPostStandIn
) -> None:
    settings = {**sparkpost.settings(), "sparkpost_api_key": "not-the-key"}
    app = Adieu(make_settings(**settings))
    try:
        app.ledger.unsubscribe("wait@example.com", channel=Channel.ONE_CLICK)
        wrong = _deliverer(app)
        assert asyncio.run(wrong.run_once()) == 1
        assert sparkpost.bad_auth == ["api: bad API key"]
        assert sparkpost.entries == {}
        queue = PushQueue(app.engine, app.ledger.now)
        assert queue.letters(DEAD) == []
        assert queue.counts()["sparkpost"].pending == 1, "kept for another try"
        # The operator fixes the key: the same row goes through.
        right = SparkPost(sparkpost.base, SPARKPOST_KEY, app.ledger.now)
        _drain(app, _deliverer(app, [right]))
        assert sparkpost.types_of("wait@example.com") == MARKETING
        assert len(sparkpost.applied) == 1
    finally:
        app.close()


def test_trouble_at_sparkpost_delays_but_never_loses_or_reorders(
    pushing: Adieu, sparkpost: SparkPostStandIn
) -> None:
    ledger = pushing.ledger
    people = [f"p{i}@example.com" for i in range(4)]
    for who in people:
        ledger.unsubscribe(who, channel=Channel.ONE_CLICK)
        ledger.resubscribe(who, channel=Channel.PREFERENCES)
        ledger.unsubscribe(who, channel=Channel.API)
    ledger.record_bounce("dead@example.com", hard=True)
    sparkpost.slow_s = 2.5  # answered after the deliverer gave up, and nothing done
    sparkpost.script = ["down", "limit", "slow", "down", "limit", "down", "down"]
    _drain(pushing, _deliverer(pushing, timeout=1.5), seconds=120)
    assert sparkpost.script == [], "all the trouble was met"
    for who in people:
        actions = [(a, kind) for _, a, kind, addr in sparkpost.applied if addr == who]
        assert actions == [
            ("add", "non_transactional"),
            ("remove", "non_transactional"),
            ("add", "non_transactional"),
        ], who
        assert sparkpost.types_of(who) == MARKETING
    assert sparkpost.types_of("dead@example.com") == BOTH
    assert len(sparkpost.applied) == 3 * len(people) + 2, "each decision arrived once"
    assert sparkpost.bad_auth == []


# -- sync --------------------------------------------------------------------------


def _run(adieu: Adieu, stand_in: SparkPostStandIn, monkeypatch: pytest.MonkeyPatch) -> str:
    result = run_cli(adieu, stand_in.settings(), monkeypatch, "esp", "sync", "sparkpost")
    assert result.exit_code == 0, result.output
    return result.output


def _reasons(adieu: Adieu, address: str) -> set[Reason]:
    return {s.reason for s in adieu.ledger.status(address).state.suppressions}


def test_sync_reads_every_page_imports_what_adieu_lacks_and_pushes_what_sparkpost_lacks(
    pushing: Adieu, sparkpost: SparkPostStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(push_sparkpost, "SPARKPOST_PAGE", 3)  # several pages of a few
    held = sparkpost.entries
    for i in range(5):
        held[(f"s{i}@example.com", "non_transactional")] = Suppression(
            "List Unsubscribe", "Unsubscribed using list unsubscribe header"
        )
    held[("c@example.com", "non_transactional")] = Suppression("Spam Complaint", "Complained")
    for kind in BOTH:
        held[("b@example.com", kind)] = Suppression("Bounce Rule", "550: 5.1.1 unknown user")
    held[("m@example.com", "non_transactional")] = Suppression(
        "Manually Added", "550: mailbox does not exist"
    )
    # Receipts only: says nothing about marketing.
    held[("r@example.com", "transactional")] = Suppression("Manually Added", "No receipts")
    ledger = pushing.ledger
    ledger.unsubscribe("s0@example.com", channel=Channel.ONE_CLICK)  # both hold it
    ledger.unsubscribe("r@example.com", channel=Channel.ONE_CLICK)
    ledger.record_bounce("only-adieu@example.com", hard=True)
    ledger.unsubscribe("erased@example.com", channel=Channel.ONE_CLICK)
    ledger.erase("erased@example.com", channel=Channel.CLI)
    queue = PushQueue(pushing.engine, ledger.now)
    assert queue.counts()["sparkpost"].pending == 4, "the four decisions above, already queued"

    output = _run(pushing, sparkpost, monkeypatch)

    # Ten entries, three a page: four pages and the cursor's empty last one.
    cursors = [q.get("cursor", [""])[0] for q in sparkpost.searches]
    assert len(cursors) == 5 and cursors[0] == "initial" and len(set(cursors)) == 5
    assert all(q["per_page"] == ["3"] for q in sparkpost.searches)
    # b's two entries are one bounce; r's receipts-only entry is not read.
    assert "sparkpost: 8 entries read; 7 imported into Adieu, 1 already there" in output
    assert "Adieu holds 3 that sparkpost lacks: 2 queued for it, 1 erased" in output
    assert "only-adieu@example.com" not in output, "addresses are shown masked"
    assert _reasons(pushing, "c@example.com") == {Reason.COMPLAINT}
    assert _reasons(pushing, "b@example.com") == {Reason.HARD_BOUNCE}
    assert _reasons(pushing, "m@example.com") == {Reason.HARD_BOUNCE}
    for i in range(1, 5):
        assert _reasons(pushing, f"s{i}@example.com") == {Reason.UNSUBSCRIBE}
    events = ledger.status("c@example.com").events
    assert [(e.details or {}).get("source") for e in events if e.type == "suppress"] == [
        "sparkpost"
    ]

    sparkpost.applied.clear()
    _drain(pushing, _deliverer(pushing))
    pushed = {(who, kind) for _, action, kind, who in sparkpost.applied if action == "add"}
    assert ("only-adieu@example.com", "transactional") in pushed
    assert ("only-adieu@example.com", "non_transactional") in pushed
    assert sparkpost.types_of("r@example.com") == BOTH, "marketing stopped, receipts as they were"
    imported = {"b", "c", "m", "s1", "s2", "s3", "s4"}
    assert not {(who, kind) for who, kind in pushed if who.split("@")[0] in imported}, (
        "what came from SparkPost is not pushed back"
    )
    assert sparkpost.bad_auth == []


def test_sync_with_a_refused_key_imports_nothing(
    pushing: Adieu, sparkpost: SparkPostStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    sparkpost.entries[("s@example.com", "non_transactional")] = Suppression(
        "List Unsubscribe", "Unsubscribed"
    )
    settings = {**sparkpost.settings(), "sparkpost_api_key": "not-the-key"}
    result = run_cli(pushing, settings, monkeypatch, "esp", "sync", "sparkpost")
    assert result.exit_code == 75
    assert "HTTP 401: unauthorized" in result.output and "nothing was imported" in result.output
    assert pushing.ledger.status("s@example.com").suppressed_since is None


# -- reading SparkPost's pages ----------------------------------------------------------

FIRST = f"{BASE}/api/v1/suppression-list?cursor=initial&per_page=10000"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=16,
)
hrefs = st.one_of(
    st.text(max_size=60),
    st.text(max_size=30).map(lambda h: f"https://{h}/api/v1/suppression-list?cursor=x"),
    st.text(max_size=30).map(lambda h: f"//{h}/api/v1/suppression-list?cursor=x"),
    st.just("/api/v1/suppression-list?cursor=abc&per_page=10000"),
    json_values,
)
entries = st.fixed_dictionaries(
    {
        "recipient": st.emails() | st.text(max_size=30) | json_values,
        "type": st.sampled_from(["transactional", "non_transactional", "", None]),
        "source": st.sampled_from(
            ["Spam Complaint", "List Unsubscribe", "Bounce Rule", "Manually Added", "Compliance"]
        )
        | json_values,
        "description": st.text(max_size=40) | json_values,
        "transactional": json_values,
    }
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {
            "results": st.lists(entries, max_size=4) | json_values,
            "links": st.lists(
                st.fixed_dictionaries(
                    {"rel": st.sampled_from(["first", "next", "previous"]), "href": hrefs}
                ),
                max_size=3,
            )
            | st.fixed_dictionaries({"next": hrefs})
            | json_values,
            "total_count": json_values,
        }
    ).map(lambda v: json.dumps(v).encode()),
)


@given(bodies)
def test_any_answer_is_read_as_a_page_or_refused_cleanly(body: bytes) -> None:
    try:
        page = sparkpost_page(FIRST, body, BASE)
    except Unreadable:
        return
    for entry in page.entries:
        assert entry.address == entry.address.strip().lower() and "@" in entry.address
        assert entry.reason in (UNSUBSCRIBE, COMPLAINT, BOUNCE)
    assert page.next_url is None or (
        page.next_url.startswith(BASE + "/")
        and urlsplit(page.next_url).netloc == "api.sparkpost.com"
    )


@given(st.text(max_size=60), st.sampled_from(["https://{}/next", "//{}/next", "http://{}"]))
def test_a_next_link_to_another_host_is_never_followed(host: str, form: str) -> None:
    href = form.format(host)
    for links in ([{"href": href, "rel": "next"}], {"next": href}):
        body = json.dumps(
            {
                "results": [{"recipient": "a@example.com", "type": "non_transactional"}],
                "links": links,
            }
        ).encode()
        page = sparkpost_page(FIRST, body, BASE)
        assert page.next_url is None or urlsplit(page.next_url).netloc == "api.sparkpost.com"


def test_the_next_link_sparkpost_gives_is_followed_on_the_apis_own_host() -> None:
    entry = {"recipient": "A@Example.com", "type": "non_transactional", "source": "Bounce Rule"}
    link = "/api/v1/suppression-list?cursor=c2&per_page=10000"
    body = json.dumps({"results": [entry], "links": [{"href": link, "rel": "next"}]}).encode()
    page = sparkpost_page(FIRST, body, BASE)
    assert page.next_url == BASE + link
    assert [(e.address, e.reason) for e in page.entries] == [("a@example.com", BOUNCE)]
    behind = "https://proxy.example/sparkpost"  # a proxy's prefix stays
    prefixed = f"{behind}/api/v1/suppression-list?cursor=initial"
    assert sparkpost_page(prefixed, body, behind).next_url == behind + link
    whole = json.dumps({"results": [entry], "links": {"next": BASE + link}}).encode()
    assert sparkpost_page(FIRST, whole, BASE).next_url == BASE + link
    assert sparkpost_page(prefixed, whole, behind).next_url is None, "not the configured API"
    # A cursor's last page, without results, may still point on: the end.
    empty = json.dumps({"results": [], "links": [{"href": link, "rel": "next"}]}).encode()
    assert sparkpost_page(FIRST, empty, BASE).next_url is None


@pytest.mark.parametrize(
    ("source", "description", "kind", "reason"),
    [
        ("Spam Complaint", "", "non_transactional", COMPLAINT),
        ("Bounce Rule", "550: 5.1.1 unknown", "transactional", BOUNCE),
        ("List Unsubscribe", "", "non_transactional", UNSUBSCRIBE),
        ("Unsubscribe Link", "", "non_transactional", UNSUBSCRIBE),
        ("Manually Added", "550: mailbox does not exist", "non_transactional", BOUNCE),
        ("Manually Added", "Asked us to stop", "non_transactional", UNSUBSCRIBE),
        ("Manually Added", "Asked for no receipts", "transactional", None),
        ("Compliance", "", "non_transactional", UNSUBSCRIBE),
        *[("Manually Added", text, "non_transactional", k) for k, text in DESCRIPTIONS.items()],
    ],
)
def test_each_entry_is_read_as_the_reason_it_stands_for(
    source: str, description: str, kind: str, reason: str | None
) -> None:
    entry = {"recipient": "x@example.com", "type": kind, "source": source}
    entry["description"] = description
    page = sparkpost_page(FIRST, json.dumps({"results": [entry], "links": []}).encode(), BASE)
    assert [e.reason for e in page.entries] == ([reason] if reason else [])
    assert page.next_url is None


def test_sparkpost_is_configured_by_its_key_alone_and_asks_for_its_largest_pages(
    make_settings: MakeSettings,
) -> None:
    assert SparkPost.from_settings(make_settings(), utc_now) is None
    provider = SparkPost.from_settings(make_settings(sparkpost_api_key="sp-secret-key"), utc_now)
    assert provider is not None and provider.base == BASE
    assert provider.list_urls() == [(FIRST, "", ALL)]
    assert provider.read_headers(FIRST)["Authorization"] == "sp-secret-key"
    assert "sp-secret-key" not in repr(provider)
    assert not provider.takes(TOPIC)
