from __future__ import annotations

import hmac

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from adieu.addresses import AddressHasher, _fast_match, canonical, canonical_or_none, mask
from adieu.errors import InvalidAddress
from adieu.secret import KeyedHash


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Jane.Doe@Example.COM", "jane.doe@example.com"),
        ("  jane+news@example.com\t", "jane+news@example.com"),
        ("JANE@BÜCHER.DE", "jane@bücher.de"),
        ("jane@xn--bcher-kva.de", "jane@bücher.de"),
        ("用户@例子.广告", "用户@例子.广告"),
        ("Ünïcödé@example.com", "ünïcödé@example.com"),
        ("o'brien@example.ie", "o'brien@example.ie"),
    ],
)
def test_canonical_form_matches_what_a_person_means(raw: str, expected: str) -> None:
    assert canonical(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "jane",
        "jane@",
        "@example.com",
        "jane@@example.com",
        "jane@example",
        "jane..doe@example.com",
        "jane@exa mple.com",
        "jane@localhost",
        "a@b.test",
        "x" * 250 + "@a.com",
        "jane@example.com\x00",
    ],
)
def test_invalid_addresses_are_refused_with_a_clear_error(raw: str) -> None:
    with pytest.raises(InvalidAddress, match="not a valid email address"):
        canonical(raw)
    assert canonical_or_none(raw) is None


def test_mask_shows_first_letter_and_domain() -> None:
    assert mask("jane@example.com") == "j•••@example.com"


def test_hash_is_standard_hmac_sha256_of_the_canonical_form() -> None:
    key = b"k" * 32
    hasher = AddressHasher(key)
    for address in ("jane@example.com", "用户@例子.广告"):
        assert hasher.hash(address) == hmac.digest(key, address.encode(), "sha256")
    long_key = b"L" * 100
    assert AddressHasher(long_key).hash("a@b.co") == hmac.digest(long_key, b"a@b.co", "sha256")


@given(st.binary(min_size=0, max_size=200), st.binary(max_size=300))
def test_a_keyed_hash_is_the_standard_libraries_hmac_sha256(key: bytes, data: bytes) -> None:
    """The prepared HMAC (addresses, CSRF values) for keys shorter than,
    exactly and longer than SHA-256's block."""
    assert KeyedHash(key).digest(data) == hmac.digest(key, data, "sha256")


def test_hash_display_never_shows_the_address() -> None:
    hasher = AddressHasher(b"k" * 32)
    shown = hasher.display("jane@example.com", "hash")
    assert "jane" not in shown and "example" not in shown and shown.startswith("#")
    assert hasher.display("jane@example.com", "full") == "jane@example.com"
    assert hasher.display("jane@example.com") == "j•••@example.com"


_atext = "abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+/=?^_`{|}~-."
_address_like = st.builds(
    lambda local, labels: f"{local}@{'.'.join(labels)}",
    st.text(alphabet=_atext, min_size=1, max_size=70),
    st.lists(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12),
        min_size=1,
        max_size=4,
    ),
)


@settings(max_examples=2000)
@given(st.one_of(_address_like, st.text(max_size=80)))
def test_fast_path_agrees_with_email_validator(raw: str) -> None:
    """What the fast path accepts, email-validator accepts with the same canonical form."""
    candidate = raw.strip().lower()
    if _fast_match(candidate):
        result = validate_email(candidate, check_deliverability=False, allow_smtputf8=True)
        assert result.normalized.lower() == candidate


@given(st.text(max_size=120))
def test_parsing_never_raises_anything_but_invalid_address(raw: str) -> None:
    try:
        result = canonical(raw)
    except InvalidAddress:
        return
    assert result == result.strip()
    assert "@" in result
    # the canonical form is a fixed point
    assert canonical(result) == result


@given(_address_like)
def test_valid_addresses_round_trip(raw: str) -> None:
    try:
        validate_email(raw, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError:
        assert canonical_or_none(raw) is None
        return
    assert canonical(raw) == canonical(raw.upper())
