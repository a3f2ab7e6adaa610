"""The web door against hostile callers: huge bodies, control characters in
text, stolen sessions, cross-site sign-ins, password guessing behind a shared
address, and forged X-Forwarded-For headers."""

from __future__ import annotations

import json
import re
import select
import socket
import threading
import time
import unicodedata
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from live import adieu_serve, rss_mib

from adieu.cli import main
from adieu.errors import InvalidInput
from adieu.ledger import Channel, EventType
from adieu.service import Adieu
from adieu.settings import Settings
from adieu.web.admin.auth import FailureLimiter
from adieu.web.limits import ADMIN_LIMIT, API_LIMIT, PAGE_LIMIT
from conftest import MakeSettings
from support import Client

MIB = 1024 * 1024
FORM = {"content-type": "application/x-www-form-urlencoded"}
JSON = "application/json"


@pytest.fixture
def client(adieu: Adieu) -> Iterator[Client]:
    c = Client(adieu)
    yield c
    c.close()


# -- bounded bodies ---------------------------------------------------------------


class Sent:
    """What happened to one huge request."""

    def __init__(self) -> None:
        self.status = 0
        self.answered_after_s = -1.0
        self.bytes_before_answer = -1
        self.head = b""


def send_huge(port: int, path: str, total: int, *, chunked: bool) -> Sent:
    """POST ``total`` bytes to ``path`` without credentials, a MiB at a time,
    all of it even after the answer came (the server reads and drops the
    rest). Notes when the answer came and how much had been sent by then."""
    sent = Sent()
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {total}\r\n\r\n"
    piece = b"[" + b"0" * (MIB - 1)
    with closing(socket.create_connection(("127.0.0.1", port), timeout=60)) as sock:
        started = time.monotonic()
        sock.sendall(head.encode())
        done = 0

        def answered() -> bool:
            if sent.answered_after_s < 0 and select.select([sock], [], [], 0)[0]:
                sent.answered_after_s = time.monotonic() - started
                sent.bytes_before_answer = done
            return sent.answered_after_s >= 0

        if not chunked:
            select.select([sock], [], [], 5)  # with Content-Length: answered before the body
            answered()
        while done < total:
            size = min(len(piece), total - done)
            data = piece[:size]
            sock.sendall(b"%x\r\n%s\r\n" % (size, data) if chunked else data)
            done += size
            answered()
        if chunked:
            sock.sendall(b"0\r\n\r\n")
        while b"\r\n\r\n" not in sent.head:
            more = sock.recv(65536)
            assert more, "the server closed the connection without an answer"
            sent.head += more
        sent.status = int(sent.head.split(b" ", 2)[1])
    return sent


def test_a_huge_body_is_refused_at_once_and_memory_stays_bounded(
    settings: Settings, tmp_path: Path
) -> None:
    """300 MB sent to each door without credentials, with and without
    Content-Length: a 413 (or 401) at once, the server's memory grows by a
    few MiB at most, and one-click and /healthz answer normally meanwhile."""
    adieu = Adieu(settings)
    token = adieu.codec.mint("huge@example.com")
    clicks = [adieu.codec.mint(f"click{i}@example.com") for i in range(400)]
    adieu.close()
    with adieu_serve(settings, tmp_path / "serve.log") as (port, pid):
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base) as http:  # warm up every door first
            assert http.get("/healthz").status_code == 200
            assert http.post(f"/u/{clicks[0]}", content=b"").status_code == 200
            http.post("/api/v1/check", json={"addresses": ["a@example.com"]})
            http.post("/admin/login", data={"key": "adieu_x"})
        before = rss_mib(pid)
        peak = [before]
        slowest = [0.0]
        problems: list[str] = []
        stop = threading.Event()

        def meanwhile() -> None:
            with httpx.Client(base_url=base, timeout=30) as http:
                for token in clicks[1:]:
                    if stop.is_set():
                        break
                    started = time.monotonic()
                    health = http.get("/healthz")
                    r = http.post(
                        f"/u/{token}", content=b"List-Unsubscribe=One-Click", headers=FORM
                    )
                    if health.status_code != 200 or r.status_code != 200:
                        problems.append(f"{health.status_code} {r.status_code} {r.text}")
                    slowest[0] = max(slowest[0], time.monotonic() - started)
                    peak[0] = max(peak[0], rss_mib(pid))
                    time.sleep(0.05)

        watcher = threading.Thread(target=meanwhile)
        watcher.start()
        try:
            cases = [
                ("/api/v1/check", 413, API_LIMIT),
                ("/admin/login", 413, ADMIN_LIMIT),
                (f"/u/{token}", 413, PAGE_LIMIT),
                ("/api/v1/suppressions/import", 401, 0),  # streamed: the key is asked first
            ]
            for path, status, limit in cases:
                for chunked in (False, True):
                    sent = send_huge(port, path, 300 * MIB, chunked=chunked)
                    shown = (path, chunked, sent.head[:200])
                    assert sent.status == status, shown
                    assert 0 <= sent.answered_after_s < 2, shown
                    if not chunked:
                        assert sent.bytes_before_answer == 0, "answered before any body"
                    else:  # as soon as the limit passed (give or take socket buffers)
                        assert sent.bytes_before_answer <= limit + 16 * MIB, shown
                    peak[0] = max(peak[0], rss_mib(pid))
        finally:
            stop.set()
            watcher.join()
        assert not problems, problems
        assert peak[0] - before < 48, f"the server grew from {before:.0f} to {peak[0]:.0f} MiB"
        assert slowest[0] < 2, f"one-click took {slowest[0]:.1f} s while bodies streamed in"
    log = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in log, log


