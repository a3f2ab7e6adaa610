"""Screening many addresses at once against a loaded blocklist (``adieu filter``).

The blocklist is read from the ledger once; after that an address costs one
dictionary lookup. For plain lists (one address a line) whole chunks of the
file are checked at once with byte-level operations: a chunk whose every line
is a plain lower-case ASCII address is validated by a few C-speed passes
(character set, one ``@`` per line, the shape around ``@``, the domain's
grammar), and only chunks that fail those checks are looked at line by line,
with the same rules as :func:`adieu.addresses.canonical`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import is_

from adieu.addresses import AddressHasher, canonical_or_none
from adieu.ledger.records import Blocklist

INVALID = "invalid"

_ATEXT = b"abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+/=?^_`{|}~-"
_ALLOWED = _ATEXT + b".@\n"  # everything else sends a chunk down the slow path
_NOT_SEPARATOR = _ATEXT + b"."
_LABEL = rb"[a-z0-9]+(?:-[a-z0-9]+)*"
_SPECIAL_USE = rb"(?:arpa|invalid|local|localhost|onion|test)"
# A domain of labels without leading, trailing or double hyphens, at least one
# dot, and a last label that ends in a letter and is not special-use.
_DOMAIN = re.compile(
    rb"(?:" + _LABEL + rb"\.)+(?!" + _SPECIAL_USE + rb"\Z)(?:[a-z0-9]+-)*[a-z0-9]*[a-z]"
)
_DOMAINS = re.compile(rb"@([^\n]*)")
# An empty local part, or one that ends in a dot.
_BAD_BEFORE_AT = re.compile(rb"@(?<=[.\n]@)")
_LONGEST_PLAIN = 64  # longer lines may break a length limit: checked one by one


@dataclass(slots=True)
class ChunkResult:
    kept: list[bytes]
    lines: int
    removed: Counter[str] = field(default_factory=Counter)
    invalid: list[tuple[int, str]] = field(default_factory=list)
    invalid_count: int = 0


class Screen:
    """Answers "may this address be mailed?" for many addresses, fast."""

    def __init__(self, blocklist: Blocklist, hasher: AddressHasher) -> None:
        self._clear = blocklist.clear
        self._hashed = blocklist.hashed
        self._allow = blocklist.allow_only
        self._allow_hashed = blocklist.allow_only_hashed or frozenset()
        self._digest = hasher.hash
        # Lookups beyond the clear-text dictionary are needed only when erased
        # contacts (known by hash alone) or an opt-in topic are involved.
        self._simple = not self._hashed and self._allow is None
        self._domains: dict[bytes, bool] = {}

    def reason(self, raw: str) -> str | None:
        """Why ``raw`` may not be mailed (``INVALID`` if not an address), or None."""
        quick = self._clear.get(raw.strip().lower().encode("utf-8", "surrogateescape"))
        if quick is not None:
            return quick
        canon = canonical_or_none(raw)
        if canon is None:
            return INVALID
        return self._reason_canonical(canon.encode())

    def _reason_canonical(self, key: bytes) -> str | None:
        why = self._clear.get(key)
        if why is not None or self._simple:
            return why
        if self._hashed:
            why = self._hashed.get(self._digest(key.decode()))
            if why is not None:
                return why
        if (
            self._allow is not None
            and key not in self._allow
            and not (self._allow_hashed and self._digest(key.decode()) in self._allow_hashed)
        ):
            return "not_subscribed"
        return None

    def chunk(self, data: bytes, first_line: int, max_listed: int = 100) -> ChunkResult:
        """Screen whole lines (``data`` ends with a newline); keep rows as they are."""
        low = data.lower()
        keys = low.split(b"\n")
        keys.pop()
        crlf = b"\r" in low
        if crlf:
            keys = [k.rstrip(b"\r") for k in keys]
        if data.isascii() and self._plain(low.replace(b"\r\n", b"\n") if crlf else low, len(keys)):
            if max(map(len, keys), default=0) > _LONGEST_PLAIN:
                return self._slow(data, first_line, max_listed)
            if self._simple:
                reasons = list(map(self._clear.get, keys))
            else:
                reasons = [self._reason_canonical(k) for k in keys]
            originals = keys if not crlf and low == data else data.split(b"\n")
            kept = list(compress(originals, map(is_, reasons, repeat(None))))
            return ChunkResult(kept=kept, lines=len(keys), removed=Counter(filter(None, reasons)))
        return self._slow(data, first_line, max_listed)

    def _slow(self, data: bytes, first_line: int, max_listed: int) -> ChunkResult:
        lines = data.split(b"\n")
        lines.pop()
        result = ChunkResult(kept=[], lines=len(lines))
        for offset, raw in enumerate(lines):
            text = raw.decode("utf-8", "surrogateescape")
            if not text.strip():
                continue  # a blank line holds no address; it is dropped silently
            why = self.reason(text)
            if why is None:
                result.kept.append(raw)
            elif why == INVALID:
                result.invalid_count += 1
                if len(result.invalid) < max_listed:
                    result.invalid.append((first_line + offset, text.strip()[:80]))
            else:
                result.removed[why] += 1
        return result

    def _plain(self, low: bytes, lines: int) -> bool:
        """True when every line is a plain, valid, lower-case ASCII address."""
        if low.translate(None, _ALLOWED) or low.translate(None, _NOT_SEPARATOR) != b"@\n" * lines:
            return False  # a character outside addresses, or not one "@" a line
        if low.startswith((b".", b"@")) or b".." in low or b"\n." in low:
            return False
        if _BAD_BEFORE_AT.search(low) is not None:
            return False
        known = self._domains
        for domain in set(_DOMAINS.findall(low)):
            ok = known.get(domain)
            if ok is None:
                ok = known[domain] = _domain_ok(domain)
            if not ok:
                return False
        return True


def _domain_ok(domain: bytes) -> bool:
    return (
        len(domain) <= 253
        and _DOMAIN.fullmatch(domain) is not None
        and all(len(label) <= 63 for label in domain.split(b"."))
    )
