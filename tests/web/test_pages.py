"""The public pages, in-process over httpx's ASGI transport."""

from __future__ import annotations

import asyncio
import re
import string
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from adieu.ledger import Channel, EventType, Frequency
from adieu.ledger import schema as t
from adieu.metrics import REGISTRY
from adieu.service import Adieu
from adieu.settings import Settings
from adieu.times import local_moment
from support import Client


@pytest.fixture
def client(adieu: Adieu) -> Iterator[Client]:
    c = Client(adieu)
    yield c
    c.close()


def events(adieu: Adieu) -> int:
    with adieu.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t.events)).scalar_one())


def _timed(method: str) -> float:
    """How many /u/{token} requests of ``method`` the latency metric counted."""
    value = REGISTRY.get_sample_value(
        "adieu_http_request_duration_seconds_count", {"route": "/u/{token}", "method": method}
    )
    return value or 0.0


def test_every_answer_on_a_link_carries_the_security_headers_once_and_is_timed_once(
    adieu: Adieu, client: Client
) -> None:
    """The link's URL is answered in front of the framework (the landing
    page, one-click) or by the routes behind it (the page's own forms, a
    link that is not valid): the same headers either way, never twice, and
    one count in the latency metric per request."""
    token = adieu.link("jane@example.com").token
    page = client.request("GET", f"/u/{token}")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    form = {"adieu-page": "1", "scope": "all", **({"csrf": csrf.group(1)} if csrf else {})}
    asks: list[tuple[str, str, dict[str, object], int]] = [
        ("GET", f"/u/{token}", {}, 200),
        ("HEAD", f"/u/{token}", {}, 200),
        ("GET", "/u/not-a-valid-link", {}, 400),
        ("POST", "/u/not-a-valid-link", {"content": b"List-Unsubscribe=One-Click"}, 400),
        (
            "POST",
            f"/u/{token}",
            {"data": form, "headers": {"origin": "https://mail.example.net"}},
            200,
        ),
        ("POST", f"/u/{token}", {"content": b"List-Unsubscribe=One-Click"}, 200),
        ("POST", f"/u/{token}", {"headers": {"content-length": str(10**9)}}, 413),
        ("GET", f"/u/{token}", {}, 200),  # now the page for someone who left
    ]
    for method, url, extra, status in asks:
        before = _timed(method)
        response = client.request(method, url, **extra)
        assert response.status_code == status, (method, url)
        for name in ("referrer-policy", "content-security-policy", "x-content-type-options"):
            assert len(response.headers.get_list(name)) == 1, (method, url, name)
        assert response.headers["strict-transport-security"] == "max-age=31536000"
        assert response.headers["cache-control"] == "no-store"
        assert _timed(method) == before + 1, (method, url)


def test_landing_page_shows_masked_address_and_changes_nothing(
    adieu: Adieu, client: Client
) -> None:
    link = adieu.link("jane@example.com")
    for method in ("GET", "HEAD", "GET"):
        response = client.request(method, f"/u/{link.token}")
        assert response.status_code == 200
    assert "j•••@example.com" in response.text
    assert "jane@example.com" not in response.text
    assert "Unsubscribe from all marketing email" in response.text
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-robots-tag"].startswith("noindex")
    assert events(adieu) == 0
    assert adieu.policy.is_sendable("jane@example.com")


