"""What Adieu reads from the providers' answers (statuses, Retry-After, error
bodies, Postmark's per-address statuses, every list page) and how it signs
SES requests: properties over any input, and the documented shapes."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from push_support import AWS_KEY, AWS_SECRET, REGION, verify_sigv4

from adieu.esp.push import ADD, BOUNCE, COMPLAINT, REMOVE, UNSUBSCRIBE
from adieu.esp.push.providers import (
    MAX_RETRY_AFTER_S,
    Call,
    Page,
    Unreadable,
    error_message,
    retry_after,
    verdict,
)
from adieu.esp.push.providers.mailgun import Mailgun, mailgun_page
from adieu.esp.push.providers.postmark import Postmark, postmark_failure, postmark_page
from adieu.esp.push.providers.sendgrid import SendGrid, sendgrid_page
from adieu.esp.push.providers.ses import SES, ses_page
from adieu.esp.push.sigv4 import Credentials, sign
from adieu.scopes import ALL

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=20), inner, max_size=5)
    ),
    max_leaves=20,
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {
            "SuppressedDestinationSummaries": st.lists(
                st.fixed_dictionaries(
                    {
                        "EmailAddress": st.emails() | st.text(max_size=30),
                        "Reason": st.sampled_from(["BOUNCE", "COMPLAINT", "X"]),
                    }
                ),
                max_size=4,
            ),
            "NextToken": st.text(max_size=20) | st.none(),
            "items": st.lists(
                st.fixed_dictionaries(
                    {"address": st.emails() | st.integers(), "tags": json_values}
                ),
                max_size=4,
            ),
            "Suppressions": st.lists(
                st.fixed_dictionaries(
                    {
                        "EmailAddress": st.emails() | st.none(),
                        "SuppressionReason": st.text(max_size=20),
                        "Status": st.sampled_from(["Suppressed", "Deleted", "Failed", "Queued"]),
                        "Message": st.text(max_size=40) | st.none(),
                    }
                ),
                max_size=4,
            ),
            "paging": json_values,
        }
    ).map(lambda v: json.dumps(v).encode()),
)
header_values = st.text(max_size=40)


def _page_ok(page: Page) -> None:
    for entry in page.entries:
        assert entry.address == entry.address.strip().lower() and "@" in entry.address
        assert entry.reason in (UNSUBSCRIBE, COMPLAINT, BOUNCE)


@given(bodies)
def test_every_list_page_parser_reads_or_refuses_cleanly(body: bytes) -> None:
    parsers: list[Callable[[], Page]] = [
        lambda: ses_page("https://email.eu-west-1.amazonaws.com/v2/x?PageSize=1000", body),
        lambda: sendgrid_page("https://api.sendgrid.com/v3/x?limit=2&offset=0", body, BOUNCE, ALL),
        lambda: mailgun_page(
            "https://api.mailgun.net/v3/d/bounces", body, UNSUBSCRIBE, "https://api.mailgun.net"
        ),
        lambda: postmark_page(body),
    ]
    for parse in parsers:
        try:
            page = parse()
        except Unreadable:
            continue
        _page_ok(page)


@given(st.text(max_size=60))
def test_mailgun_never_follows_a_next_page_to_another_host(host: str) -> None:
    body = json.dumps(
        {
            "items": [{"address": "a@example.com"}],
            "paging": {"next": f"https://{host}/v3/d/bounces?page=next"},
        }
    ).encode()
    page = mailgun_page(
        "https://api.mailgun.net/v3/d/bounces", body, BOUNCE, "https://api.mailgun.net"
    )
    assert page.next_url is None or page.next_url.startswith("https://api.mailgun.net/")


@given(
    st.dictionaries(
        st.sampled_from(["Retry-After", "retry-after", "X-RateLimit-Reset", "Other"]), header_values
    )
)
def test_retry_after_is_never_negative_nor_more_than_an_hour(headers: dict[str, str]) -> None:
    delay = retry_after(headers, NOW)
    assert delay is None or 0 <= delay <= MAX_RETRY_AFTER_S


def test_retry_after_reads_seconds_http_dates_and_sendgrids_reset() -> None:
    assert retry_after({"Retry-After": "7"}, NOW) == 7
    later = (NOW + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert retry_after({"Retry-After": later}, NOW) == 30
    assert retry_after({"X-RateLimit-Reset": str(int(NOW.timestamp()) + 12)}, NOW) == 12
    assert retry_after({"Retry-After": "soon"}, NOW) is None
    assert retry_after({"Retry-After": "99999"}, NOW) == MAX_RETRY_AFTER_S


@given(st.integers(100, 599), bodies, st.booleans())
def test_every_status_gets_one_verdict(status: int, body: bytes, postmark: bool) -> None:
    call = Call("POST", "https://x.example/", {}, check=postmark_failure if postmark else None)
    answer = verdict(call, status, {"Retry-After": "3"}, body, NOW)
    assert answer.outcome in ("done", "retry", "dead")
    if answer.outcome != "done":
        assert answer.error
    if status == 429:
        assert (answer.outcome, answer.delay) == ("retry", 3)
    if status >= 500 or status in (401, 403, 408):
        assert answer.outcome == "retry"
    if 400 <= status < 500 and status not in (401, 403, 408, 429):
        assert answer.outcome == "dead"


def test_a_delete_of_what_the_provider_lacks_is_done_and_postmark_failed_is_dead() -> None:
    gone = Call("DELETE", "https://x.example/", {}, done=frozenset({404}))
    assert verdict(gone, 404, {}, b"{}").outcome == "done"
    failed = {
        "Suppressions": [
            {
                "EmailAddress": "a@example.com",
                "Status": "Failed",
                "Message": "No authority over a@example.com",
            }
        ]
    }
    answer = verdict(
        Call("POST", "https://x.example/", {}, check=postmark_failure),
        200,
        {},
        json.dumps(failed).encode(),
    )
    assert answer.outcome == "dead" and "a@example.com" not in (answer.error or "")


@given(bodies)
def test_error_messages_are_short_and_never_show_an_address(body: bytes) -> None:
    text = error_message(body)
    assert text is None or (len(text) <= 300 and "@example.com" not in text.replace("•", ""))


def test_an_address_in_a_providers_error_is_masked() -> None:
    text = error_message(b'{"message": "bounced.person@example.com is not valid"}')
    assert text is not None and "bounced.person@" not in text


@given(
    st.sampled_from(["GET", "PUT", "DELETE", "POST"]),
    st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=4),
    st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=3),
    st.binary(max_size=64),
)
@settings(max_examples=60)
def test_sigv4_signatures_verify_with_the_key_and_fail_when_anything_changes(
    method: str, segments: list[str], query: dict[str, str], body: bytes
) -> None:
    from urllib.parse import quote, urlencode

    path = "/" + "/".join(quote(s, safe="") for s in segments)
    raw = path + (f"?{urlencode(query)}" if query else "")
    url = f"http://127.0.0.1:8443{raw}"
    credentials = Credentials(AWS_KEY, AWS_SECRET)
    headers = {
        k.lower(): v for k, v in sign(method, url, body, credentials, REGION, "ses", NOW).items()
    }
    assert verify_sigv4(method, raw, headers, body, AWS_SECRET, REGION) is None
    assert verify_sigv4(method, raw, headers, body + b"x", AWS_SECRET, REGION) is not None
    assert verify_sigv4(method, raw, headers, body, AWS_SECRET + "x", REGION) is not None
    other = "PATCH" if method != "PATCH" else "GET"
    assert verify_sigv4(other, raw, headers, body, AWS_SECRET, REGION) is not None


def test_a_session_token_is_sent_and_signed() -> None:
    headers = sign(
        "GET",
        "https://email.eu-west-1.amazonaws.com/v2/email/suppression/addresses",
        b"",
        Credentials(AWS_KEY, AWS_SECRET, "tok"),
        REGION,
        "ses",
        NOW,
    )
    assert headers["X-Amz-Security-Token"] == "tok"
    assert "x-amz-security-token" in headers["Authorization"]
    assert headers["Authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={AWS_KEY}/20261204/{REGION}/ses/aws4_request, "
    )


@given(
    st.emails(), st.sampled_from([ADD, REMOVE]), st.sampled_from([UNSUBSCRIBE, COMPLAINT, BOUNCE])
)
@settings(max_examples=40)
def test_every_request_names_the_address_only_where_the_api_wants_it(
    address: str, action: str, kind: str
) -> None:
    from urllib.parse import quote

    targets: list[Any] = [
        SES(
            "https://email.eu-west-1.amazonaws.com",
            REGION,
            Credentials(AWS_KEY, AWS_SECRET),
            lambda: NOW,
        ),
        SendGrid("https://api.sendgrid.com", "k", {}, lambda: NOW),
        Mailgun("https://api.mailgun.net", "k", "mg.example.com", lambda: NOW),
        Postmark("https://api.postmarkapp.com", "k", "broadcast", lambda: NOW),
    ]
    for provider in targets:
        for call in provider.calls(action, kind, ALL, address):
            assert address not in call.url or call.method == "DELETE"
            if call.method == "DELETE" and address.encode() not in call.body:
                assert quote(address, safe="") in call.url


def test_every_provider_with_its_settings_is_configured_and_built_in_one_order(
    monkeypatch: Any,
) -> None:
    from adieu.esp.push import PROVIDERS, configured
    from adieu.esp.push.providers import kinds, providers
    from adieu.settings import Settings

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    every = Settings(
        ses_region=REGION,
        sendgrid_api_key="SG.key",
        mailgun_api_key="key-1",
        mailgun_domain="mg.example.com",
        postmark_server_token="token",
        resend_api_key="re_key",
        sparkpost_api_key="sp-key",
        brevo_api_key="xkeysib-key",
        mailjet_api_key="public",
        mailjet_api_secret="secret",
    )
    assert [kind.name for kind in kinds()] == list(PROVIDERS)
    assert configured(every) == PROVIDERS
    assert [p.name for p in providers(every)] == list(PROVIDERS)
    for provider in providers(every):
        assert "key" not in repr(provider) and "secret" not in repr(provider)
    # Half a provider's settings is none of it.
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    half = Settings(mailgun_api_key="key-1", mailjet_api_key="public")
    assert configured(half) == () and providers(half) == []
