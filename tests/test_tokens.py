from __future__ import annotations

import base64
import contextlib
import os
import string
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adieu.addresses import AddressHasher
from adieu.errors import InvalidToken
from adieu.tokens import (
    ALL,
    COMPACT_LENGTH,
    RETURN_PATH,
    UNSUBSCRIBE,
    CompactPayload,
    TokenCodec,
    TokenPayload,
)

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


# -- compact tokens (mailto and return-path addresses) ---------------------------------------

HASH_KEY = bytes(range(100, 132))
hasher = AddressHasher(HASH_KEY)
LONGEST_TOPIC = "t" * 64
LONGEST_CAMPAIGN = "c" * 100


def _compact(
    address: str = "jane@example.com",
    scope: str = ALL,
    campaign: str | None = None,
    purpose: str = UNSUBSCRIBE,
    on: TokenCodec = codec,
) -> str:
    return on.mint_compact(hasher.hash(address), scope, campaign, purpose=purpose)


@pytest.mark.parametrize("prefix", ["unsubscribe+", "bounces+"])
@pytest.mark.parametrize(
    ("scope", "campaign"),
    [(ALL, None), (LONGEST_TOPIC, None), (ALL, LONGEST_CAMPAIGN), (LONGEST_TOPIC, "é" * 100)],
)
def test_a_compact_local_part_fits_in_64_octets(
    prefix: str, scope: str, campaign: str | None
) -> None:
    address = "a.very.long.local.part.indeed+with.a.tag@" + "sub." * 40 + "example.com"
    token = _compact(address, scope, campaign)
    assert len(token) == COMPACT_LENGTH
    assert len((prefix + token).encode("utf-8")) <= 64  # RFC 5321 §4.5.3.1.1
    assert set(token) <= set("abcdefghijklmnopqrstuvwxyz234567")


def test_a_compact_token_names_its_recipient_scope_and_campaign() -> None:
    issued = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    token = codec.mint_compact(hasher.hash("jane@example.com"), "news", "2026-11", issued_at=issued)
    opened = codec.open_compact(token)
    assert isinstance(opened, CompactPayload)
    assert opened.names(hasher.hash("jane@example.com"))
    assert not opened.names(hasher.hash("john@example.com"))
    assert opened.names_topic("news") and not opened.names_topic("offers")
    assert opened.names_campaign("2026-11") and not opened.names_campaign("2026-12")
    assert (opened.address, opened.campaign, opened.purpose) == ("", None, UNSUBSCRIBE)
    assert opened.issued_at == datetime(2026, 3, 1, tzinfo=UTC)  # the day, not the hour
    assert opened.key_id == 1
    resolved = opened.resolved("jane@example.com", "news", "2026-11")
    assert type(resolved) is TokenPayload and resolved.address == "jane@example.com"
    bare = codec.open_compact(_compact(purpose=RETURN_PATH))
    assert (bare.scope, bare.topic_tag, bare.campaign_tag, bare.purpose) == (
        ALL,
        None,
        None,
        RETURN_PATH,
    )
    assert not bare.names_topic("news") and not bare.names_campaign("2026-11")


@settings(max_examples=100)
@given(addresses, scopes, campaigns)
def test_case_folded_compact_tokens_still_open(
    address: str, scope: str, campaign: str | None
) -> None:
    token = _compact(address, scope, campaign)
    opened = {codec.open_compact(t) for t in (token, token.upper(), token.lower(), token.title())}
    assert len(opened) == 1
    assert codec.open_any(token.upper()) == codec.open_compact(token)


@settings(max_examples=30)
@given(addresses, scopes, campaigns)
def test_every_changed_character_of_a_compact_token_is_rejected(
    address: str, scope: str, campaign: str | None
) -> None:
    token = _compact(address, scope, campaign)
    for index in range(len(token)):
        for other in "abcdefghijklmnopqrstuvwxyz234567":
            if other == token[index]:
                continue
            with pytest.raises(InvalidToken):
                codec.open_compact(token[:index] + other + token[index + 1 :])


def test_truncated_extended_or_foreign_compact_tokens_open_nothing() -> None:
    token = _compact()
    for bad in (token[:-1], token + "a", "a" + token, token[:-8], token.replace("e", "1", 1)):
        with pytest.raises(InvalidToken):
            codec.open_compact(bad)
    foreign = TokenCodec({1: os.urandom(32)}).mint_compact(hasher.hash("jane@example.com"))
    with pytest.raises(InvalidToken):
        codec.open_compact(foreign)
    with pytest.raises(InvalidToken):
        codec.open(token)  # the links' opener takes full tokens only
    forged = base64.b32encode(base64.b32decode(token.upper())[:20] + bytes(10)).decode()
    with pytest.raises(InvalidToken):
        codec.open_compact(forged)  # a well-formed body with a made-up MAC


def test_compact_key_rotation() -> None:
    old_token = _compact()
    second = os.urandom(32)
    rotated = TokenCodec({1: KEY, 2: second})
    assert rotated.open_compact(old_token).key_id == 1
    new_token = _compact(on=rotated)
    assert rotated.open_compact(new_token).key_id == 2
    with pytest.raises(InvalidToken):
        codec.open_compact(new_token)  # the old ring does not know key 2
    with pytest.raises(InvalidToken):
        TokenCodec({2: second}).open_compact(old_token)  # key 1 gone: its tokens are dead


@given(st.text(max_size=300))
def test_random_text_never_raises_anything_but_invalid_token_from_the_compact_opener(
    text: str,
) -> None:
    with contextlib.suppress(InvalidToken):
        codec.open_compact(text)
    with contextlib.suppress(InvalidToken):
        codec.open_any(text)


@given(st.text(alphabet=string.ascii_letters + "234567", min_size=48, max_size=48))
def test_random_base32_never_opens(text: str) -> None:
    with pytest.raises(InvalidToken):
        codec.open_compact(text)


@given(st.binary(min_size=30, max_size=30))
def test_random_compact_bytes_never_open(raw: bytes) -> None:
    with pytest.raises(InvalidToken):
        codec.open_compact(base64.b32encode(raw).decode())