@pytest.mark.parametrize(
    "body",
    [
        {
            "content": b"List-Unsubscribe=One-Click",
            "headers": {"content-type": "application/x-www-form-urlencoded"},
        },
        {"files": {"List-Unsubscribe": (None, "One-Click")}},
        {},
    ],
    ids=["urlencoded", "multipart", "empty"],
)
def test_rfc8058_one_click_post_unsubscribes_with_a_plain_200(
    adieu: Adieu, client: Client, body: dict[str, object]
) -> None:
    link = adieu.link("jane@example.com", campaign="spring")
    response = client.request("POST", f"/u/{link.token}", **body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "set-cookie" not in response.headers
    (event,) = adieu.ledger.history("jane@example.com")
    assert (event.type, event.channel, event.campaign) == (
        EventType.UNSUBSCRIBE,
        Channel.ONE_CLICK,
        "spring",
    )
    again = client.request("POST", f"/u/{link.token}", **body)
    assert again.status_code == 200
    assert len(adieu.ledger.history("jane@example.com")) == 1


def test_topic_link_one_click_leaves_only_that_topic(adieu: Adieu, client: Client) -> None:
    adieu.ledger.add_topic("news", "News")
    link = adieu.link("jane@example.com", topic="news")
    client.request(
        "POST",
        f"/u/{link.token}",
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert not adieu.policy.is_sendable("jane@example.com", "news")
    assert adieu.policy.is_sendable("jane@example.com")


def test_page_button_confirms_and_says_already_with_the_date(adieu: Adieu, client: Client) -> None:
    adieu.ledger.add_topic("news", "News")
    link = adieu.link("jane@example.com", topic="news")
    form = {"adieu-page": "1"}
    first = client.request("POST", f"/u/{link.token}", data=form)
    assert first.status_code == 200 and "You are unsubscribed" in first.text
    assert not adieu.policy.is_sendable("jane@example.com"), "the page's button means all marketing"
    (event,) = adieu.ledger.history("jane@example.com")
    assert event.channel is Channel.LANDING_PAGE
    second = client.request("POST", f"/u/{link.token}", data=form)
    assert "You were already unsubscribed" in second.text
    assert local_moment(event.at, "en", UTC) in second.text


def test_invalid_token_gets_a_kind_400_and_writes_nothing(adieu: Adieu, client: Client) -> None:
    token = adieu.link("jane@example.com").token
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    for method in ("GET", "POST"):
        response = client.request(method, f"/u/{tampered}")
        assert response.status_code == 400
        assert "not valid" in response.text
    assert "Traceback" not in response.text
    assert events(adieu) == 0


def test_health(client: Client) -> None:
    assert client.request("GET", "/healthz").json() == {"status": "ok"}


_token_chars = string.ascii_letters + string.digits + "-_%/.~"


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    token=st.one_of(
        st.text(alphabet=_token_chars, min_size=1, max_size=200), st.text(min_size=1, max_size=50)
    ),
    body=st.binary(max_size=300),
    content_type=st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "multipart/form-data; boundary=x",
            "text/plain",
            "",
            "application/json",
        ]
    ),
)
def test_random_tokens_and_bodies_never_500_and_never_write(
    sqlite_adieu: Adieu, token: str, body: bytes, content_type: str
) -> None:
    client = Client(sqlite_adieu)
    try:
        from urllib.parse import quote

        url = "/u/" + quote(token, safe="")
        for method in ("GET", "POST"):
            response = client.request(
                method, url, content=body, headers={"content-type": content_type}
            )
            assert response.status_code < 500
    finally:
        client.close()
    assert events(sqlite_adieu) == 0


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.binary(max_size=500),
    content_type=st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=----x",
            "text/plain",
            "",
        ]
    ),
)
def test_any_body_on_a_valid_link_unsubscribes_exactly_once(
    sqlite_adieu: Adieu, body: bytes, content_type: str
) -> None:
    link = sqlite_adieu.link("body@example.com")
    client = Client(sqlite_adieu)
    try:
        response = client.request(
            "POST", f"/u/{link.token}", content=body, headers={"content-type": content_type}
        )
    finally:
        client.close()
    assert response.status_code == 200
    assert not sqlite_adieu.policy.is_sendable("body@example.com")
    assert len(sqlite_adieu.ledger.history("body@example.com")) == 1


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the page carries a CSRF field"
    return match.group(1)


def _texts_in_order(html: str, *texts: str) -> bool:
    positions = [html.find(t) for t in texts]
    return all(p >= 0 for p in positions) and positions == sorted(positions)


def test_landing_page_offers_the_choices_in_order_and_asks_for_nothing(
    adieu: Adieu, client: Client
) -> None:
    adieu.ledger.add_topic("news", "Monthly news")
    plain = client.request("GET", f"/u/{adieu.link('jane@example.com').token}").text
    assert _texts_in_order(
        plain,
        "Unsubscribe from all marketing email",
        "Change my preferences",
        "Send me fewer emails",
    )
    assert "Only stop emails about" not in plain
    topical = client.request("GET", f"/u/{adieu.link('jane@example.com', topic='news').token}").text
    assert _texts_in_order(
        topical,
        "Unsubscribe from all marketing email",
        "Change my preferences",
        "Only stop emails about Monthly news",
    )
    for html in (plain, topical):
        assert 'type="email"' not in html and 'type="password"' not in html  # R11, R12
        assert "checked" not in html  # R10: nothing pre-ticked
        assert "<script" not in html
        assert 'lang="en"' in html


def test_landing_page_topic_button_leaves_only_that_topic(adieu: Adieu, client: Client) -> None:
    adieu.ledger.add_topic("news", "Monthly news")
    link = adieu.link("jane@example.com", topic="news")
    page = client.request("POST", f"/u/{link.token}", data={"adieu-page": "1", "scope": "topic"})
    assert "You will not receive emails about Monthly news" in page.text
    assert not adieu.policy.is_sendable("jane@example.com", "news")
    assert adieu.policy.is_sendable("jane@example.com")


