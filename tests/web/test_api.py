"""``/api/v1``: every route, every kind of caller, every error in one shape."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adieu.ledger import Channel, Frequency
from adieu.ledger.vocabulary import Scope
from adieu.service import Adieu
from support import Client


@pytest.fixture
def keys(adieu: Adieu) -> dict[str, str]:
    _, writer = adieu.api_keys.create("writer")
    _, reader = adieu.api_keys.create("reader", scope=Scope.READ)
    _, sender = adieu.api_keys.create("sender", scope=Scope.SEND)
    return {"writer": writer, "reader": reader, "sender": sender}


@pytest.fixture
def api(adieu: Adieu, keys: dict[str, str]) -> Iterator[Client]:
    c = Client(adieu, headers={"Authorization": f"Bearer {keys['writer']}"})
    yield c
    c.close()


@pytest.fixture
def anonymous(adieu: Adieu) -> Iterator[Client]:
    c = Client(adieu)
    yield c
    c.close()


def assert_error(response: object, status: int, code: str | None = None) -> dict[str, object]:
    """The one error shape: {"error": {"status", "code", "message"[, "details"]}}."""
    r = response
    assert r.status_code == status, r.text  # type: ignore[attr-defined]
    assert r.headers["content-type"].startswith("application/json")  # type: ignore[attr-defined]
    body = r.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) <= {"status", "code", "message", "details"}
    assert error["status"] == status and error["message"] and isinstance(error["code"], str)
    if code is not None:
        assert error["code"] == code
    return error  # type: ignore[no-any-return]


def key_of(api: Client, address: str) -> str:
    r = api.request("POST", "/api/v1/contacts/lookup", json={"address": address})
    assert r.status_code == 200
    return str(r.json()["contact"])


# -- who may call -------------------------------------------------------------------


def test_no_key_wrong_key_and_revoked_key_get_401(
    adieu: Adieu, anonymous: Client, keys: dict[str, str]
) -> None:
    r = anonymous.request("GET", "/api/v1/topics")
    assert_error(r, 401, "unauthorized")
    assert r.headers["www-authenticate"].startswith("Bearer")
    wrong = {"Authorization": "Bearer adieu_nope"}
    assert_error(anonymous.request("GET", "/api/v1/topics", headers=wrong), 401)
    basic = {"Authorization": "Basic dXNlcjpwdw=="}
    assert_error(anonymous.request("GET", "/api/v1/topics", headers=basic), 401)
    good = {"Authorization": f"Bearer {keys['reader']}"}
    assert anonymous.request("GET", "/api/v1/topics", headers=good).status_code == 200
    (reader,) = [k for k in adieu.api_keys.list() if k.name == "reader"]
    adieu.api_keys.revoke(str(reader.id))
    fresh = Client(adieu)  # a new process: no key cached
    try:
        assert_error(fresh.request("GET", "/api/v1/topics", headers=good), 401)
    finally:
        fresh.close()


def test_read_keys_read_but_cannot_send_or_write(adieu: Adieu, keys: dict[str, str]) -> None:
    reader = Client(adieu, headers={"Authorization": f"Bearer {keys['reader']}"})
    try:
        assert reader.request("GET", "/api/v1/topics").status_code == 200
        for method, path, body in [
            ("POST", "/api/v1/check", {"addresses": ["a@example.com"]}),
            ("POST", "/api/v1/links", {"recipients": [{"address": "a@example.com"}]}),
            ("POST", "/api/v1/topics", {"key": "news", "name": "News"}),
            ("POST", "/api/v1/sends", {"addresses": ["a@example.com"]}),
            ("POST", f"/api/v1/contacts/{'0' * 64}/unsubscribe", {}),
            ("DELETE", f"/api/v1/contacts/{'0' * 64}", None),
            ("POST", "/api/v1/webhooks", {"url": "https://crm.example/x"}),
        ]:
            r = reader.request(method, path, json=body)
            error = assert_error(r, 403, "insufficient_scope")
            needed = "send" if path.endswith(("/check", "/links", "/sends")) else "admin"
            assert needed in str(error["message"]) and "read" in str(error["message"])
            assert f'scope="{needed}"' in r.headers["www-authenticate"]
        assert adieu.ledger.topics() == []
        assert adieu.stats.events(0, 10, None) == [], "nothing was recorded"
    finally:
        reader.close()


def test_send_keys_send_but_cannot_change_consent(adieu: Adieu, keys: dict[str, str]) -> None:
    sender = Client(adieu, headers={"Authorization": f"Bearer {keys['sender']}"})
    try:
        r = sender.request("POST", "/api/v1/check", json={"addresses": ["a@example.com"]})
        assert r.status_code == 200
        r = sender.request("POST", "/api/v1/sends", json={"addresses": ["a@example.com"]})
        assert r.status_code == 200 and r.json()["recorded"] == 1
        for method, path, body in [
            ("POST", "/api/v1/topics", {"key": "news", "name": "News"}),
            ("POST", f"/api/v1/contacts/{'0' * 64}/unsubscribe", {}),
            ("POST", f"/api/v1/contacts/{'0' * 64}/resubscribe", {}),
            ("DELETE", f"/api/v1/contacts/{'0' * 64}", None),
            ("POST", "/api/v1/webhooks", {"url": "https://crm.example/x"}),
        ]:
            error = assert_error(sender.request(method, path, json=body), 403, "insufficient_scope")
            assert "admin" in str(error["message"])
        assert adieu.ledger.topics() == []
    finally:
        sender.close()


def test_failed_attempts_are_rate_limited_per_client(
    adieu: Adieu, anonymous: Client, keys: dict[str, str]
) -> None:
    wrong = {"Authorization": "Bearer adieu_guess"}
    for _ in range(10):
        assert_error(anonymous.request("GET", "/api/v1/topics", headers=wrong), 401)
    anonymous.app.state.auth.limiter.slow_down = 0.2
    started = time.monotonic()
    r = anonymous.request("GET", "/api/v1/topics", headers=wrong)
    assert time.monotonic() - started >= 0.2, "past the limit, a wrong key is answered slowly"
    assert_error(r, 429, "too_many_failures")
    assert int(r.headers["retry-after"]) > 0
    # A right key from the same address still gets in, at once: behind a NAT,
    # someone else's wrong guesses must not lock everyone out.
    right = {"Authorization": f"Bearer {keys['writer']}"}
    started = time.monotonic()
    assert anonymous.request("GET", "/api/v1/topics", headers=right).status_code == 200
    assert time.monotonic() - started < 0.2
    assert_error(anonymous.request("GET", "/api/v1/topics", headers=wrong), 429)


def test_every_api_error_has_the_one_shape(api: Client) -> None:
    cases: list[tuple[str, str, object, int]] = [
        ("GET", "/api/v1/no-such-route", None, 404),
        ("PUT", "/api/v1/topics", None, 405),
        ("POST", "/api/v1/check", {"addresses": []}, 422),
        ("POST", "/api/v1/check", {"addresses": "a@example.com"}, 422),
        ("POST", "/api/v1/check", {"addresses": ["a@example.com"], "extra": 1}, 422),
        ("POST", "/api/v1/check", {"addresses": ["a@example.com"], "topic": "nope"}, 404),
        ("GET", "/api/v1/contacts/not-a-key", None, 404),
        ("GET", "/api/v1/contacts/lookup", None, 405),
        ("GET", f"/api/v1/contacts/{'ab' * 32}", None, 404),
        ("GET", "/api/v1/topics/nope", None, 404),
        ("GET", "/api/v1/events?after=x", None, 422),
        ("GET", "/api/v1/stats?since=yesterday", None, 422),
        ("GET", "/api/v1/stats?since=2026-13-40", None, 400),
        ("GET", "/api/v1/webhooks/99", None, 404),
        ("POST", "/api/v1/webhooks", {"url": "ftp://x"}, 422),
        ("POST", "/api/v1/webhooks", {"url": "http://["}, 400),
    ]
    for method, path, body, status in cases:
        r = api.request(method, path, json=body)
        assert_error(r, status)
        if status == 405:
            assert r.headers["allow"] == ("POST" if "lookup" in path else "GET, POST")
    r = api.request(
        "POST", "/api/v1/check", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_error(r, 422, "invalid_request")


# -- for senders ----------------------------------------------------------------------


def test_links_for_a_batch_with_overrides_and_errors_in_place(adieu: Adieu, api: Client) -> None:
    adieu.ledger.add_topic("news", "News")
    body = {
        "campaign": "nov",
        "recipients": [
            {"address": "Ada@Example.com"},
            {"address": "not an address"},
            {"address": "bo@example.org", "topic": "news", "locale": "sv", "campaign": "x"},
        ],
    }
    r = api.request("POST", "/api/v1/links", json=body)
    assert r.status_code == 200
    out = r.json()
    assert [e["index"] for e in out["errors"]] == [1]
    first, third = out["links"]
    assert first["index"] == 0 and first["address"] == "ada@example.com"
    assert "@" not in first["url"] and first["url"].startswith("https://mail.example.net/u/")
    assert first["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert first["headers"]["List-Unsubscribe"] == f"<{first['url']}>"
    payload = adieu.codec.open(third["token"])
    assert (payload.address, payload.scope, payload.campaign, payload.locale) == (
        "bo@example.org",
        "news",
        "x",
        "sv",
    )
    assert adieu.codec.open(first["token"]).campaign == "nov"
    too_many = {"recipients": [{"address": f"a{i}@example.com"} for i in range(10_001)]}
    assert_error(api.request("POST", "/api/v1/links", json=too_many), 422)


def test_check_gives_each_address_its_answer_in_order(adieu: Adieu, api: Client) -> None:
    ledger = adieu.ledger
    ledger.add_topic("news", "News")
    ledger.add_topic("vip", "VIP", default_opt_in=False)
    ledger.unsubscribe("left@example.com", channel=Channel.ONE_CLICK)
    ledger.record_bounce("dead@example.com", hard=True)
    ledger.unsubscribe("news-only@example.com", "news", channel=Channel.PREFERENCES)
    addresses = [
        "new@example.com",
        "LEFT@example.com",
        "dead@example.com",
        "news-only@example.com",
        "junk",
    ]
    r = api.request("POST", "/api/v1/check", json={"addresses": addresses, "topic": "news"})
    out = r.json()
    assert [x["reason"] for x in out["results"]] == [
        "ok",
        "unsubscribed",
        "hard_bounce",
        "topic_opt_out",
        "invalid_address",
    ]
    assert [x["address"] for x in out["results"]] == addresses
    assert (out["allowed"], out["refused"]) == (1, 4)
    assert out["results"][1]["since"]
    r = api.request(
        "POST",
        "/api/v1/check",
        json={"addresses": ["left@example.com", "dead@example.com"], "category": "transactional"},
    )
    assert [x["allowed"] for x in r.json()["results"]] == [True, False]
    r = api.request(
        "POST", "/api/v1/check", json={"addresses": ["new@example.com"], "topic": "vip"}
    )
    assert r.json()["results"][0]["reason"] == "not_subscribed"


def test_recorded_sends_drive_the_frequency_cap(adieu: Adieu, api: Client) -> None:
    adieu.ledger.set_preferences(
        "weekly@example.com", channel=Channel.PREFERENCES, frequency=Frequency.WEEKLY
    )
    r = api.request(
        "POST",
        "/api/v1/sends",
        json={"addresses": ["weekly@example.com", "other@example.com", "bad"], "campaign": "c1"},
    )
    assert r.json() == {
        "recorded": 2,
        "invalid": [{"index": 2, "message": r.json()["invalid"][0]["message"]}],
    }
    r = api.request(
        "POST", "/api/v1/check", json={"addresses": ["weekly@example.com", "other@example.com"]}
    )
    results = r.json()["results"]
    assert results[0]["reason"] == "frequency_cap" and results[0]["until"]
    assert results[1]["allowed"]


# -- contacts -----------------------------------------------------------------------------


def test_a_contact_is_named_by_its_key_and_its_history_is_the_proof(
    adieu: Adieu, api: Client
) -> None:
    adieu.ledger.unsubscribe(
        "ada@example.com",
        channel=Channel.ONE_CLICK,
        campaign="nov",
        details={"shown": "landing_page"},
    )
    key = key_of(api, "ADA@example.com")
    assert len(key) == 64 and "@" not in key
    doc = api.request("GET", f"/api/v1/contacts/{key}").json()
    assert doc["address"] == "ada@example.com" and doc["known"]
    assert doc["marketing"]["all"] == {"allowed": False, "reason": "unsubscribed"}
    (event,) = doc["history"]
    assert (event["type"], event["channel"], event["campaign"]) == (
        "unsubscribe",
        "one_click",
        "nov",
    )
    assert event["details"] == {"shown": "landing_page"} and event["recorded_at"]
    r = api.request("POST", f"/api/v1/contacts/{key}/resubscribe", json={})
    assert r.json()["changed"] is True
    r = api.request(
        "POST", f"/api/v1/contacts/{key}/unsubscribe", json={"reason": "asked by phone"}
    )
    assert r.json()["changed"] is True
    again = api.request("POST", f"/api/v1/contacts/{key}/unsubscribe")
    assert again.json()["changed"] is False and again.json()["since"]
    doc = api.request("GET", f"/api/v1/contacts/{key}").json()
    assert [(e["type"], e["channel"]) for e in doc["history"]] == [
        ("unsubscribe", "one_click"),
        ("resubscribe", "api"),
        ("unsubscribe", "api"),
    ]


def test_an_admin_key_lifts_a_complaint_only_by_naming_it_with_a_note(
    adieu: Adieu, api: Client
) -> None:
    adieu.ledger.record_complaint("cam@example.com")
    key = key_of(api, "cam@example.com")
    kept = api.request("POST", f"/api/v1/contacts/{key}/resubscribe", json={})
    assert kept.status_code == 200
    assert kept.json()["changed"] is False and kept.json()["held"] == "complaint"
    assert_error(
        api.request("POST", f"/api/v1/contacts/{key}/resubscribe", json={"lift": ["complaint"]}),
        400,
    )
    assert_error(
        api.request("POST", f"/api/v1/contacts/{key}/resubscribe", json={"lift": ["erasure"]}),
        422,
    )
    lifted = api.request(
        "POST",
        f"/api/v1/contacts/{key}/resubscribe",
        json={"lift": ["complaint"], "note": "signed up again at the shop, 3 Dec"},
    )
    assert lifted.status_code == 200 and lifted.json()["changed"] is True
    assert lifted.json()["held"] is None
    assert adieu.policy.is_sendable("cam@example.com")
    last = api.request("GET", f"/api/v1/contacts/{key}").json()["history"][-1]
    (writer,) = [k for k in adieu.api_keys.list() if k.name == "writer"]
    assert last["type"] == "resubscribe" and last["channel"] == "api"
    assert last["details"] == {
        "by": f"key:{writer.id}",
        "lifted": ["complaint"],
        "note": "signed up again at the shop, 3 Dec",
    }


def test_erasure_keeps_the_suppression_and_forgets_the_address(adieu: Adieu, api: Client) -> None:
    adieu.ledger.unsubscribe("gone@example.com", channel=Channel.ONE_CLICK, reason="too many")
    key = key_of(api, "gone@example.com")
    r = api.request("DELETE", f"/api/v1/contacts/{key}")
    assert r.status_code == 200 and r.json()["changed"] is True
    doc = api.request("GET", f"/api/v1/contacts/{key}").json()
    assert doc["address"] is None and doc["erased_at"]
    assert all(e["reason"] is None and e["address"] is None for e in doc["history"])
    r = api.request("POST", "/api/v1/check", json={"addresses": ["gone@example.com"]})
    assert r.json()["results"][0]["allowed"] is False
    assert_error(api.request("POST", f"/api/v1/contacts/{key}/resubscribe"), 409, "erased")
    # An erasure request for an address never seen still suppresses it.
    unseen = key_of(api, "never@example.com")
    assert api.request("DELETE", f"/api/v1/contacts/{unseen}").json()["changed"] is True
    r = api.request("POST", "/api/v1/check", json={"addresses": ["never@example.com"]})
    assert r.json()["results"][0]["allowed"] is False


def test_unsubscribing_an_unseen_contact_by_key(adieu: Adieu, api: Client) -> None:
    key = key_of(api, "fresh@example.com")
    assert_error(api.request("GET", f"/api/v1/contacts/{key}"), 404, "unknown_contact")
    wrong = api.request(
        "POST", f"/api/v1/contacts/{key}/unsubscribe", json={"address": "other@example.com"}
    )
    assert_error(wrong, 400, "address_mismatch")
    r = api.request(
        "POST", f"/api/v1/contacts/{key}/unsubscribe", json={"address": "Fresh@example.com"}
    )
    assert r.json()["changed"] is True
    assert adieu.ledger.status("fresh@example.com").address == "fresh@example.com"
    blind = key_of(api, "blind@example.com")
    assert api.request("POST", f"/api/v1/contacts/{blind}/unsubscribe").json()["changed"]
    assert not adieu.policy.is_sendable("blind@example.com")


# -- topics, suppressions, events ---------------------------------------------------------


def test_topics_crud(adieu: Adieu, api: Client) -> None:
    r = api.request("POST", "/api/v1/topics", json={"key": "news", "name": "News"})
    assert r.status_code == 201 and r.json()["default_opt_in"] is True
    assert_error(api.request("POST", "/api/v1/topics", json={"key": "news", "name": "N"}), 409)
    assert_error(api.request("POST", "/api/v1/topics", json={"key": "All", "name": "N"}), 422)
    assert_error(api.request("POST", "/api/v1/topics", json={"key": "all", "name": "N"}), 400)
    r = api.request("PATCH", "/api/v1/topics/news", json={"name": "Weekly news"})
    assert r.json()["name"] == "Weekly news"
    assert [t["key"] for t in api.request("GET", "/api/v1/topics").json()] == ["news"]
    api.request("POST", "/api/v1/topics", json={"key": "tmp", "name": "Tmp"})
    assert api.request("DELETE", "/api/v1/topics/tmp").status_code == 204
    adieu.ledger.unsubscribe("a@example.com", "news", channel=Channel.PREFERENCES)
    assert api.request("DELETE", "/api/v1/topics/news").status_code == 204, "in use: retired too"
    assert api.request("GET", "/api/v1/topics/tmp").json()["retired"] is True
    assert_error(api.request("GET", "/api/v1/topics/nope"), 404, "unknown_topic")
    assert_error(api.request("DELETE", "/api/v1/topics/nope"), 404, "unknown_topic")


def test_a_deleted_topic_is_retired_and_its_links_still_unsubscribe(
    adieu: Adieu, api: Client, anonymous: Client
) -> None:
    api.request("POST", "/api/v1/topics", json={"key": "news", "name": "News"})
    r = api.request(
        "POST",
        "/api/v1/links",
        json={"recipients": [{"address": "a@example.com"}], "topic": "news"},
    )
    token = r.json()["links"][0]["token"]
    assert api.request("DELETE", "/api/v1/topics/news").status_code == 204
    # The link in mail already sent: its page and its one-click still work.
    page = anonymous.request("GET", f"/u/{token}")
    assert page.status_code == 200 and "Unsubscribe from all marketing email" in page.text
    clicked = anonymous.request(
        "POST",
        f"/u/{token}",
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert clicked.status_code == 200
    status = adieu.ledger.status("a@example.com").state
    assert [s.scope for s in status.suppressions] == ["news"]
    # Listed as retired; refused for new links and sends, with a clear reason.
    (listed,) = api.request("GET", "/api/v1/topics").json()
    assert (listed["key"], listed["retired"]) == ("news", True) and listed["retired_at"]
    r = api.request(
        "POST",
        "/api/v1/links",
        json={"recipients": [{"address": "b@example.com"}], "topic": "news"},
    )
    assert r.json()["links"] == []
    assert "'news' is retired" in r.json()["errors"][0]["message"]
    check = {"addresses": ["b@example.com"], "topic": "news"}
    error = assert_error(api.request("POST", "/api/v1/check", json=check), 409, "topic_retired")
    assert "retired" in str(error["message"])
    # Adding it again brings it back, as it was.
    back = api.request("POST", "/api/v1/topics", json={"key": "news", "name": "News"})
    assert back.status_code == 201 and back.json()["retired"] is False
    assert api.request("POST", "/api/v1/check", json=check).json()["results"][0]["allowed"]


def test_suppressions_stream_in_and_out(adieu: Adieu, api: Client) -> None:
    csv_body = "email,reason\nx@example.com,complaint\ny@example.com,\nnonsense,\n"
    r = api.request(
        "POST",
        "/api/v1/suppressions/import",
        content=csv_body,
        headers={"content-type": "text/csv"},
    )
    assert r.json()["added"] == 2 and r.json()["invalid"] == 1
    assert r.json()["invalid_lines"][0]["index"] == 4
    lines = '{"address": "z@example.com", "reason": "hard_bounce"}\n{"address": "x@example.com"}\n'
    r = api.request(
        "POST",
        "/api/v1/suppressions/import",
        content=lines,
        headers={"content-type": "application/x-ndjson"},
    )
    assert (r.json()["added"], r.json()["already"]) == (1, 1)
    csv_out = api.request("GET", "/api/v1/suppressions/export").text.splitlines()
    assert csv_out[0] == "address,address_hash,scope,reason,since"
    assert sorted(line.split(",")[0] for line in csv_out[1:]) == [
        "x@example.com",
        "y@example.com",
        "z@example.com",
    ]
    jsonl = api.request("GET", "/api/v1/suppressions/export?format=jsonl").text.splitlines()
    assert {json.loads(x)["reason"] for x in jsonl} == {"complaint", "import", "hard_bounce"}
    assert not adieu.policy.is_sendable("z@example.com", category="transactional")


def test_export_streams_more_than_one_chunk(adieu: Adieu, api: Client) -> None:
    adieu.ledger.import_suppressions(
        [
            __import__("adieu.ledger", fromlist=["SuppressionRecord"]).SuppressionRecord(
                address=f"s{i}@example.com"
            )
            for i in range(2500)
        ]
    )
    rows = api.request("GET", "/api/v1/suppressions/export").text.splitlines()
    assert rows.count("address,address_hash,scope,reason,since") == 1
    assert len(rows) == 2501 and len(set(rows)) == 2501


def test_events_page_through_everything_once_in_order(adieu: Adieu, api: Client) -> None:
    for i in range(25):
        adieu.ledger.unsubscribe(f"p{i}@example.com", channel=Channel.API)
    seen: list[int] = []
    after = ""
    while True:
        r = api.request("GET", f"/api/v1/events?limit=10&after={after}")
        page = r.json()
        seen += [e["id"] for e in page["events"]]
        if page["next"] is None:
            break
        after = page["next"]
    assert len(seen) == 25 and seen == sorted(set(seen))
    only = api.request("GET", "/api/v1/events?type=resubscribe").json()
    assert only["events"] == [] and only["next"] is None


def test_stats_is_the_report(adieu: Adieu, api: Client) -> None:
    adieu.ledger.record_sends([f"r{i}@example.com" for i in range(200)], campaign="c")
    adieu.ledger.record_complaint("r1@example.com", campaign="c")
    out = api.request("GET", "/api/v1/stats").json()
    assert out["total"]["sends"] == 200 and out["total"]["complaints"] == 1
    assert out["total"]["complaint_status"] == "breach"
    assert out["thresholds"]["complaint_limit"] == 0.003
    assert out["time_to_honour"]["commit"]["count"] == 1


def test_webhooks_crud_deliveries_and_replay(adieu: Adieu, api: Client) -> None:
    r = api.request(
        "POST",
        "/api/v1/webhooks",
        json={
            "url": "https://crm.example/in",
            "event_types": ["unsubscribe"],
            "description": "CRM",
        },
    )
    assert r.status_code == 201
    hook = r.json()
    assert hook["secret"].startswith("whsec_")
    assert "secret" not in api.request("GET", f"/api/v1/webhooks/{hook['id']}").json()
    assert_error(
        api.request(
            "POST", "/api/v1/webhooks", json={"url": "https://x.example", "event_types": ["x"]}
        ),
        422,
    )
    adieu.ledger.unsubscribe("a@example.com", channel=Channel.ONE_CLICK)
    adieu.ledger.record_complaint("b@example.com")  # not wanted by this hook
    (letter,) = api.request("GET", f"/api/v1/webhooks/{hook['id']}/deliveries").json()
    assert letter["state"] == "pending" and letter["event_type"] == "unsubscribe"
    (claimed,) = adieu.outbox.claim()
    adieu.outbox.failed([(claimed.id, "HTTP 500", None)])
    dead = api.request("GET", f"/api/v1/webhooks/{hook['id']}/deliveries?state=dead").json()
    assert [d["id"] for d in dead] == [letter["id"]] and dead[0]["last_error"] == "HTTP 500"
    r = api.request("POST", f"/api/v1/webhooks/{hook['id']}/replay")
    assert r.json() == {"replayed": 1}
    r = api.request("PATCH", f"/api/v1/webhooks/{hook['id']}", json={"active": False})
    assert r.json()["active"] is False
    adieu.ledger.unsubscribe("c@example.com", channel=Channel.ONE_CLICK)
    assert len(adieu.outbox.letters(webhook_id=hook["id"])) == 1, "inactive: nothing queued"
    assert api.request("DELETE", f"/api/v1/webhooks/{hook['id']}").status_code == 204
    assert api.request("GET", "/api/v1/webhooks").json() == []


# -- metrics and the OpenAPI document --------------------------------------------------------


def test_metrics_count_by_channel_and_never_name_an_address(adieu: Adieu, api: Client) -> None:
    adieu.outbox.create_webhook("https://crm.example/in")
    adieu.ledger.unsubscribe("m1@example.com", channel=Channel.ONE_CLICK)
    adieu.ledger.unsubscribe("m2@example.com", channel=Channel.ONE_CLICK)
    adieu.ledger.unsubscribe("m3@example.com", channel=Channel.MAILTO)
    adieu.ledger.record_complaint("m4@example.com")
    adieu.ledger.record_bounce("m5@example.com", hard=True)
    link = adieu.link("m6@example.com")
    api.request("GET", f"/u/{link.token}")
    text = api.request("GET", "/metrics").text
    assert 'adieu_unsubscribes_total{channel="one_click"} 2.0' in text
    assert 'adieu_unsubscribes_total{channel="mailto"} 1.0' in text
    assert "adieu_complaints_total 1.0" in text
    assert 'adieu_bounces_total{kind="hard"} 1.0' in text
    assert "adieu_webhook_outbox_pending 5.0" in text
    assert 'adieu_http_request_duration_seconds_count{method="GET",route="/u/{token}"}' in text
    assert "@" not in text and link.token not in text
    adieu.ledger.unsubscribe("m7@example.com", channel=Channel.ONE_CLICK)
    text = api.request("GET", "/metrics").text
    assert 'adieu_unsubscribes_total{channel="one_click"} 3.0' in text, "counted incrementally"


def test_metrics_can_require_a_key(adieu: Adieu, keys: dict[str, str]) -> None:
    adieu.settings = adieu.settings.replace(metrics_public=False)
    c = Client(adieu)
    try:
        assert_error(c.request("GET", "/metrics"), 401)
        ok = c.request("GET", "/metrics", headers={"Authorization": f"Bearer {keys['reader']}"})
        assert ok.status_code == 200
    finally:
        c.close()


def test_the_openapi_document_covers_every_route_with_auth_errors_and_examples(
    anonymous: Client,
) -> None:
    doc = anonymous.request("GET", "/openapi.json").json()
    operations = [
        (path, method, op)
        for path, item in doc["paths"].items()
        if path.startswith("/api/v1/")
        for method, op in item.items()
    ]
    assert len(operations) >= 22
    for path, method, op in operations:
        assert op.get("security"), (path, method)
        assert "401" in op["responses"] and "422" in op["responses"], (path, method)
        assert not any("/u/" in p or "/p/" in p for p in doc["paths"]), "pages are not API"
    schemas = doc["components"]["schemas"]
    assert schemas["ErrorBody"]["properties"]["error"]
    assert "examples" in schemas["LinksRequest"]
    assert all("@" not in path for path in doc["paths"])


# -- property: what the API parses never breaks it ----------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(
    path=st.sampled_from(
        [
            "/api/v1/check",
            "/api/v1/links",
            "/api/v1/sends",
            "/api/v1/contacts/lookup",
            "/api/v1/topics",
        ]
    ),
    body=json_values
    | st.fixed_dictionaries(
        {"addresses": st.lists(st.text(max_size=40), max_size=5)},
        optional={"topic": st.text(max_size=8), "category": st.text(max_size=12)},
    )
    | st.fixed_dictionaries(
        {
            "recipients": st.lists(
                st.fixed_dictionaries({"address": st.text(max_size=40)}), max_size=4
            )
        }
    ),
)
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_json_gets_an_answer_or_the_error_shape(api: Client, path: str, body: object) -> None:
    r = api.request("POST", path, json=body)
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert_error(r, r.status_code)


def test_the_api_names_exactly_the_ledger_event_types() -> None:
    from typing import get_args

    from adieu.ledger.outbox import ALL_TYPES
    from adieu.ledger.vocabulary import EVENT_TYPES
    from adieu.web.admin.schemas import EventType

    assert get_args(EventType) == (ALL_TYPES, *EVENT_TYPES)


def test_the_same_event_reads_the_same_everywhere(adieu: Adieu, api: Client) -> None:
    """One ISO-8601 writer: /contacts/{key}, /events and the CLI's JSON agree."""
    adieu.ledger.unsubscribe("same@example.com", channel=Channel.API)
    key = key_of(api, "same@example.com")
    history = api.request("GET", f"/api/v1/contacts/{key}").json()["history"]
    feed = api.request("GET", "/api/v1/events").json()["events"]
    (event,) = [e for e in feed if e["contact"] == key]
    assert history[0]["at"] == event["at"]
    assert history[0]["recorded_at"] == event["recorded_at"]
    assert event["at"].endswith("Z")


def test_a_reason_given_with_an_api_unsubscribe_is_in_the_report(adieu: Adieu, api: Client) -> None:
    key = key_of(api, "ann@example.com")
    body = {"address": "ann@example.com", "reason": "Too many emails"}
    assert api.request("POST", f"/api/v1/contacts/{key}/unsubscribe", json=body).json()["changed"]
    reasons = api.request("GET", "/api/v1/stats").json()["reasons"]
    assert reasons == [{"choice": None, "text": "too many emails", "count": 1}]
