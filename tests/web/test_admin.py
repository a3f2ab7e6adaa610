"""``/admin`` in-process: sign-in, the session cookie, CSRF, the lookup and replay."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adieu.ledger import Channel, Frequency
from adieu.ledger.vocabulary import Scope
from adieu.service import Adieu
from support import Client


class Forms(HTMLParser):
    """The hidden CSRF value and the SVG charts of a page."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.csrf: list[str] = []
        self.svgs = 0
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "input" and values.get("name") == "csrf":
            self.csrf.append(values.get("value") or "")
        if tag == "svg" and values.get("class") == "chart":
            self.svgs += 1


@pytest.fixture
def client(adieu: Adieu) -> Iterator[Client]:
    c = Client(adieu)
    yield c
    c.close()


def sign_in(client: Client, key: str) -> str:
    r = client.request("POST", "/admin/login", data={"key": key})
    assert r.status_code == 303 and r.headers["location"] == "/admin"
    return r.headers["set-cookie"]


def test_the_dashboard_needs_a_signed_in_key(adieu: Adieu, client: Client) -> None:
    r = client.request("GET", "/admin")
    assert r.status_code == 303 and r.headers["location"] == "/admin/login"
    r = client.request("POST", "/admin/login", data={"key": "adieu_wrong"})
    assert r.status_code == 401 and "not valid" in r.text and "set-cookie" not in r.headers
    _, key = adieu.api_keys.create("ops")
    cookie = sign_in(client, key)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Path=/admin" in cookie
    assert "Secure" in cookie, "https://mail.example.net is the base URL: the cookie is Secure"
    assert key not in cookie
    page = client.request("GET", "/admin")
    assert page.status_code == 200 and "ops" in page.text
    # A forged or revoked session is a signed-out one.
    (api_key,) = adieu.api_keys.list()
    adieu.api_keys.revoke(str(api_key.id))
    assert client.request("GET", "/admin").status_code == 303
    client.client.cookies.set("adieu_admin", "1.9999999999.forged", path="/admin")
    assert client.request("GET", "/admin").status_code == 303


def test_the_dashboard_shows_charts_tables_and_no_address_in_the_clear(
    adieu: Adieu, client: Client
) -> None:
    ledger = adieu.ledger
    ledger.record_sends([f"r{i}@example.com" for i in range(100)], campaign="c")
    ledger.unsubscribe("r1@example.com", channel=Channel.ONE_CLICK)
    ledger.unsubscribe("r2@example.com", channel=Channel.MAILTO)
    ledger.add_reason("r1@example.com", "too_many", choice="too_many", channel=Channel.LANDING_PAGE)
    ledger.record_complaint("r3@example.com")
    ledger.keep_for_review(b"Subject: ???\r\n\r\nhello", "no report found")
    _, key = adieu.api_keys.create("ops")
    sign_in(client, key)
    html = client.request("GET", "/admin").text
    parsed = Forms(html)
    assert parsed.svgs == 5
    assert "Unsubscribes per day, by channel" in html and "One-click button" in html
    assert "breach" in html, "1 complaint per 100 sends is over the 0.3 % limit"
    assert "no report found" in html
    assert ("r1@example.com" not in html and "r***@example.com" in html) or "@" in html
    assert not re.search(r"r[0-9]@example\.com", html), "addresses are masked in lists"


