"""The public pages, in-process over httpx's ASGI transport."""

from __future__ import annotations

import asyncio
import string
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from adieu.ledger import Channel, EventType
from adieu.ledger import schema as t
from adieu.service import Adieu
from adieu.web.app import create_app


class Client:
    """A synchronous facade over httpx.AsyncClient + ASGITransport."""

    def __init__(self, adieu: Adieu) -> None:
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(adieu)),
            base_url="https://mail.example.net",
        )

    def request(self, method: str, url: str, **kwargs: object) -> httpx.Response:
        return self.loop.run_until_complete(self.client.request(method, url, **kwargs))  # type: ignore[arg-type]

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


@pytest.fixture
def client(adieu: Adieu) -> Iterator[Client]:
    c = Client(adieu)
    yield c
    c.close()


def events(adieu: Adieu) -> int:
    with adieu.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t.events)).scalar_one())


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
    assert event.at.strftime("%Y-%m-%dT%H:%M") in second.text


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