async def chunks(piece: bytes, count: int) -> AsyncIterator[bytes]:
    """A body without Content-Length (sent chunked)."""
    for _ in range(count):
        yield piece


def test_each_door_refuses_a_body_over_its_limit_in_its_own_shape(
    adieu: Adieu, client: Client
) -> None:
    token = adieu.codec.mint("ada@example.com")
    # The API: the JSON error, before the key is even looked at.
    r = client.request("POST", "/api/v1/check", content=b" " * (API_LIMIT + 1))
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    # Chunked (no Content-Length): refused once the limit is passed.
    r = client.request("POST", "/api/v1/check", content=chunks(b" " * MIB, 11))
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    # A page's form: the recipient's page, in their language.
    body = b"csrf=x&frequency=" + b"w" * PAGE_LIMIT
    r = client.request(
        "POST", f"/p/{token}", content=body, headers={**FORM, "accept-language": "sv"}
    )
    assert r.status_code == 413 and r.headers["content-type"].startswith("text/html")
    assert 'lang="sv"' in r.text
    # One-click: plain text, and nothing recorded.
    r = client.request("POST", f"/u/{token}", content=chunks(b"x" * PAGE_LIMIT, 2))
    assert r.status_code == 413 and r.headers["content-type"].startswith("text/plain")
    assert adieu.policy.is_sendable("ada@example.com")
    # The dashboard: its own page.
    r = client.request("POST", "/admin/login", content=b"key=" + b"k" * ADMIN_LIMIT, headers=FORM)
    assert r.status_code == 413 and "Sign in" not in r.text and "<html" in r.text


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    size=st.integers(ADMIN_LIMIT - 64, ADMIN_LIMIT + 64),
    cuts=st.lists(st.integers(1, 6000), max_size=6),
    declared=st.booleans(),
)
def test_a_body_is_refused_exactly_when_it_passes_its_limit(
    client: Client, size: int, cuts: list[int], declared: bool
) -> None:
    """However the bytes arrive (in one piece with Content-Length, or in
    pieces of any size without), one byte over the limit is a 413 and the
    limit itself is not."""
    client.app.state.auth.limiter.slow_down = 0
    body = b"key=" + b"k" * (size - 4)
    pieces, at = [], 0
    for cut in cuts:
        pieces.append(body[at : at + cut])
        at += cut
    pieces.append(body[at:])

    async def streamed() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    content = body if declared else streamed()
    r = client.request("POST", "/admin/login", content=content, headers=FORM)
    if size > ADMIN_LIMIT:
        assert r.status_code == 413, r.status_code
    else:
        assert r.status_code in (401, 429), r.status_code  # read whole, the key checked