def test_confirmation_sets_expectations_and_promises_no_email(adieu: Adieu, client: Client) -> None:
    link = adieu.link("jane@example.com")
    page = client.request("POST", f"/u/{link.token}", data={"adieu-page": "1"}).text
    assert "This takes effect now" in page and "within 24 hours" in page
    assert "We will not send you an email to confirm this." in page


def test_optional_reason_after_unsubscribing(adieu: Adieu, client: Client) -> None:
    link = adieu.link("jane@example.com")
    page = client.request("POST", f"/u/{link.token}", data={"adieu-page": "1"}).text
    csrf = _csrf(page)
    thanks = client.request(
        "POST",
        f"/u/{link.token}/reason",
        data={"csrf": csrf, "choice": "too_many", "text": "x" * 900},
    )
    assert thanks.status_code == 200 and "Thank you" in thanks.text
    last = adieu.ledger.history("jane@example.com")[-1]
    assert last.type is EventType.REASON and last.details == {"choice": "too_many"}
    assert last.reason == "x" * 500
    forged = client.request("POST", f"/u/{link.token}/reason", data={"choice": "other"})
    assert forged.status_code == 403
    assert len(adieu.ledger.history("jane@example.com")) == 2


def test_resubscribe_undoes_a_mistaken_click_but_not_from_another_site(
    adieu: Adieu, client: Client
) -> None:
    link = adieu.link("jane@example.com")
    csrf = _csrf(client.request("POST", f"/u/{link.token}", data={"adieu-page": "1"}).text)
    cross = client.request(
        "POST",
        f"/u/{link.token}/resubscribe",
        data={"csrf": csrf},
        headers={"sec-fetch-site": "cross-site"},
    )
    assert cross.status_code == 403
    other_origin = client.request(
        "POST",
        f"/u/{link.token}/resubscribe",
        data={"csrf": csrf},
        headers={"origin": "https://evil.example"},
    )
    assert other_origin.status_code == 403
    assert not adieu.policy.is_sendable("jane@example.com")
    done = client.request(
        "POST",
        f"/u/{link.token}/resubscribe",
        data={"csrf": csrf},
        headers={"origin": "https://mail.example.net"},
    )
    assert done.status_code == 200 and "You are subscribed again" in done.text
    assert adieu.policy.is_sendable("jane@example.com")


def test_preference_center_shows_and_saves_choices(adieu: Adieu, client: Client) -> None:
    ledger = adieu.ledger
    ledger.add_topic("news", "Monthly news", "Once a month")
    ledger.add_topic("events", "Events", default_opt_in=False)
    link = adieu.link("jane@example.com")
    page = client.request("GET", f"/p/{link.token}").text
    assert 'id="topic-news" value="1" checked' in page
    assert 'id="topic-events" value="1">' in page
    assert 'id="frequency-every" checked' in page
    assert "Unsubscribe from all marketing email" in page
    saved = client.request(
        "POST",
        f"/p/{link.token}",
        data={"csrf": _csrf(page), "topic-events": "1", "frequency": "weekly", "pause": "30"},
    )
    assert saved.status_code == 200
    for line in (
        "Monthly news: off",
        "Events: on",
        "How often: At most one email a week",
        "Paused until",
    ):
        assert line in saved.text
    policy = adieu.policy
    assert policy.may_send("jane@example.com", "news").reason == "topic_opt_out"
    assert policy.may_send("jane@example.com", "events").reason == "paused"
    assert ledger.status("jane@example.com").state.frequency is Frequency.WEEKLY
    (event,) = ledger.history("jane@example.com")
    assert event.channel is Channel.PREFERENCES
    again = client.request(
        "POST",
        f"/p/{link.token}",
        data={
            "csrf": _csrf(saved.text),
            "topic-events": "1",
            "frequency": "weekly",
            "pause": "keep",
        },
    )
    assert "Nothing was changed." in again.text


def test_preference_center_refuses_forged_forms(adieu: Adieu, client: Client) -> None:
    link = adieu.link("jane@example.com")
    forged = client.request("POST", f"/p/{link.token}", data={"frequency": "monthly", "csrf": "x"})
    assert forged.status_code == 403
    assert events(adieu) == 0


