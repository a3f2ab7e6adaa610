from __future__ import annotations

import base64
import contextlib
import os
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adieu.errors import InvalidToken
from adieu.tokens import ALL, TokenCodec

KEY = bytes(range(32))
codec = TokenCodec({1: KEY})

addresses = st.builds(
    lambda local, domain: f"{local}@{domain}.com",
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzåäö0123456789._+", min_size=1, max_size=40),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=20),
)
scopes = st.one_of(st.just(ALL), st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,20}", fullmatch=True))
campaigns = st.one_of(
    st.none(),
    st.text(
        alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FFF, exclude_categories=["Cs"]),
        min_size=1,
        max_size=30,
    ).filter(str.isprintable),
)
locales = st.one_of(st.none(), st.sampled_from(["en", "sv", "pt-BR", "ja", "de"]))


@settings(max_examples=300)
@given(addresses, scopes, campaigns, locales)
def test_round_trip(address: str, scope: str, campaign: str | None, locale: str | None) -> None:
    issued = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    token = codec.mint(address, scope, campaign, locale, issued_at=issued)
    opened = codec.open(token)
    assert (opened.address, opened.scope, opened.campaign, opened.locale) == (
        address,
        scope,
        campaign,
        locale,
    )
    assert opened.issued_at == issued
    assert opened.key_id == 1


@settings(max_examples=60)
@given(addresses, scopes, campaigns)
def test_every_single_bit_flip_is_rejected(address: str, scope: str, campaign: str | None) -> None:
    token = codec.mint(address, scope, campaign)
    for index in range(len(token)):
        for bit in range(8):
            flipped = chr(ord(token[index]) ^ (1 << bit))
            mutated = token[:index] + flipped + token[index + 1 :]
            with pytest.raises(InvalidToken):
                codec.open(mutated)


def test_token_is_url_safe_and_hides_the_address() -> None:
    token = codec.mint("jane.doe@example.com", "news", "spring-sale")
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    raw = base64.urlsafe_b64decode(token)
    assert b"jane" not in raw and b"example" not in raw and b"spring" not in raw


def test_typical_token_is_short() -> None:
    address = "firstname.lastname@example.com"
    assert len(address) == 30
    assert len(codec.mint(address)) <= 120
    assert len(codec.mint(address, "news", "2026-11", "sv")) <= 120


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "A",
        "AAAA",
        "not a token",
        "====",
        "A" * 2000,
        "AQAB" * 30,
        base64.urlsafe_b64encode(os.urandom(60)).decode().rstrip("="),
        "ÅÄÖ" * 10,
        "AQAB\x00AAA",
    ],
)
def test_junk_opens_nothing(junk: str) -> None:
    with pytest.raises(InvalidToken):
        codec.open(junk)


def test_truncated_tokens_open_nothing() -> None:
    token = codec.mint("jane@example.com")
    for end in range(len(token)):
        with pytest.raises(InvalidToken):
            codec.open(token[:end])


def test_a_token_from_another_key_ring_opens_nothing() -> None:
    foreign = TokenCodec({1: os.urandom(32)}).mint("jane@example.com")
    with pytest.raises(InvalidToken):
        codec.open(foreign)


def test_rotation_keeps_old_tokens_open_and_mints_with_the_newest() -> None:
    old_token = codec.mint("jane@example.com")
    rotated = TokenCodec({1: KEY, 2: os.urandom(32)})
    assert rotated.open(old_token).key_id == 1
    new_token = rotated.mint("jane@example.com")
    assert rotated.open(new_token).key_id == 2
    with pytest.raises(InvalidToken):
        codec.open(new_token)  # the old ring does not know key 2


@given(st.text(max_size=300))
def test_random_text_never_raises_anything_else(text: str) -> None:
    with contextlib.suppress(InvalidToken):
        codec.open(text)


@given(st.binary(min_size=0, max_size=200))
def test_random_bytes_never_open(raw: bytes) -> None:
    token = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    with pytest.raises(InvalidToken):
        codec.open(token)