def test_an_http_2_body_without_content_length_is_counted(
    client: Client,
) -> None:
    """In HTTP/1 a request with neither Content-Length nor Transfer-Encoding
    has no body (RFC 9112 §6.3); in HTTP/2 the body comes in frames with no
    such header, so it is counted like a chunked one."""
    started: list[int] = []

    async def call(version: str, pieces: int) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": version,
            "method": "POST",
            "scheme": "https",
            "path": "/api/v1/check",
            "raw_path": b"/api/v1/check",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"mail.example.net"), (b"content-type", b"application/json")],
            "client": ("203.0.113.7", 4711),
            "server": ("mail.example.net", 443),
            "state": {},
        }
        left = pieces

        async def receive() -> dict[str, object]:
            nonlocal left
            left -= 1
            return {"type": "http.request", "body": b" " * MIB, "more_body": left > 0}

        async def send(message: Any) -> None:
            if message["type"] == "http.response.start":
                started.append(message["status"])

        await client.app(scope, receive, send)

    client.loop.run_until_complete(call("2", 11))
    assert started == [413]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    value=st.one_of(
        st.text(st.sampled_from("0123456789"), min_size=1, max_size=6000),
        st.from_regex(r"[ -~]{0,24}", fullmatch=True),
    )
)
@example(value="9" * 5000)
def test_any_content_length_is_answered_never_a_500(client: Client, value: str) -> None:
    """(A length of thousands of digits used to be a ValueError in the limit.)"""
    client.app.state.auth.limiter.slow_down = 0
    r = client.request("POST", "/api/v1/check", content=b"{}", headers={"content-length": value})
    assert r.status_code in (401, 413, 429), (value[:40], r.status_code)


# -- control characters ------------------------------------------------------------


@pytest.mark.parametrize("bad", ["\x00", "\x1b[31m", "\x7f", "\x85", "\ud800"])
def test_the_api_refuses_control_characters_in_text_with_a_422(adieu: Adieu, bad: str) -> None:
    _, key = adieu.api_keys.create("ops")
    api = Client(adieu, headers={"Authorization": f"Bearer {key}"})
    try:
        adieu.ledger.add_topic("news", "News")
        contact = api.request(
            "POST", "/api/v1/contacts/lookup", json={"address": "a@example.com"}
        ).json()["contact"]
        cases: list[tuple[str, str, dict[str, object]]] = [
            ("POST", "/api/v1/topics", {"key": "t", "name": f"T{bad}"}),
            ("POST", "/api/v1/topics", {"key": "t", "name": "T", "description": f"d{bad}"}),
            ("PATCH", "/api/v1/topics/news", {"name": f"N{bad}"}),
            ("PATCH", "/api/v1/topics/news", {"description": f"d{bad}"}),
            ("POST", "/api/v1/webhooks", {"url": "https://crm.example/x", "description": bad}),
            ("POST", "/api/v1/webhooks", {"url": f"https://crm.example/{bad}"}),
            ("POST", f"/api/v1/contacts/{contact}/unsubscribe", {"reason": f"r{bad}"}),
            ("POST", f"/api/v1/contacts/{contact}/unsubscribe", {"campaign": f"c{bad}"}),
            ("POST", f"/api/v1/contacts/{contact}/resubscribe", {"note": f"n{bad}"}),
            ("POST", "/api/v1/sends", {"addresses": ["a@example.com"], "campaign": bad}),
            (
                "POST",
                "/api/v1/links",
                {"recipients": [{"address": "a@example.com"}], "campaign": bad},
            ),
        ]
        for method, path, body in cases:
            # Escaped JSON, as a program would send a lone surrogate.
            data = json.dumps(body).encode()
            r = api.request(method, path, content=data, headers={"content-type": JSON})
            assert r.status_code == 422, (path, body, r.status_code, r.text)
            error = r.json()["error"]
            assert error["code"] == "invalid_request"
            said = str(error["details"]).lower()
            # (a URL's pattern, or pydantic's own check of unicode, may speak first)
            assert any(why in said for why in ("control characters", "pattern", "unicode")), error
        if bad.isascii():  # (a query string is bytes: no lone surrogate gets through it)
            r = api.request("GET", "/api/v1/events", params={"type": f"unsubscribe{bad}"})
            assert r.status_code == 422, r.text
        assert [t.key for t in adieu.ledger.topics()] == ["news"]
        assert adieu.ledger.topic("news").name == "News"
        assert adieu.outbox.webhooks() == []
        assert adieu.policy.is_sendable("a@example.com")
        # Line breaks and tabs are fine where text may run over lines.
        r = api.request(
            "POST", "/api/v1/topics", json={"key": "t", "name": "T", "description": "a\r\n\tb"}
        )
        assert r.status_code == 201, r.text
    finally:
        api.close()