def test_contact_lookup_is_a_post_with_csrf(adieu: Adieu, client: Client) -> None:
    adieu.ledger.unsubscribe(
        "ada@example.com", channel=Channel.ONE_CLICK, campaign="nov", details={"shown": "x"}
    )
    _, key = adieu.api_keys.create("ops")
    sign_in(client, key)
    csrf = Forms(client.request("GET", "/admin").text).csrf[0]
    r = client.request("POST", "/admin/contact", data={"address": "ada@example.com"})
    assert r.status_code == 403, "no CSRF token: refused"
    r = client.request("POST", "/admin/contact", data={"address": "ADA@example.com", "csrf": csrf})
    assert r.status_code == 200
    assert "One-click button" in r.text and "nov" in r.text and "shown: x" in r.text
    r = client.request("POST", "/admin/contact", data={"address": "nope", "csrf": csrf})
    assert r.status_code == 400 and "not a valid email address" in r.text
    r = client.request(
        "POST",
        "/admin/contact",
        data={"address": "ada@example.com", "csrf": csrf},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert r.status_code == 403


@pytest.mark.parametrize("scope", [Scope.READ, Scope.SEND])
def test_dead_letters_are_replayed_from_the_dashboard_but_only_by_admin_keys(
    adieu: Adieu, client: Client, scope: Scope
) -> None:
    hook = adieu.outbox.create_webhook("https://crm.example/in")
    adieu.ledger.unsubscribe("a@example.com", channel=Channel.ONE_CLICK)
    (d,) = adieu.outbox.claim()
    adieu.outbox.failed([(d.id, "HTTP 500", None)])
    _, reader = adieu.api_keys.create("viewer", scope=scope)
    sign_in(client, reader)
    html = client.request("GET", "/admin").text
    assert "HTTP 500" in html and "Send the dead letters again" not in html
    assert f"(scope {scope})" in html
    csrf = Forms(html).csrf[0]
    r = client.request("POST", f"/admin/webhooks/{hook.id}/replay", data={"csrf": csrf})
    assert r.status_code == 403 and adieu.outbox.backlog().dead == 1
    assert f"a key of scope {scope}" in r.text and "a key of scope admin" in r.text
    _, writer = adieu.api_keys.create("ops")
    sign_in(client, writer)
    html = client.request("GET", "/admin").text
    assert "Send the dead letters again" in html and "(scope admin)" in html
    csrf = Forms(html).csrf[0]
    r = client.request("POST", f"/admin/webhooks/{hook.id}/replay", data={"csrf": csrf})
    assert r.status_code == 303
    assert adieu.outbox.backlog().dead == 0 and adieu.outbox.backlog().pending == 1


def test_signing_out_ends_the_session(adieu: Adieu, client: Client) -> None:
    _, key = adieu.api_keys.create("ops")
    sign_in(client, key)
    csrf = Forms(client.request("GET", "/admin").text).csrf[0]
    r = client.request("POST", "/admin/logout", data={"csrf": csrf})
    assert r.status_code == 303
    assert client.request("GET", "/admin").status_code == 303


@given(
    body=st.binary(max_size=300) | st.just(b"a=1&" * 60),
    path=st.sampled_from(["/admin/login", "/admin/contact"]),
)
@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_form_body_gets_a_page_never_a_crash(
    adieu: Adieu, client: Client, body: bytes, path: str
) -> None:
    r = client.request(
        "POST", path, content=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code in (303, 400, 401, 403, 413, 429), r.status_code
    assert "Traceback" not in r.text


def test_the_dashboard_speaks_plainly(adieu: Adieu, client: Client) -> None:
    ledger = adieu.ledger
    ledger.record_sends([f"r{i}@example.com" for i in range(200)], campaign="c")
    ledger.unsubscribe("r1@example.com", channel=Channel.ONE_CLICK)
    ledger.unsubscribe("r2@example.com", channel=Channel.LANDING_PAGE)
    for who in ("r1", "r2"):
        ledger.add_reason(
            f"{who}@example.com", "too_many", choice="too_many", channel=Channel.LANDING_PAGE
        )
    ledger.unsubscribe("r3@example.com", channel=Channel.LANDING_PAGE)
    ledger.add_reason(
        "r3@example.com", "Weekly is plenty", choice="not_relevant", channel=Channel.LANDING_PAGE
    )
    ledger.record_complaint("r4@example.com")
    _, key = adieu.api_keys.create("ops")
    sign_in(client, key)
    html = client.request("GET", "/admin").text
    figures = re.sub(r"<[^>]+>", "", html.split('<ul class="figures">')[1].split("</ul>")[0])
    assert re.search(r"\b1 complaint\b", figures) and "1 complaints" not in figures
    assert re.search(r"\b200 sends\b", figures)
    for raw in ("one_click", "landing_page", "not_relevant", "too_many"):
        assert not re.search(rf"\b{raw}\b", html), f"{raw} is shown by its label"
    for label in ("One-click button", "Landing page", "Too many emails", "Not relevant"):
        assert label in html
    # Reasons by what was chosen (the free text apart, and not as a reason).
    reasons = html.split('aria-label="Reasons chosen"')[1].split("</svg>")[0]
    assert "Too many emails: 2" in reasons and "Not relevant: 1" in reasons
    assert "Weekly is plenty" not in reasons
    assert "What people wrote" in html and "“weekly is plenty”" in html
    # Legends say what each colour covers, with the ranges.
    assert "Goal: below 0.1 %" in html and "Watch: 0.1–0.3 %" in html
    assert "Over the limit: 0.3 % and above" in html
    # The drawings do not scale their text (no viewBox; the size is the style sheet's).
    for svg in re.findall(r'<svg class="chart"[^>]*>', html):
        assert "viewBox" not in svg
    assert "font-size" not in html.split('<section class="charts">')[1].split("</section>")[0]
    header = html.split("<main>")[0]
    assert header.count(adieu.settings.sender_name) == 2, "once in the title, once in the header"
    # Tables scroll inside a labelled region that keyboard users can reach.
    assert html.count('<div class="scroll" role="region"') >= 4


def test_the_dashboard_counts_landing_page_visits_by_kind(adieu: Adieu, client: Client) -> None:
    _, key = adieu.api_keys.create("ops")
    sign_in(client, key)

    def shown() -> dict[str, int]:
        html = client.request("GET", "/admin").text
        visits = html.split('aria-label="Landing-page visits"')[1].split("</svg>")[0]
        return {k: int(v) for k, v in re.findall(r"<title>([^<]+): (\d+)</title>", visits)}

    before = shown()
    link = adieu.link("jane@example.com")
    client.request("GET", f"/u/{link.token}", headers={"user-agent": "Mozilla/5.0 Firefox/128.0"})
    client.request("HEAD", f"/u/{link.token}")
    after = shown()
    assert after["Browsers"] == before["Browsers"] + 1
    assert after["Scanners: HEAD requests"] == before["Scanners: HEAD requests"] + 1
    assert adieu.ledger.history("jane@example.com") == ()


def test_the_contact_page_shows_no_python_values(adieu: Adieu, client: Client) -> None:
    ledger = adieu.ledger
    ledger.add_topic("news", "News")
    ledger.set_preferences(
        "ada@example.com",
        channel=Channel.PREFERENCES,
        topics={"news": False},
        frequency=Frequency.WEEKLY,
        details={"campaign": None, "shown": "preference_center"},
    )
    _, key = adieu.api_keys.create("ops")
    sign_in(client, key)
    csrf = Forms(client.request("GET", "/admin").text).csrf[0]
    page = client.request(
        "POST", "/admin/contact", data={"address": "ada@example.com", "csrf": csrf}
    )
    history = page.text.split('id="history"')[1].split("</table>")[0]
    assert "None" not in history and "[[" not in history and "True" not in history
    assert "frequency: every → weekly" in history and "topic news: on → off" in history
    assert 'class="when"' in history, "dates do not wrap mid-value"


def test_the_header_names_the_sender_once(tmp_path: Path) -> None:
    from adieu.settings import Settings

    for sender in ("Adieu demo", "Example News"):
        app = Adieu(Settings(data_dir=tmp_path / sender, sender_name=sender))
        client = Client(app)
        try:
            _, key = app.api_keys.create("ops")
            sign_in(client, key)
            html = client.request("GET", "/admin").text
        finally:
            client.close()
            app.close()
        head = html.split("<main>")[0]
        header = re.sub(r"<[^>]+>", " ", head.split('<header class="top">')[1])
        title = head.split("<title>")[1].split("</title>")[0]
        for text in (header, title):
            assert text.count(sender) == 1 and text.count("Adieu") == 1, text