def test_preference_center_after_unsubscribing_offers_to_come_back(
    adieu: Adieu, client: Client
) -> None:
    link = adieu.link("jane@example.com")
    client.request("POST", f"/u/{link.token}")
    page = client.request("GET", f"/p/{link.token}").text
    assert "You have been unsubscribed from all marketing email since" in page
    assert "Subscribe again" in page


def test_language_from_token_then_browser(adieu: Adieu, client: Client) -> None:
    sv = client.request(
        "GET",
        f"/u/{adieu.link('jane@example.com', locale='sv').token}",
        headers={"accept-language": "de"},
    )
    assert 'lang="sv"' in sv.text and "Avregistrera dig från alla marknadsföringsmejl" in sv.text
    de = client.request(
        "GET",
        f"/u/{adieu.link('jane@example.com').token}",
        headers={"accept-language": "fr;q=0.5, de-CH, en;q=0.1"},
    )
    assert 'lang="de"' in de.text
    fallback = client.request(
        "GET",
        f"/u/{adieu.link('jane@example.com').token}",
        headers={"accept-language": "xx, ;;q=a"},
    )
    assert 'lang="en"' in fallback.text


def test_brand_colours_always_meet_contrast() -> None:
    from adieu.web.render import Palette, contrast

    for brand in ("#0b5cad", "#ffcc00", "#ffffff", "#000000", "#7f7f7f", "#e63946"):
        palette = Palette.from_brand(brand)
        assert contrast(palette.accent, palette.on_accent) >= 4.5
        assert contrast(palette.link, "#ffffff") >= 4.5


def test_concurrent_one_clicks_share_commits_and_all_land(adieu: Adieu) -> None:
    """A burst of one-click POSTs: every one acknowledged is in the ledger."""
    batches: list[int] = []
    original = adieu.ledger.unsubscribe_many

    def recording(requests):  # type: ignore[no-untyped-def]
        batches.append(len(requests))
        return original(requests)

    adieu.ledger.unsubscribe_many = recording  # type: ignore[method-assign]
    links = [adieu.link(f"burst{i}@example.com") for i in range(40)]
    links.append(links[0])  # the same person twice in one burst
    client = Client(adieu)

    async def burst() -> list[httpx.Response]:
        return await asyncio.gather(
            *(
                client.client.post(
                    f"/u/{link.token}",
                    content=b"List-Unsubscribe=One-Click",
                    headers={"content-type": "application/x-www-form-urlencoded"},
                )
                for link in links
            )
        )

    try:
        responses = client.loop.run_until_complete(burst())
    finally:
        client.close()
    assert [r.status_code for r in responses] == [200] * len(links)
    assert sum(batches) == len(links) and max(batches) > 1
    for i in range(40):
        assert not adieu.policy.is_sendable(f"burst{i}@example.com")
    assert len(adieu.ledger.history("burst0@example.com")) == 1


def test_unsubscribe_many_reports_bad_requests_in_place(adieu: Adieu) -> None:
    from adieu.errors import InvalidAddress, UnknownTopic
    from adieu.ledger import UnsubscribeRequest

    results = adieu.ledger.unsubscribe_many(
        [
            UnsubscribeRequest("a@example.com"),
            UnsubscribeRequest("not an address"),
            UnsubscribeRequest("b@example.com", scope="nope"),
            UnsubscribeRequest("c@example.com"),
        ]
    )
    assert isinstance(results[1], InvalidAddress) and isinstance(results[2], UnknownTopic)
    assert results[0].changed and results[3].changed  # type: ignore[union-attr]
    assert adieu.policy.is_sendable("b@example.com")
    assert not adieu.policy.is_sendable("c@example.com")


def test_brand_settings_logo_colour_and_privacy_link(tmp_path: Path) -> None:
    logo = tmp_path / "logo.svg"
    logo.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')
    app = Adieu(
        Settings(
            data_dir=tmp_path / "data",
            base_url="https://mail.example.net",
            sender_name="Example <News>",
            logo_file=logo,
            brand_colour="#ffcc00",
            privacy_url="https://example.net/privacy",
        )
    )
    client = Client(app)
    try:
        page = client.request("GET", f"/u/{app.link('jane@example.com').token}").text
        assert '<img src="/brand/logo" alt="Example &lt;News&gt;"' in page
        assert '<a href="https://example.net/privacy">Privacy policy</a>' in page
        served = client.request("GET", "/brand/logo")
        assert served.status_code == 200 and served.headers["content-type"] == "image/svg+xml"
        css = client.request("GET", "/brand.css").text
        assert "--accent: #ffcc00; --on-accent: #1f2328; --link: #1f2328;" in css
    finally:
        client.close()
        app.close()


