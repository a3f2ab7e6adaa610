"""Suppression imports keep the good rows: every bad row, whatever is wrong
with it, is refused on its own with its line number, in every format, through
the library, the API and (tests/cli/test_import.py) the command."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adieu import lists
from adieu.ledger import SuppressionRecord
from adieu.service import Adieu
from support import Client

FORMATS = ("generic", "mailchimp", "sendgrid", "ses")

# (format, file, good addresses, {line: words in its refusal})
CASES = [
    (
        "sendgrid",
        "email,created\n"
        "ok1@example.com,1700000000\n"
        "big@example.com,99999999999999999999\n"
        "ok2@example.com,\n"
        "neg@example.com,-99999999999\n",
        {"ok1@example.com", "ok2@example.com"},
        {3: "created", 5: "created"},
    ),
    (
        "generic",
        '{"address": "ok1@example.com", "since": "2024-01-02T03:04:05Z"}\n'
        '{"address": "five@example.com", "since": 5}\n'
        + "[" * 50_000
        + "\n"
        + '{"address": "deep@example.com", "x": '
        + "[" * 40
        + "]" * 40
        + "}\n"
        '{"address": "far@example.com", "since": "0001-01-01T00:00:00+23:59"}\n'
        '{"address": "late@example.com", "since": "9999-12-31T23:59:59-23:59"}\n'
        '{"address": ["list@example.com"]}\n'
        '{"address": "why@example.com", "reason": "because"}\n'
        '{"address": "why@example.com", "reason": 7}\n'
        '{"address": "topic@example.com", "scope": "no-such-topic"}\n'
        '{"address": "topic@example.com", "scope": "Bad Topic\\u0000"}\n'
        '{"address_hash": "abc"}\n'
        '"just a string"\n'
        "{not json\n"
        '{"address": "ok2@example.com", "reason": "spam", "scope": "all"}\n',
        {"ok1@example.com", "ok2@example.com"},
        {
            2: "since",
            3: "nested",
            4: "nested",
            5: "since",
            6: "since",
            7: "address",
            8: "reason",
            9: "reason",
            10: "no-such-topic",
            11: "topic",
            12: "address_hash",
            13: "object",
            14: "JSON",
        },
    ),
    (
        "generic",
        "email,reason,since\n"
        "ok1@example.com,unsubscribed,2024-01-01\n"
        "not-an-address,,\n"
        "bad@example.com,made-up,\n"
        "old@example.com,,1969-12-31T23:59:59Z\n"
        "soon@example.com,,2999-01-01\n"
        "when@example.com,,yesterday\n"
        "ok2@example.com,,\n",
        {"ok1@example.com", "ok2@example.com"},
        {3: "not a valid address", 4: "made-up", 5: "1970", 6: "future", 7: "yesterday"},
    ),
    (
        "mailchimp",
        "Email Address,CLEAN_TIME,UNSUB_TIME\n"
        "ok1@example.com,2024-03-01 10:00:00,\n"
        "bad@example.com,not a time,\n"
        "ok2@example.com,,2024-02-01 08:00:00\n",
        {"ok1@example.com", "ok2@example.com"},
        {3: "CLEAN_TIME"},
    ),
    (
        "ses",
        "EmailAddress,Reason,LastUpdateTime\n"
        "ok1@example.com,BOUNCE,2024-05-01T00:00:00Z\n"
        "bad@example.com,LOST,\n"
        "when@example.com,COMPLAINT,+99999-01-01\n"
        "ok2@example.com,COMPLAINT,\n",
        {"ok1@example.com", "ok2@example.com"},
        {3: "BOUNCE or COMPLAINT", 4: "LastUpdateTime"},
    ),
    (
        "ses",
        json.dumps(
            {
                "SuppressedDestinationSummaries": [
                    {"EmailAddress": "ok1@example.com", "Reason": "BOUNCE"},
                    {"EmailAddress": 5, "Reason": "BOUNCE"},
                    {"EmailAddress": "x@example.com", "Reason": "BOUNCE", "LastUpdateTime": []},
                    {
                        "EmailAddress": "ok2@example.com",
                        "Reason": "COMPLAINT",
                        "LastUpdateTime": 1714521600.5,
                    },
                    {"EmailAddress": "y@example.com", "Reason": ["BOUNCE"]},
                ]
            },
            indent=2,
        ),
        {"ok1@example.com", "ok2@example.com"},
        {7: "EmailAddress", 11: "LastUpdateTime", 21: "Reason"},
    ),
]


def _imported(adieu: Adieu) -> set[str]:
    return {r.address for r in adieu.ledger.export_suppressions() if r.address}


@pytest.mark.parametrize(("fmt", "text", "good", "refused"), CASES)
def test_bad_rows_are_refused_one_by_one_and_the_good_ones_imported(
    adieu: Adieu, fmt: str, text: str, good: set[str], refused: dict[int, str]
) -> None:
    result, bad = lists.import_file(adieu.ledger, io.StringIO(text), fmt)  # type: ignore[arg-type]
    assert _imported(adieu) == good
    assert result.added == len(good)
    assert bad == len(refused)
    got = dict(result.invalid)
    assert set(got) == set(refused), got
    for line, words in refused.items():
        assert words in got[line], (line, got[line])
        assert got[line].isprintable()


def test_a_file_that_cannot_be_read_is_one_refusal(adieu: Adieu) -> None:
    result, bad = lists.import_file(adieu.ledger, io.StringIO("name,phone\nAnn,1\n"))
    assert (result.added, bad) == (0, 1)
    assert result.invalid[0][0] == 1 and "no e-mail column" in result.invalid[0][1]
    broken = '{\n  "SuppressedDestinationSummaries": [\n    {"EmailAddress": \n'
    result, bad = lists.import_file(adieu.ledger, io.StringIO(broken), "ses")
    assert (result.added, bad) == (0, 1)
    assert "not valid JSON" in result.invalid[0][1]


# -- the parsers never raise ------------------------------------------------


def _rows(text: str, fmt: str) -> list[tuple[int, SuppressionRecord | str]]:
    return list(lists.read_suppressions(io.StringIO(text, newline=""), fmt))  # type: ignore[arg-type]


def _check(rows: list[tuple[int, SuppressionRecord | str]]) -> None:
    for number, item in rows:
        assert isinstance(number, int) and number >= 1
        if isinstance(item, str):
            assert item and item.isprintable()
        else:
            assert isinstance(item, SuppressionRecord)
            (item.address or "").encode("utf-8")  # storable


LINE = st.one_of(
    st.text(max_size=60),
    st.builds(
        json.dumps,
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(
                    st.sampled_from(
                        ["address", "email", "since", "reason", "scope", "address_hash"]
                    ),
                    inner,
                    max_size=4,
                )
            ),
            max_leaves=8,
        ),
    ),
    st.sampled_from(
        [
            "email,created,status,ip,reason,since,scope",
            "Email Address,CLEAN_TIME,UNSUB_TIME",
            "EmailAddress,Reason,LastUpdateTime",
            "a@example.com,99999999999999999999,x,1,spam,0001-01-01T00:00:00+23:59,all",
            '"unclosed,quote',
            "[" * 3000,
            '{"SuppressedDestinationSummaries": [',
        ]
    ),
)


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(LINE, max_size=8), newline=st.sampled_from(["\n", "\r\n", "\r"]))
def test_any_lines_through_any_format_are_records_or_refusals(
    fmt: str, lines: list[str], newline: str
) -> None:
    _check(_rows(newline.join(lines), fmt))


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=300))
def test_any_bytes_through_any_format_are_records_or_refusals(fmt: str, data: bytes) -> None:
    # As the command reads a file (undecodable bytes kept) and as the API does.
    for errors in ("surrogateescape", "replace"):
        _check(_rows(data.decode("utf-8", errors), fmt))


# -- through the API --------------------------------------------------------


@pytest.fixture
def api(adieu: Adieu) -> Iterator[Client]:
    _, secret = adieu.api_keys.create("importer")
    client = Client(adieu, headers={"Authorization": f"Bearer {secret}"})
    yield client
    client.close()


@pytest.mark.parametrize(("fmt", "text", "good", "refused"), CASES)
def test_the_api_answers_200_with_the_refused_lines(
    adieu: Adieu, api: Client, fmt: str, text: str, good: set[str], refused: dict[int, str]
) -> None:
    r = api.request(
        "POST",
        f"/api/v1/suppressions/import?format={fmt}",
        content=text.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["added"] == len(good) and body["invalid"] == len(refused)
    assert {x["index"] for x in body["invalid_lines"]} == set(refused)
    assert _imported(adieu) == good


def test_the_api_imports_good_rows_beside_undecodable_bytes(adieu: Adieu, api: Client) -> None:
    r = api.request(
        "POST",
        "/api/v1/suppressions/import",
        content=b"email\nok@example.com\n\xff\xfe@\x00example.com\n",
        headers={"Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["added"] == 1 and r.json()["invalid"] == 1