def test_the_ledger_refuses_control_characters_where_it_takes_text(adieu: Adieu) -> None:
    ledger = adieu.ledger
    with pytest.raises(InvalidInput, match="control characters"):
        ledger.add_topic("news", "News\x00")
    with pytest.raises(InvalidInput, match="control characters"):
        ledger.add_topic("news", "News\n")  # a name is one line
    ledger.add_topic("news", "News", "Once a month.\nSometimes twice.")
    with pytest.raises(InvalidInput, match="control characters"):
        ledger.update_topic("news", description="\x00")
    ledger.unsubscribe("a@example.com", channel=Channel.ONE_CLICK)
    with pytest.raises(InvalidInput, match="control characters"):
        ledger.add_reason("a@example.com", "too\x00many", channel=Channel.LANDING_PAGE)
    with pytest.raises(InvalidInput, match="control characters"):
        ledger.unsubscribe("b@example.com", channel=Channel.CLI, reason="\x00")
    with pytest.raises(InvalidInput, match="control characters"):
        adieu.outbox.create_webhook("https://crm.example/x", description="crm\x00")
    hook = adieu.outbox.create_webhook("https://crm.example/x", description="CRM\n\tsync")
    with pytest.raises(InvalidInput, match="control characters"):
        adieu.outbox.update_webhook(hook.id, description="\x1b[2J")
    with pytest.raises(InvalidInput, match="control characters"):
        adieu.api_keys.create("ops\x00")
    assert ledger.topic("news").description == "Once a month.\nSometimes twice."
    assert ledger.topic("news").name == "News"
    assert adieu.policy.is_sendable("b@example.com")
    assert [h.description for h in adieu.outbox.webhooks()] == ["CRM\n\tsync"]
    assert adieu.api_keys.list() == []


def test_the_reason_form_refuses_control_characters_kindly(adieu: Adieu, client: Client) -> None:
    token = adieu.codec.mint("ada@example.com", locale="de")
    page = client.request("POST", f"/u/{token}", data={"adieu-page": "1", "scope": "all"})
    assert page.status_code == 200
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    csrf = found.group(1)
    r = client.request(
        "POST", f"/u/{token}/reason", data={"csrf": csrf, "choice": "other", "text": "so\x00"}
    )
    assert r.status_code == 400
    assert "Zeichen, die wir nicht speichern können" in r.text  # in the reader's language
    assert f'action="/u/{token}/reason"' in r.text  # the form again, to write it anew
    assert "\x00" not in r.text
    history = adieu.ledger.history("ada@example.com")
    assert not [e for e in history if e.type is EventType.REASON]
    r = client.request(
        "POST", f"/u/{token}/reason", data={"csrf": csrf, "text": "Zu viele.\r\n\tDanke"}
    )
    assert r.status_code == 200
    (reason,) = [e for e in adieu.ledger.history("ada@example.com") if e.type is EventType.REASON]
    assert reason.reason == "Zu viele.\n\tDanke" or reason.reason == "Zu viele.\r\n\tDanke"


#: Any text, with the characters that are not text drawn often.
ANY_TEXT = st.text(
    st.one_of(
        st.characters(exclude_categories=()),
        st.sampled_from("\x00\x07\x1b\x7f\x85\u2028\t\n\r \ud800\udfff"),
    ),
    max_size=30,
)


def controls_in(value: str, *, lines: bool) -> bool:
    """Whether ``value`` holds a control character (Unicode's Cc) or a lone
    surrogate (Cs); with ``lines``, TAB, LF and CR are text."""
    allowed = "\t\n\r" if lines else ""
    return any(unicodedata.category(c) in ("Cc", "Cs") and c not in allowed for c in value)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=ANY_TEXT, description=ANY_TEXT)