def test_app_factory_reads_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """For `uvicorn --factory adieu.web.app:app_from_environment --workers N`."""
    from adieu.web.app import app_from_environment

    monkeypatch.setenv("ADIEU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ADIEU_SENDER_NAME", "Factory News")
    app = app_from_environment()
    loop = asyncio.new_event_loop()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x")
    try:
        home = loop.run_until_complete(client.get("/"))
        assert "Factory News" in home.text
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()


def test_landing_pages_are_per_link_and_escaped(tmp_path: Path) -> None:
    app = Adieu(Settings(data_dir=tmp_path / "data", address_display="full"))
    client = Client(app)
    try:
        first = app.link("o'brien&co@example.com")
        second = app.link("ann@example.com")
        one = client.request("GET", f"/u/{first.token}").text
        two = client.request("GET", f"/u/{second.token}").text
        assert "o&#39;brien&amp;co@example.com" in one and "o'brien" not in one
        assert f'action="/u/{first.token}"' in one and second.token not in one
        assert "ann@example.com" in two and f'href="/p/{second.token}"' in two
        assert "adieu-token" not in two and "adieu-address" not in two
    finally:
        client.close()
        app.close()


def test_subscribe_again_after_a_complaint_explains_and_changes_nothing(
    adieu: Adieu, client: Client
) -> None:
    """A link never lifts a complaint; the page must not promise mail."""
    link = adieu.link("jane@example.com")
    csrf = _csrf(client.request("POST", f"/u/{link.token}", data={"adieu-page": "1"}).text)
    adieu.ledger.record_complaint("jane@example.com")
    page = client.request("POST", f"/u/{link.token}/resubscribe", data={"csrf": csrf})
    assert page.status_code == 200
    assert "Your emails were not restarted" in page.text
    assert "sign up with them once more" in page.text
    assert "You will receive" not in page.text and "subscribed again" not in page.text
    assert not adieu.policy.is_sendable("jane@example.com")
    assert {s.reason.value for s in adieu.ledger.status("jane@example.com").state.suppressions} == {
        "complaint"
    }


def test_an_erased_address_cannot_come_back_through_its_old_link(
    adieu: Adieu, client: Client
) -> None:
    link = adieu.link("jane@example.com")
    csrf = _csrf(client.request("POST", f"/u/{link.token}", data={"adieu-page": "1"}).text)
    adieu.ledger.erase("jane@example.com", channel=Channel.CLI)
    page = client.request("POST", f"/u/{link.token}/resubscribe", data={"csrf": csrf})
    assert page.status_code == 200 and "Your emails were not restarted" in page.text
    assert "erase" not in page.text.lower()  # kindly, without revealing more
    saved = client.request(
        "POST", f"/p/{link.token}", data={"csrf": csrf, "frequency": "weekly", "pause": "none"}
    )
    assert saved.status_code == 200
    assert "can no longer change your preferences" in saved.text
    assert not adieu.policy.is_sendable("jane@example.com")
    assert adieu.ledger.status("jane@example.com").address is None


def test_changes_through_a_link_record_the_link_and_its_issue_time(
    adieu: Adieu, client: Client
) -> None:
    link = adieu.link("jane@example.com")
    csrf = _csrf(client.request("POST", f"/u/{link.token}", data={"adieu-page": "1"}).text)
    client.request("POST", f"/u/{link.token}/resubscribe", data={"csrf": csrf})
    client.request("POST", f"/p/{link.token}", data={"csrf": csrf, "frequency": "weekly"})
    history = adieu.ledger.history("jane@example.com")
    assert [e.type for e in history] == [
        EventType.UNSUBSCRIBE,
        EventType.RESUBSCRIBE,
        EventType.PREFERENCES,
    ]
    for event in history:
        assert event.details is not None
        assert event.details["via"] == "link"
        assert event.details["token_issued_at"].endswith("Z")


# -- a retired topic: every link that names it still unsubscribes -------------------

ONE_CLICK = {
    "content": b"List-Unsubscribe=One-Click",
    "headers": {"content-type": "application/x-www-form-urlencoded"},
}


def _scopes(adieu: Adieu, address: str) -> set[str]:
    return {s.scope for s in adieu.ledger.status(address).state.suppressions}


