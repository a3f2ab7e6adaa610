"""Webhook URLs are checked when a webhook is created or changed (API and
command) and again before each delivery: http or https, an ASCII host (an
international name IDNA-encoded), path and query percent-encoded, no spaces
or control characters anywhere."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from adieu.cli import main
from adieu.errors import InvalidInput
from adieu.ledger.outbox import check_url
from adieu.service import Adieu
from support import Client


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        ("https://crm.example.com/adieu", "https://crm.example.com/adieu"),
        ("HTTPS://CRM.Example.com:8443/In?a=1&b=2", "https://crm.example.com:8443/In?a=1&b=2"),
        ("http://127.0.0.1/用户", "http://127.0.0.1/%E7%94%A8%E6%88%B7"),
        ("http://127.0.0.1:8080/a?name=José", "http://127.0.0.1:8080/a?name=Jos%C3%A9"),
        ("https://bücher.example/hook", "https://xn--bcher-kva.example/hook"),
        ("http://[::1]:9000/x", "http://[::1]:9000/x"),
        ("http://crm.example/%7Euser/50%", "http://crm.example/%7Euser/50%25"),
        ('http://crm.example/a"<b>', "http://crm.example/a%22%3Cb%3E"),
        ("  http://crm.example/  ", "http://crm.example/"),
    ],
)
def test_a_url_is_stored_as_it_is_requested(url: str, stored: str) -> None:
    assert check_url(url) == stored
    assert check_url(stored) == stored


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a\x00b",
        "http://127.0.0.1/a\x01b",
        "http://127.0.0.1/x\r\nX-Injected: 1",
        "http://127.0.0.1/a b",
        "http://127.0.0.1/a\x7f",
        "http://127.0.0.1/a\u0085",
        "http://crm.example\udcff/x",
        "ftp://crm.example/",
        "javascript:alert(1)",
        "http:///nohost",
        "http://crm.example:0/",
        "http://crm.example:65536/",
        "http://crm.example:port/",
        "http://[::1/",
        "http://a..b/",
        "http://" + "a" * 64 + ".example/",
        "http://exa%mple.com/",
        "http://crm.example/" + "x" * 2000,
        "http://crm.example/" + "é" * 400,  # 2,400 characters once encoded
        "",
    ],
)
def test_a_url_that_cannot_be_requested_is_refused(url: str) -> None:
    with pytest.raises(InvalidInput):
        check_url(url)


@given(st.text(max_size=60))
def test_any_text_is_refused_or_becomes_a_plain_ascii_url(tail: str) -> None:
    for url in (tail, "http://crm.example/" + tail, "https://" + tail):
        try:
            stored = check_url(url)
        except InvalidInput:
            continue
        assert stored.isascii() and stored.isprintable() and " " not in stored
        assert check_url(stored) == stored


@pytest.fixture
def api(adieu: Adieu) -> Iterator[Client]:
    _, secret = adieu.api_keys.create("admin")
    client = Client(adieu, headers={"Authorization": f"Bearer {secret}"})
    yield client
    client.close()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a\x00b",
        "http://127.0.0.1/a\x01b",
        "http://127.0.0.1/x\r\nX-Injected: 1",
        "http://127.0.0.1:70000/",
    ],
)
def test_the_api_refuses_a_bad_url(adieu: Adieu, api: Client, url: str) -> None:
    created = api.request("POST", "/api/v1/webhooks", json={"url": url})
    assert created.status_code in (400, 422), created.text
    assert set(created.json()) == {"error"}
    assert adieu.outbox.webhooks() == []
    hook = adieu.outbox.create_webhook("https://crm.example/in")
    patched = api.request("PATCH", f"/api/v1/webhooks/{hook.id}", json={"url": url})
    assert patched.status_code in (400, 422), patched.text
    assert adieu.outbox.webhook(hook.id).url == "https://crm.example/in"


def test_the_api_stores_and_shows_the_encoded_url(api: Client) -> None:
    created = api.request("POST", "/api/v1/webhooks", json={"url": "http://127.0.0.1/用户"})
    assert created.status_code == 201, created.text
    assert created.json()["url"] == "http://127.0.0.1/%E7%94%A8%E6%88%B7"


@pytest.fixture
def run(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ADIEU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ADIEU_DATABASE_URL", database_url)
    return lambda *args: CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1/a\x00b", "http://127.0.0.1/a\x1bb", "http://127.0.0.1/a b"]
)
def test_the_command_refuses_a_bad_url_in_one_sentence(run, url: str) -> None:  # type: ignore[no-untyped-def]
    result = run("webhooks", "add", url)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr  # one sentence
    assert errors[0].startswith("Error: A webhook URL must be an http:// or https:// address")
    assert "Traceback" not in result.output
    assert "http" not in run("webhooks", "list").stdout.split("URL", 1)[1]


def test_the_command_says_which_url_it_stored(run) -> None:  # type: ignore[no-untyped-def]
    result = run("webhooks", "add", "https://bücher.example/用户")
    assert result.exit_code == 0, result.output
    assert "https://xn--bcher-kva.example/%E7%94%A8%E6%88%B7" in result.stderr