def test_any_text_given_to_the_api_is_stored_as_given_or_refused_with_a_422(
    adieu: Adieu, name: str, description: str
) -> None:
    _, key = adieu.api_keys.create("ops")
    api = Client(adieu, headers={"Authorization": f"Bearer {key}"})
    topic = f"t{len(adieu.ledger.topics(retired=True))}"
    try:
        body = json.dumps({"key": topic, "name": name, "description": description})
        r = api.request("POST", "/api/v1/topics", content=body, headers={"content-type": JSON})
        if controls_in(name, lines=False) or controls_in(description, lines=True):
            assert r.status_code == 422, (r.status_code, r.text)
            assert r.json()["error"]["code"] in ("invalid_request", "invalid_input")
        elif name.strip():
            assert r.status_code == 201, (r.status_code, r.text)
            got = api.request("GET", f"/api/v1/topics/{topic}").json()
            assert (got["name"], got["description"]) == (name.strip(), description.strip())
        else:
            assert r.status_code == 422, (r.status_code, r.text)
    finally:
        api.close()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=ANY_TEXT.filter(lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t)))
def test_any_text_in_the_reason_form_is_kept_or_asked_for_again(
    adieu: Adieu, client: Client, text: str
) -> None:
    """(A form's body is bytes: no lone surrogate can come through it.)"""
    address = f"r{time.monotonic_ns()}@example.com"
    token = adieu.codec.mint(address)
    page = client.request("POST", f"/u/{token}", data={"adieu-page": "1", "scope": "all"})
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert page.status_code == 200 and found is not None
    r = client.request("POST", f"/u/{token}/reason", data={"csrf": found.group(1), "text": text})
    reasons = [e.reason for e in adieu.ledger.history(address) if e.type is EventType.REASON]
    if controls_in(text, lines=True):
        assert r.status_code == 400 and f'action="/u/{token}/reason"' in r.text
        assert reasons == []
    else:
        assert r.status_code == 200, r.text
        assert len(reasons) == (1 if text.strip() else 0)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["topic", "add", "news", "--name", "News\x00"], "A topic's name cannot contain"),
        (["topic", "add", "news", "--name", "N", "--description", "\x1b[2J"], "description"),
        (["unsubscribe", "ann@example.com", "--reason", "so\x00"], "A reason cannot contain"),
        (["resubscribe", "ann@example.com", "--note", "\x07"], "A note cannot contain"),
        (
            ["webhooks", "add", "https://crm.example/x", "--description", "crm\x00"],
            "A webhook's description cannot contain",
        ),
        (["apikey", "create", "--name", "ops\x00"], "An API key's name cannot contain"),
    ],
)
def test_the_commands_refuse_control_characters_with_a_message(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, args: list[str], words: str
) -> None:
    """On PostgreSQL a NUL used to end in a DataError; on SQLite it was stored."""
    monkeypatch.setenv("ADIEU_DATA_DIR", str(settings.data_dir))
    if settings.database_url:
        monkeypatch.setenv("ADIEU_DATABASE_URL", settings.database_url)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, (result.output, result.exception)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr  # one sentence
    assert words in errors[0] and "control characters" in errors[0], result.stderr
    assert "Traceback" not in result.output
    app = Adieu(settings)
    try:
        assert app.ledger.topics() == [] and app.outbox.webhooks() == []
        assert app.api_keys.list() == []
        assert app.ledger.history("ann@example.com") == ()
    finally:
        app.close()


# -- sessions and sign-in ------------------------------------------------------------


def sign_in(client: Client, key: str, **headers: str) -> httpx.Response:
    return client.request("POST", "/admin/login", data={"key": key}, headers=headers)


def test_signing_out_ends_the_session_on_the_server(adieu: Adieu, client: Client) -> None:
    _, key = adieu.api_keys.create("ops")
    assert sign_in(client, key).status_code == 303
    stolen = client.client.cookies["adieu_admin"]
    page = client.request("GET", "/admin")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert page.status_code == 200 and found is not None
    r = client.request("POST", "/admin/logout", data={"csrf": found.group(1)})
    assert r.status_code == 303 and r.headers["location"] == "/admin/login"
    # A copy of the cookie, kept anywhere, no longer opens the dashboard.
    client.client.cookies.set("adieu_admin", stolen, path="/admin")
    r = client.request("GET", "/admin")
    assert r.status_code == 303 and r.headers["location"] == "/admin/login"
    # Signing in again works, with a new session.
    client.client.cookies.clear()
    assert sign_in(client, key).status_code == 303
    assert client.request("GET", "/admin").status_code == 200
    # A cross-site sign-out changes nothing.
    r = client.request("POST", "/admin/logout", data={"csrf": "forged"})
    assert r.status_code == 403
    assert client.request("GET", "/admin").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "https://www.mail.example.net"},
    ],
)
def test_a_cross_site_sign_in_is_refused(
    adieu: Adieu, client: Client, headers: dict[str, str]
) -> None:
    _, key = adieu.api_keys.create("ops")
    r = sign_in(client, key, **headers)
    assert r.status_code == 403 and "set-cookie" not in r.headers
    assert "another site" in r.text
    same = sign_in(
        client, key, Origin="https://mail.example.net", **{"Sec-Fetch-Site": "same-origin"}
    )
    assert same.status_code == 303