def test_a_retired_topics_links_open_their_landing_page_and_every_choice_works(
    adieu: Adieu, client: Client
) -> None:
    adieu.ledger.add_topic("news", "Monthly news")
    ann, bob, cid = (adieu.link(f"{n}@example.com", topic="news") for n in ("ann", "bob", "cid"))
    adieu.ledger.retire_topic("news")
    page = client.request("GET", f"/u/{ann.token}")
    assert page.status_code == 200
    assert _texts_in_order(
        page.text,
        "Unsubscribe from all marketing email",
        "Change my preferences",
        "Only stop emails about Monthly news",
    )
    # One-click leaves the link's topic, as it did before the topic was retired.
    clicked = client.request("POST", f"/u/{ann.token}", **ONE_CLICK)
    assert (clicked.status_code, clicked.text) == (200, "You are unsubscribed.")
    (event,) = adieu.ledger.history("ann@example.com")
    assert (event.type, event.channel, event.scope) == (
        EventType.UNSUBSCRIBE,
        Channel.ONE_CLICK,
        "news",
    )
    assert _scopes(adieu, "ann@example.com") == {"news"}
    topic_only = client.request(
        "POST", f"/u/{bob.token}", data={"adieu-page": "1", "scope": "topic"}
    )
    assert topic_only.status_code == 200
    assert "You will not receive emails about Monthly news" in topic_only.text
    assert _scopes(adieu, "bob@example.com") == {"news"}
    everything = client.request("POST", f"/u/{cid.token}", data={"adieu-page": "1"})
    assert everything.status_code == 200 and "You are unsubscribed" in everything.text
    assert not adieu.policy.is_sendable("cid@example.com")


def test_the_preference_center_leaves_a_retired_topic_out_and_alone(
    adieu: Adieu, client: Client
) -> None:
    ledger = adieu.ledger
    ledger.add_topic("news", "Monthly news")
    ledger.add_topic("events", "Events")
    link = adieu.link("jane@example.com", topic="news")
    ledger.unsubscribe("jane@example.com", "news", channel=Channel.ONE_CLICK)
    ledger.retire_topic("news")
    page = client.request("GET", f"/p/{link.token}")
    assert page.status_code == 200
    assert 'id="topic-events" value="1" checked' in page.text
    assert "topic-news" not in page.text and "Monthly news" not in page.text
    saved = client.request(
        "POST", f"/p/{link.token}", data={"csrf": _csrf(page.text), "topic-news": "1"}
    )
    assert saved.status_code == 200 and "Events: off" in saved.text
    assert "Monthly news" not in saved.text
    assert _scopes(adieu, "jane@example.com") == {"news", "events"}, "news stays as it was"


def test_a_reason_after_leaving_only_the_links_topic_is_kept(adieu: Adieu, client: Client) -> None:
    adieu.ledger.add_topic("news", "Monthly news")
    link = adieu.link("jane@example.com", topic="news")
    page = client.request("POST", f"/u/{link.token}", data={"adieu-page": "1", "scope": "topic"})
    thanks = client.request(
        "POST",
        f"/u/{link.token}/reason",
        data={"csrf": _csrf(page.text), "choice": "not_relevant", "text": "Not my area"},
    )
    assert thanks.status_code == 200 and "Thank you" in thanks.text
    last = adieu.ledger.history("jane@example.com")[-1]
    assert (last.type, last.scope, last.reason, last.details) == (
        EventType.REASON,
        "news",
        "Not my area",
        {"choice": "not_relevant"},
    )
    # Leaving everything through the same link: the next reason is about all mail.
    everything = client.request("POST", f"/u/{link.token}", data={"adieu-page": "1"})
    client.request(
        "POST", f"/u/{link.token}/reason", data={"csrf": _csrf(everything.text), "choice": "other"}
    )
    assert adieu.ledger.history("jane@example.com")[-1].scope == "all"


# -- the landing page knows you left ---------------------------------------------------


def _buttons(html: str) -> list[str]:
    return [b.strip() for b in re.findall(r"<button[^>]*>([^<]+)</button>", html)]


def test_the_landing_page_says_you_left_and_since_when_and_offers_the_way_back(
    adieu: Adieu, client: Client
) -> None:
    link = adieu.link("jane@example.com")
    client.request("POST", f"/u/{link.token}", data={"adieu-page": "1"})
    (left,) = adieu.ledger.history("jane@example.com")
    before = events(adieu)
    for method in ("GET", "HEAD", "GET"):
        page = client.request(method, f"/u/{link.token}")
        assert page.status_code == 200
    assert events(adieu) == before, "opening the link again writes nothing"
    assert "You are unsubscribed" in page.text
    assert f"You unsubscribed on {local_moment(left.at, 'en', UTC)}." in page.text
    assert "j•••@example.com" in page.text
    assert _buttons(page.text) == ["Subscribe again"], "no button to leave again"
    assert f'href="/p/{link.token}"' in page.text  # Change my preferences
    back = client.request(
        "POST",
        f"/u/{link.token}/resubscribe",
        data={"csrf": _csrf(page.text), "scope": "all"},
        headers={"origin": "https://mail.example.net"},
    )
    assert back.status_code == 200 and "You are subscribed again" in back.text
    assert adieu.policy.is_sendable("jane@example.com")
    again = client.request("GET", f"/u/{link.token}")
    assert "Unsubscribe from all marketing email" in _buttons(again.text)


