"""``/admin`` in-process: sign-in, the session cookie, CSRF, the lookup and replay."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adieu.ledger import Channel
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
        if tag == "svg":
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
    assert parsed.svgs == 4
    assert "Unsubscribes per day, by channel" in html and "one_click" in html
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
    assert "one_click" in r.text and "nov" in r.text and "shown: x" in r.text
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
