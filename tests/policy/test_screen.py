"""Bulk screening: the fast chunk path must agree with the exact one, line by line."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adieu import lists
from adieu.addresses import AddressHasher, canonical_or_none
from adieu.ledger import Blocklist, Channel, Frequency
from adieu.policy.gate import FilterReport
from adieu.policy.screen import INVALID, Screen
from adieu.service import Adieu

HASHER = AddressHasher(b"k" * 32)
BLOCKED = {b"gone@example.com": "unsubscribe", b"bad@bounce.org": "hard_bounce"}

_local = st.text(alphabet="abcXYZ019.+_-!'", min_size=0, max_size=12)
_domain = st.sampled_from(
    [
        "example.com",
        "Example.COM",
        "bounce.org",
        "a.b.c.de",
        "x--y.com",
        "-x.com",
        "x-.com",
        "test",
        "site.test",
        "1.2.3.4",
        "b.c1",
        "mail.xn--p1ai",
        "bücher.de",
        "ex ample.com",
        "",
        "a..b",
    ]
)
_line = st.one_of(
    st.builds(lambda local, domain: f"{local}@{domain}", _local, _domain),
    st.sampled_from(
        [
            "gone@example.com",
            "GONE@example.com",
            " gone@example.com ",
            "bad@bounce.org",
            "",
            "   ",
            "no-at-sign",
            "two@@example.com",
            "a@b@c.com",
            "x" * 70 + "@example.com",
            "a" * 250 + "@example.com",
            ".lead@example.com",
            "trail.@example.com",
        ]
    ),
    st.text(max_size=30).filter(lambda s: "\n" not in s and "\r" not in s),
)


def expected(lines: list[str]) -> tuple[list[str], dict[str, int], list[int]]:
    kept: list[str] = []
    removed: dict[str, int] = {}
    invalid: list[int] = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        canon = canonical_or_none(text)
        if canon is None:
            invalid.append(number)
            continue
        why = BLOCKED.get(canon.encode())
        if why:
            removed[why] = removed.get(why, 0) + 1
        else:
            kept.append(text)
    return kept, removed, invalid


@settings(max_examples=400)
@given(st.lists(_line, min_size=1, max_size=40), st.booleans())
def test_chunk_agrees_with_the_exact_rules(lines: list[str], crlf: bool) -> None:
    screen = Screen(Blocklist(dict(BLOCKED), {}), HASHER)
    ending = "\r\n" if crlf else "\n"
    data = "".join(line + ending for line in lines).encode("utf-8", "surrogateescape")
    result = screen.chunk(data, 1)
    kept, removed, invalid = expected(lines)
    assert [k.decode("utf-8", "surrogateescape").removesuffix("\r") for k in result.kept] == kept
    assert dict(result.removed) == removed
    assert [n for n, _ in result.invalid] == invalid
    assert result.lines == len(lines)


def test_a_clean_chunk_takes_the_fast_path_and_keeps_rows_byte_for_byte() -> None:
    screen = Screen(Blocklist(dict(BLOCKED), {}), HASHER)
    calls: list[object] = []
    screen._slow = lambda *a, **k: calls.append(a)  # type: ignore[method-assign,assignment]
    result = screen.chunk(b"Jane@Example.com\r\ngone@example.com\r\nx.y+z@mail.co.uk\r\n", 1)
    assert calls == []
    assert result.kept == [b"Jane@Example.com\r", b"x.y+z@mail.co.uk\r"]


def test_erased_contacts_are_found_by_hash() -> None:
    digest = HASHER.hash("erased@example.com")
    screen = Screen(Blocklist({}, {digest: "manual"}), HASHER)
    result = screen.chunk(b"erased@example.com\nfine@example.com\n", 1)
    assert result.kept == [b"fine@example.com"] and dict(result.removed) == {"manual": 1}


def test_opt_in_topics_keep_only_subscribers() -> None:
    allow = frozenset({b"yes@example.com"})
    screen = Screen(
        Blocklist({}, {}, allow, frozenset({HASHER.hash("hashed@example.com")})), HASHER
    )
    result = screen.chunk(b"yes@example.com\nno@example.com\nhashed@example.com\n", 1)
    assert result.kept == [b"yes@example.com", b"hashed@example.com"]
    assert dict(result.removed) == {"not_subscribed": 1}


def _run_filter(adieu: Adieu, path: Path, workers: int | None = None) -> tuple[bytes, FilterReport]:
    out = io.BytesIO()
    with path.open("rb") as source:
        report = lists.filter_file(adieu.policy, source, out, workers=workers)
    return out.getvalue(), report


def test_parallel_workers_write_exactly_what_one_process_writes(
    sqlite_adieu: Adieu, tmp_path: Path
) -> None:
    for i in range(0, 3000, 7):
        sqlite_adieu.ledger.unsubscribe(f"user{i}@example.com", channel=Channel.CLI)
    lines = [f"User{i}@Example.com" if i % 5 else f"user{i}@example.com" for i in range(3000)]
    lines[10] = "broken@"
    lines[2500] = "also broken"
    path = tmp_path / "list.txt"
    path.write_text("email\n" + "\n".join(lines) + "\n")
    one, one_report = _run_filter(sqlite_adieu, path, workers=1)
    three, three_report = _run_filter(sqlite_adieu, path, workers=3)
    assert one == three
    assert one.startswith(b"email\nUser1@Example.com\n")
    assert one_report == three_report
    assert three_report.invalid == [(12, "broken@"), (2502, "also broken")]
    assert three_report.removed == {"unsubscribed": len(range(0, 3000, 7))}


def test_filter_respects_pause_and_frequency_cap(sqlite_adieu: Adieu, tmp_path: Path) -> None:
    ledger = sqlite_adieu.ledger
    now = ledger.now()
    ledger.set_preferences("paused@example.com", paused_until=now + timedelta(days=30))
    ledger.set_preferences("weekly@example.com", frequency=Frequency.WEEKLY)
    ledger.record_send("weekly@example.com", at=now - timedelta(days=2))
    ledger.set_preferences("monthly@example.com", frequency=Frequency.MONTHLY)
    ledger.record_send("monthly@example.com", at=now - timedelta(days=40))
    path = tmp_path / "list.txt"
    path.write_text("paused@example.com\nweekly@example.com\nmonthly@example.com\n")
    out, report = _run_filter(sqlite_adieu, path)
    assert out == b"monthly@example.com\n"
    assert report.removed == {"paused": 1, "frequency_cap": 1}


@pytest.mark.parametrize(
    "content", [b"\xef\xbb\xbfa@example.com\nb@example.com", b"a@example.com\nb@example.com"]
)
def test_bom_and_missing_final_newline(sqlite_adieu: Adieu, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "list.txt"
    path.write_bytes(content)
    out, report = _run_filter(sqlite_adieu, path)
    assert out.removeprefix(b"\xef\xbb\xbf") == b"a@example.com\nb@example.com\n"
    assert report.kept == 2 and not report.invalid


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_line, max_size=30))
def test_invalid_is_a_reason_only_for_non_addresses(sqlite_adieu: Adieu, lines: list[str]) -> None:
    screen = sqlite_adieu.policy.screen()
    for line in lines:
        assert (screen.reason(line) == INVALID) == (canonical_or_none(line) is None)


_plain_local = st.text(alphabet="abc019.+_-!'", min_size=1, max_size=70)
_plain_domain = st.sampled_from(
    [
        "example.com",
        "bounce.org",
        "a.b.c.de",
        "x--y.com",
        "-x.com",
        "x-.com",
        "test",
        "site.test",
        "b.c1",
        "mail.xn--p1ai",
        "a..b",
        "ab.c-d.ef",
        "localhost",
        "q.local",
        "9.io",
        "x" * 64 + ".com",
    ]
)


@settings(max_examples=400)
@given(
    st.lists(
        st.builds(lambda local, domain: f"{local}@{domain}", _plain_local, _plain_domain),
        min_size=1,
        max_size=8,
    )
)
def test_fast_path_edge_cases_agree_with_the_exact_rules(lines: list[str]) -> None:
    screen = Screen(Blocklist(dict(BLOCKED), {}), HASHER)
    result = screen.chunk("".join(f"{line}\n" for line in lines).encode(), 1)
    kept, removed, invalid = expected(lines)
    assert [k.decode() for k in result.kept] == kept
    assert dict(result.removed) == removed
    assert [n for n, _ in result.invalid] == invalid