def test_the_landing_page_after_a_complaint_or_an_erasure_offers_no_way_back(
    adieu: Adieu, client: Client
) -> None:
    complained = adieu.link("jane@example.com")
    adieu.ledger.record_complaint("jane@example.com")
    page = client.request("GET", f"/u/{complained.token}").text
    assert "You have been unsubscribed since" in page and "You unsubscribed on" not in page
    assert _buttons(page) == [] and "Subscribe again" not in page
    assert f'href="/p/{complained.token}"' in page
    erased = adieu.link("john@example.com")
    adieu.ledger.unsubscribe("john@example.com", channel=Channel.ONE_CLICK)
    adieu.ledger.erase("john@example.com", channel=Channel.CLI)
    page = client.request("GET", f"/u/{erased.token}").text
    assert "You are unsubscribed" in page
    assert "Subscribe again" not in page and "/p/" not in page and _buttons(page) == []
    assert "erase" not in page.lower()
    # A hard bounce alone is no "no" from the person: the choices as ever.
    bounced = adieu.link("jim@example.com")
    adieu.ledger.record_bounce("jim@example.com", hard=True)
    page = client.request("GET", f"/u/{bounced.token}").text
    assert "Unsubscribe from all marketing email" in _buttons(page)


def test_a_topic_link_says_which_no_holds(adieu: Adieu, client: Client) -> None:
    adieu.ledger.add_topic("news", "Monthly news")
    link = adieu.link("jane@example.com", topic="news")
    client.request("POST", f"/u/{link.token}", data={"adieu-page": "1", "scope": "topic"})
    page = client.request("GET", f"/u/{link.token}").text
    assert "You will not receive emails about Monthly news from" in page
    assert _buttons(page) == ["Unsubscribe from all marketing email", "Subscribe again"]
    assert 'name="scope" value="topic"' in page.split("resubscribe")[1]
    client.request("POST", f"/u/{link.token}", data={"adieu-page": "1", "scope": "all"})
    page = client.request("GET", f"/u/{link.token}").text
    assert "You will not receive marketing email from" in page
    assert _buttons(page) == ["Subscribe again"]


def test_the_thank_you_page_keeps_the_way_back(adieu: Adieu, client: Client) -> None:
    link = adieu.link("jane@example.com")
    csrf = _csrf(client.request("POST", f"/u/{link.token}", data={"adieu-page": "1"}).text)
    thanks = client.request(
        "POST", f"/u/{link.token}/reason", data={"csrf": csrf, "choice": "too_many"}
    )
    assert "Thank you" in thanks.text and _buttons(thanks.text) == ["Subscribe again"]
    back = client.request("POST", f"/u/{link.token}/resubscribe", data={"csrf": _csrf(thanks.text)})
    assert "You are subscribed again" in back.text
    assert adieu.policy.is_sendable("jane@example.com")
    adieu.ledger.record_complaint("jane@example.com")
    thanks = client.request("POST", f"/u/{link.token}/reason", data={"csrf": csrf, "text": "x"})
    assert "Thank you" in thanks.text and "Subscribe again" not in thanks.text


