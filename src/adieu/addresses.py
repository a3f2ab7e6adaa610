"""Email addresses: parse, canonical form, masking for display, keyed hash.

The canonical form (trimmed, lower-cased, domain in Unicode) is what the ledger
matches on. The keyed hash of the canonical form is the ledger's key, so an
erased address stays suppressed without being kept (GDPR, docs/ARCHITECTURE.md "Storage").
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

from adieu.errors import InvalidAddress
from adieu.secret import KeyedHash

# email-validator's list of special-use domains (RFC 6761) that it refuses.
_SPECIAL_USE = ("arpa", "invalid", "local", "localhost", "onion", "test")

# A fast path for the overwhelmingly common case: a lower-cased ASCII dot-atom
# local part and an ASCII host name. Everything it accepts, email-validator
# accepts with the same canonical form (a property test checks this); anything
# else goes to email-validator. It keeps bulk work (filter, import) fast.
_ATEXT = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_FAST = re.compile(
    rf"(?!.*--)(?=.{{1,64}}@)(?=.{{3,254}}$){_ATEXT}+(?:\.{_ATEXT}+)*"
    rf"@(?:{_LABEL}\.)+(?!(?:{'|'.join(_SPECIAL_USE)})$)[a-z](?:[a-z0-9-]{{0,61}}[a-z])?"
)
_fast_match = _FAST.fullmatch


def canonical(raw: str) -> str:
    """Return the canonical form of ``raw`` or raise :class:`InvalidAddress`.

    Syntax only, no DNS. IDN domains and internationalised local parts are
    accepted (SMTPUTF8).
    """
    candidate = raw.strip().lower()
    if _fast_match(candidate):
        return candidate
    return _canonical_slow(raw)


def canonical_or_none(raw: str) -> str | None:
    """Like :func:`canonical`, but ``None`` for an invalid address (bulk paths)."""
    candidate = raw.strip().lower()
    if _fast_match(candidate):
        return candidate
    try:
        return _canonical_slow(raw)
    except InvalidAddress:
        return None


def _canonical_slow(raw: str) -> str:
    text = raw.strip()
    if not text or len(text) > 320 or "\x00" in text:
        raise InvalidAddress("That is not a valid email address.")
    # Imported here: the fast path above serves nearly every address, and
    # email-validator costs about 25 ms to import (once per pipe-transport run).
    from email_validator import EmailNotValidError, validate_email

    try:
        result = validate_email(text, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise InvalidAddress(f"That is not a valid email address: {exc}") from None
    return unicodedata.normalize("NFC", result.normalized.lower())


Display = Literal["mask", "full", "hash"]


def mask(address: str) -> str:
    """``jane@example.com`` → ``j•••@example.com`` (R4: safe on a forwarded mail)."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}•••@{domain}"


#: Something shaped like an address inside free text (a diagnostic, a raw
#: message): wide on purpose, since it only finds what to mask or look up.
ADDRESS_IN_TEXT = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)


def mask_all(text: str) -> str:
    """Every address-shaped piece of ``text`` masked (for what is kept about
    an erased person: they are never stored in the clear again)."""
    return ADDRESS_IN_TEXT.sub(lambda m: mask(m.group(0)), text)


def addresses_in(raw: bytes, limit: int = 200) -> list[str]:
    """The distinct canonical addresses named in a raw message, at most ``limit``."""
    found: dict[str, None] = {}
    text = raw.decode("utf-8", "replace")
    for match in ADDRESS_IN_TEXT.finditer(text):
        address = canonical_or_none(match.group(0))
        if address is not None:
            found.setdefault(address)
            if len(found) >= limit:
                break
    return list(found)


class AddressHasher:
    """HMAC-SHA256 of the canonical address under the installation's hash key
    (prepared once: ``KeyedHash``; the ledger hashes on every lookup)."""

    __slots__ = ("_keyed",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the address hash key must be at least 16 bytes")
        self._keyed = KeyedHash(key)

    def hash(self, canonical_address: str) -> bytes:
        return self._keyed.digest(canonical_address.encode("utf-8"))

    def display(self, canonical_address: str, how: Display = "mask") -> str:
        """The address as pages show it (R4): masked (default), full, or hashed."""
        if how == "full":
            return canonical_address
        if how == "hash":
            return "#" + self.hash(canonical_address).hex()[:12]
        return mask(canonical_address)