def test_wrong_keys_never_lock_out_the_right_one(adieu: Adieu, client: Client) -> None:
    """Behind one address (a NAT), someone's wrong guesses slow their own
    guesses down, but the right key still signs in, on the dashboard and the API."""
    _, key = adieu.api_keys.create("ops")
    client.app.state.auth.limiter.slow_down = 0.2
    for _ in range(12):
        r = sign_in(client, "adieu_wrong")
        assert r.status_code in (401, 429)
    started = time.monotonic()
    r = sign_in(client, "adieu_wrong")
    assert r.status_code == 429 and time.monotonic() - started >= 0.2
    assert sign_in(client, key).status_code == 303
    r = client.request("GET", "/api/v1/topics", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200


def test_x_forwarded_for_counts_only_from_a_trusted_proxy(make_settings: MakeSettings) -> None:
    def guesses(settings: Settings, forwarded: list[str]) -> list[int]:
        app = Adieu(settings)
        c = Client(app)  # the connection comes from 203.0.113.7
        c.app.state.auth.limiter.slow_down = 0
        try:
            codes = []
            for value in forwarded:
                headers = {"Authorization": "Bearer adieu_wrong", "X-Forwarded-For": value}
                codes.append(c.request("GET", "/api/v1/topics", headers=headers).status_code)
            return codes
        finally:
            c.close()
            app.close()

    rotating = [f"198.51.100.{i}" for i in range(12)]
    # Not trusted (the default): a rotating header changes nothing.
    assert guesses(make_settings(), rotating)[-1] == 429
    # From a trusted proxy: each forwarded client is counted by itself…
    trusted = make_settings(trusted_proxies="203.0.113.0/24")
    assert set(guesses(trusted, rotating)) == {401}
    # …and one client behind it is slowed like any other.
    assert guesses(trusted, ["198.51.100.9"] * 12)[-1] == 429


def test_adieu_serve_believes_no_forwarded_header_by_default(
    settings: Settings, tmp_path: Path
) -> None:
    """uvicorn on its own believes X-Forwarded-For from 127.0.0.1: a local
    client could then be anyone. `adieu serve` leaves it to
    ADIEU_TRUSTED_PROXIES, which is unset."""
    with (
        adieu_serve(settings, tmp_path / "serve.log") as (port, _),
        httpx.Client(base_url=f"http://127.0.0.1:{port}") as http,
    ):
        codes = [
            http.get(
                "/api/v1/topics",
                headers={"Authorization": "Bearer adieu_wrong", "X-Forwarded-For": f"10.0.0.{i}"},
            ).status_code
            for i in range(11)
        ]
    assert codes[:10] == [401] * 10 and codes[10] == 429


def test_hsts_when_the_links_are_https(adieu: Adieu, client: Client, tmp_path: Path) -> None:
    r = client.request("GET", "/healthz")
    assert r.headers["strict-transport-security"] == "max-age=31536000"
    token = adieu.codec.mint("ada@example.com")
    assert "strict-transport-security" in client.request("GET", f"/u/{token}").headers
    plain = Adieu(Settings(data_dir=tmp_path / "plain", base_url="http://127.0.0.1:8000"))
    c = Client(plain)
    try:
        assert "strict-transport-security" not in c.request("GET", "/healthz").headers
    finally:
        c.close()
        plain.close()


def test_failures_count_per_address_and_per_ipv6_64() -> None:
    limiter = FailureLimiter(limit=3)
    for i in range(3):
        limiter.failed(f"2001:db8::{i + 1}")  # one subscriber walking its /64
        limiter.failed(f"::ffff:192.0.2.{i + 1}")  # three IPv4 clients, dual-stack
    assert limiter.retry_after("2001:db8::ffff") is not None
    assert limiter.retry_after("2001:db8:0:1::1") is None
    assert limiter.retry_after("::ffff:192.0.2.1") is None
    assert limiter.retry_after("192.0.2.9") is None