def test_the_preference_center_never_offers_to_leave_someone_already_out(
    adieu: Adieu, client: Client
) -> None:
    link = adieu.link("jane@example.com")
    page = client.request("GET", f"/p/{link.token}").text
    assert "Unsubscribe from all marketing email" in _buttons(page)
    client.request("POST", f"/u/{link.token}", data={"adieu-page": "1"})
    page = client.request("GET", f"/p/{link.token}").text
    assert "You have been unsubscribed from all marketing email since" in page
    assert "Unsubscribe from all marketing email" not in _buttons(page)
    assert "Subscribe again" in _buttons(page)
    adieu.ledger.record_complaint("jane@example.com")
    page = client.request("GET", f"/p/{link.token}").text
    assert "You have been unsubscribed from all marketing email since" in page
    assert _buttons(page) == ["Save my preferences"]
    adieu.ledger.erase("jane@example.com", channel=Channel.CLI)
    page = client.request("GET", f"/p/{link.token}").text
    assert "can no longer change your preferences" in page
    assert _buttons(page) == ["Save my preferences"], "nothing that would not work"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/u/"), ("GET", "/u"), ("GET", "/p/"), ("GET", "{token}/reason"), ("PUT", "{token}")],
)
def test_a_cut_or_odd_link_gets_the_kind_invalid_link_page_in_the_readers_language(
    adieu: Adieu, client: Client, method: str, path: str
) -> None:
    token = adieu.link("jane@example.com").token
    url = path.replace("{token}", f"/u/{token}")
    page = client.request(method, url, headers={"accept-language": "de-CH, en;q=0.5"})
    assert page.status_code in (404, 405)
    assert page.headers["content-type"].startswith("text/html")
    assert 'lang="de"' in page.text and "Dieser Link ist nicht gültig" in page.text
    assert events(adieu) == 0
    elsewhere = client.request("GET", "/nothing-here")
    assert elsewhere.status_code == 404 and "Page not found" in elsewhere.text


# -- landing-page visits, counted by kind ----------------------------------------------


def _visits(client: Client) -> dict[tuple[str, str], float]:
    text = client.request("GET", "/metrics").text
    found = re.findall(
        r'adieu_landing_page_visits_total\{sign="([a-z_]+)",visitor="([a-z_]+)"\} ([0-9.e+]+)',
        text,
    )
    return {(visitor, sign): float(n) for sign, visitor, n in found}


BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@pytest.mark.parametrize(
    ("method", "headers", "kind"),
    [
        ("GET", {"user-agent": BROWSER}, ("browser", "none")),
        ("HEAD", {"user-agent": BROWSER}, ("likely_scanner", "head")),
        ("GET", {"user-agent": BROWSER, "sec-purpose": "prefetch"}, ("likely_scanner", "prefetch")),
        ("GET", {"user-agent": BROWSER, "purpose": "prefetch"}, ("likely_scanner", "prefetch")),
        ("GET", {"user-agent": BROWSER, "x-moz": "prefetch"}, ("likely_scanner", "prefetch")),
        ("GET", {"user-agent": "Barracuda Sentinel (EE)"}, ("likely_scanner", "agent")),
        ("GET", {"user-agent": ""}, ("likely_scanner", "agent")),
    ],
)
def test_landing_page_visits_are_counted_by_kind_and_write_nothing(
    adieu: Adieu, client: Client, method: str, headers: dict[str, str], kind: tuple[str, str]
) -> None:
    link = adieu.link("jane@example.com")
    before = _visits(client)
    assert client.request(method, f"/u/{link.token}", headers=headers).status_code == 200
    after = _visits(client)
    grown = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    assert grown == {kind: 1}
    assert events(adieu) == 0
    assert "jane" not in client.request("GET", "/metrics").text


def test_a_visit_just_after_a_send_counts_as_a_likely_scanner(adieu: Adieu, client: Client) -> None:
    link = adieu.link("jane@example.com")
    adieu.ledger.record_send("jane@example.com", campaign="spring")
    before = _visits(client)
    client.request("GET", f"/u/{link.token}", headers={"user-agent": BROWSER})
    after = _visits(client)
    soon = ("likely_scanner", "soon_after_send")
    assert after[soon] - before.get(soon, 0) == 1
    assert adieu.ledger.history("jane@example.com") == ()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    agent=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=200),
    purpose=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
    header=st.sampled_from(["purpose", "sec-purpose", "x-purpose", "x-moz", "x-other"]),
    method=st.sampled_from(["GET", "HEAD"]),
)
def test_any_visit_headers_are_counted_once_and_change_nothing(
    adieu: Adieu, client: Client, agent: str, purpose: str, header: str, method: str
) -> None:
    link = adieu.link("jane@example.com")
    before = sum(_visits(client).values())
    page = client.request(
        method, f"/u/{link.token}", headers={"user-agent": agent, header: purpose}
    )
    assert page.status_code == 200
    assert sum(_visits(client).values()) == before + 1
    assert events(adieu) == 0


def test_the_landing_page_opens_while_the_ledger_cannot_be_read(
    adieu: Adieu, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading whether the person already left is a courtesy: when storage
    fails, the page with the choices still opens (a choice then waits)."""
    import sqlite3

    link = adieu.link("jane@example.com")

    def unreadable(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(adieu.ledger, "send_state", unreadable)
    page = client.request("GET", f"/u/{link.token}")
    assert page.status_code == 200
    assert "Unsubscribe from all marketing email" in _buttons(page.text)
