"""Unsubscribe tokens: opaque, authenticated and stateless (docs/ARCHITECTURE.md "Tokens").

Wire format, base64url without padding::

    version (1 byte) | key id (2 bytes, big-endian) | nonce (12) | AES-GCM(plaintext) + tag (16)

The version and key id are the AEAD's associated data, so changing them breaks
the tag. The plaintext is ``issued-at (uint32 seconds since 2024-01-01)`` then
``locale NUL scope NUL campaign NUL address``, NUL-padded so that the token's
byte length is a multiple of three: then every base64 character carries only
data bits, and flipping any single bit of the token string breaks it.

Minting writes nothing anywhere: a send of ten million messages costs no
ledger writes. The address cannot be read from the URL (links end up in logs).

Compact tokens
--------------

A full token is 100 characters or more, case-sensitive base64url: too long
for the local part of an address (RFC 5321 §4.5.3.1.1 allows 64 octets) and
dead when an MTA folds its case. Addresses Adieu mints (the mailto in
List-Unsubscribe, ``unsubscribe+TOKEN@…``; a per-recipient return path,
``bounces+TOKEN@…``; ``CFBL-Feedback-ID``) carry a compact token instead:
48 characters of lower-case base32 (``a-z2-7``; any case opens), 30 bytes::

    flags (1) | key id (2) | recipient (8) | topic (4) | campaign (3) | day (2) | MAC (10)

- flags: the format (high nibble, 2), what the token is for (bit 0: a return
  path; else an unsubscribe), whether a topic (bit 1) and a campaign (bit 2)
  are named;
- recipient: the first 8 bytes of the address's keyed hash, the ledger's
  ``address_hash`` (HMAC-SHA256 of the canonical address under the hash key;
  :class:`adieu.addresses.AddressHasher`). An address does not fit, so the
  token names its recipient indirectly;
- topic and campaign: the first 4 and 3 bytes of SHA-256 of the topic key and
  the campaign id (zero when not named); they are matched against the topics
  and against the campaigns of the sends recorded to the recipient;
- day: the day it was minted (days since 2024-01-01);
- MAC: HMAC-SHA256 over the first 20 bytes, under a key derived from the
  token key named by the key id (a ring: rotation works as for full tokens),
  cut to 80 bits. Changing any character breaks it: 48 base32 characters are
  exactly 240 bits.

Opening a compact token (:meth:`TokenCodec.open_compact`) checks the MAC and
gives a :class:`CompactPayload`, whose address is not known yet. Who it names
is resolved with the ledger (``adieu.feedback.intake``): the contact whose
keyed hash begins with those 8 bytes; when there is none (a link minted with
no ledger write), an address named in the message itself (the sender's From,
a report's recipient) whose keyed hash begins with them. Nothing else is ever
guessed: a token that names nobody known is kept for review. Only the token
key's holder can mint a token that opens, and only the hash key's holder can
tell which address a prefix belongs to (an address in a message counts only
when its keyed hash begins with the prefix the MAC vouches for). The prefix
is the same in every compact token for one person (as the address in ``To``
is); it says nothing about the address to anyone without the hash key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from adieu.errors import InvalidAddress, InvalidInput, InvalidToken
from adieu.scopes import ALL as ALL
from adieu.scopes import TOPIC_KEY as TOPIC_KEY
from adieu.scopes import check_campaign as check_campaign

VERSION = 1
_EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z
_EPOCH_DT = datetime.fromtimestamp(_EPOCH, UTC)
_HEADER = struct.Struct(">BH")
_IAT = struct.Struct(">I")
_NONCE = 12
_TAG = 16
_MIN_RAW = _HEADER.size + _NONCE + _IAT.size + 3 + 3 + _TAG
_MAX_CHARS = 1024
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")

_LOCALE = re.compile(r"[A-Za-z]{2,3}(?:[_-][A-Za-z0-9]{2,8}){0,3}")

#: What a compact token is for: an unsubscribe (the mailto, CFBL-Feedback-ID)
#: or a return path.
UNSUBSCRIBE = "unsubscribe"
RETURN_PATH = "return_path"
#: A compact token's length in characters, and how many bytes of the
#: recipient's keyed hash it carries.
COMPACT_LENGTH = 48
COMPACT_PREFIX = 8
_COMPACT_VERSION = 2
_COMPACT = struct.Struct(">BH8s4s3sH")
_COMPACT_MAC = 10
_FOR_RETURN_PATH, _HAS_TOPIC, _HAS_CAMPAIGN = 1, 2, 4
_NO_TOPIC = bytes(4)
_NO_CAMPAIGN = bytes(3)
_COMPACT_TEXT = re.compile(r"[A-Za-z2-7]{48}")
_MAC_LABEL = b"adieu compact token mac"


@dataclass(frozen=True, slots=True)
class TokenPayload:
    address: str
    scope: str  # a topic key, or "all"
    campaign: str | None
    locale: str | None
    issued_at: datetime
    key_id: int


def topic_tag_of(key: str) -> bytes:
    """The 4 bytes a compact token names a topic by."""
    return hashlib.sha256(b"adieu topic\x00" + key.encode("utf-8")).digest()[:4]


def campaign_tag_of(campaign: str) -> bytes:
    """The 3 bytes a compact token names a campaign by."""
    return hashlib.sha256(b"adieu campaign\x00" + campaign.encode("utf-8")).digest()[:3]


@dataclass(frozen=True, slots=True)
class CompactPayload(TokenPayload):
    """An opened compact token (see the module's docstring). Its recipient is
    named by the first bytes of their keyed hash, so ``address`` is empty
    until the ledger resolves it (:meth:`resolved`); ``scope`` is ``all`` or,
    for a topic, ``#`` and the topic's tag in hex; ``campaign`` is ``None``."""

    purpose: str  # UNSUBSCRIBE or RETURN_PATH
    address_prefix: bytes
    topic_tag: bytes | None
    campaign_tag: bytes | None

    def names(self, address_hash: bytes) -> bool:
        """Whether this token names the address with this keyed hash."""
        return address_hash[:COMPACT_PREFIX] == self.address_prefix

    def names_topic(self, key: str) -> bool:
        return self.topic_tag is not None and topic_tag_of(key) == self.topic_tag

    def names_campaign(self, campaign: str) -> bool:
        return self.campaign_tag is not None and campaign_tag_of(campaign) == self.campaign_tag

    def resolved(self, address: str, scope: str, campaign: str | None) -> TokenPayload:
        """The full payload, once the recipient (and topic, campaign) are known."""
        return TokenPayload(
            address=address,
            scope=scope,
            campaign=campaign,
            locale=None,
            issued_at=self.issued_at,
            key_id=self.key_id,
        )


def check_scope(scope: str) -> str:
    if scope != ALL and not TOPIC_KEY.fullmatch(scope):
        raise InvalidInput(
            "A topic key is 1-64 lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )
    return scope


def check_locale(locale: str | None) -> str | None:
    if locale is None or locale == "":
        return None
    if not _LOCALE.fullmatch(locale):
        raise InvalidInput(f"{locale!r} is not a language tag such as 'en' or 'pt-BR'.")
    return locale


class TokenCodec:
    """Mints and opens tokens with a key ring: the newest key mints, all keys open."""

    __slots__ = ("_aead", "_current_aead", "_current_id", "_header", "_mac_keys")

    def __init__(self, keys: Mapping[int, bytes]) -> None:
        if not keys:
            raise ValueError("a token codec needs at least one key")
        self._aead = {kid: AESGCM(key) for kid, key in keys.items()}
        self._current_id = max(keys)
        self._current_aead = self._aead[self._current_id]
        self._header = _HEADER.pack(VERSION, self._current_id)
        # Compact tokens are MACed under a key of their own, derived from each token key.
        self._mac_keys = {kid: hmac.digest(key, _MAC_LABEL, "sha256") for kid, key in keys.items()}

    def mint(
        self,
        address: str,
        scope: str = ALL,
        campaign: str | None = None,
        locale: str | None = None,
        issued_at: datetime | None = None,
    ) -> str:
        """A token for a canonical ``address`` (see :func:`adieu.addresses.canonical`).

        Scope, campaign and locale must be valid (see the ``check_*`` helpers);
        this hot path does not check them again, only the NUL separator.
        """
        seconds = int((issued_at.timestamp() if issued_at else time.time()) - _EPOCH)
        body = "\x00".join(
            (locale or "", "" if scope == ALL else scope, campaign or "", address)
        ).encode("utf-8")
        if body.count(0) != 3 or not address:
            raise InvalidAddress("An address cannot be empty or hold a NUL character.")
        plaintext = _IAT.pack(max(seconds, 0)) + body
        # header + nonce + tag = 31 bytes; pad so the total is a multiple of 3.
        pad = -(len(plaintext) + 31) % 3
        if pad:
            plaintext += b"\x00" * pad
        nonce = os.urandom(_NONCE)
        raw = self._header + nonce + self._current_aead.encrypt(nonce, plaintext, self._header)
        return binascii.b2a_base64(raw, newline=False).translate(_TO_URLSAFE).decode("ascii")

    def open(self, token: str) -> TokenPayload:
        """The payload of a valid token; :class:`InvalidToken` for anything else."""
        if (
            not isinstance(token, str)
            or len(token) % 4
            or len(token) > _MAX_CHARS
            or not _B64URL.fullmatch(token)
        ):
            raise InvalidToken()
        try:
            raw = binascii.a2b_base64(
                token.encode("ascii").translate(_TO_STANDARD), strict_mode=True
            )
        except binascii.Error:
            raise InvalidToken() from None
        if len(raw) < _MIN_RAW:
            raise InvalidToken()
        version, kid = _HEADER.unpack_from(raw)
        aead = self._aead.get(kid)
        if version != VERSION or aead is None:
            raise InvalidToken()
        header = raw[: _HEADER.size]
        nonce = raw[_HEADER.size : _HEADER.size + _NONCE]
        try:
            plaintext = aead.decrypt(nonce, raw[_HEADER.size + _NONCE :], header)
        except InvalidTag:
            raise InvalidToken() from None
        (seconds,) = _IAT.unpack_from(plaintext)
        try:
            locale, scope, campaign, address = (
                plaintext[_IAT.size :].rstrip(b"\x00").decode("utf-8").split("\x00")
            )
        except ValueError:  # only a key holder could mint this; still, open nothing
            raise InvalidToken() from None
        return TokenPayload(
            address=address,
            scope=scope or ALL,
            campaign=campaign or None,
            locale=locale or None,
            issued_at=_EPOCH_DT + timedelta(seconds=seconds),
            key_id=kid,
        )

    def mint_compact(
        self,
        address_hash: bytes,
        scope: str = ALL,
        campaign: str | None = None,
        *,
        purpose: str = UNSUBSCRIBE,
        issued_at: datetime | None = None,
    ) -> str:
        """A compact token (48 lower-case base32 characters) for the address
        whose keyed hash is ``address_hash`` (``AddressHasher.hash`` of the
        canonical address). Scope and campaign must be valid, as for :meth:`mint`."""
        if purpose not in (UNSUBSCRIBE, RETURN_PATH) or len(address_hash) < COMPACT_PREFIX:
            raise ValueError("a compact token needs a purpose and a keyed hash")
        flags = _COMPACT_VERSION << 4 | (_FOR_RETURN_PATH if purpose == RETURN_PATH else 0)
        topic, tagged_campaign = _NO_TOPIC, _NO_CAMPAIGN
        if scope != ALL:
            flags |= _HAS_TOPIC
            topic = topic_tag_of(scope)
        if campaign:
            flags |= _HAS_CAMPAIGN
            tagged_campaign = campaign_tag_of(campaign)
        seconds = (issued_at.timestamp() if issued_at else time.time()) - _EPOCH
        day = min(max(int(seconds // 86_400), 0), 0xFFFF)
        body = _COMPACT.pack(
            flags, self._current_id, address_hash[:COMPACT_PREFIX], topic, tagged_campaign, day
        )
        mac = hmac.digest(self._mac_keys[self._current_id], body, "sha256")[:_COMPACT_MAC]
        return base64.b32encode(body + mac).decode("ascii").lower()

    def open_compact(self, token: str) -> CompactPayload:
        """The payload of a valid compact token, in any case; :class:`InvalidToken`
        for anything else."""
        if not isinstance(token, str) or not _COMPACT_TEXT.fullmatch(token):
            raise InvalidToken()
        raw = base64.b32decode(token.upper())  # 48 base32 characters: exactly 30 bytes
        flags, kid, prefix, topic, tagged_campaign, day = _COMPACT.unpack_from(raw)
        key = self._mac_keys.get(kid)
        if key is None or flags >> 4 != _COMPACT_VERSION or flags & 0x08:
            raise InvalidToken()
        expected = hmac.digest(key, raw[: _COMPACT.size], "sha256")[:_COMPACT_MAC]
        if not hmac.compare_digest(expected, raw[_COMPACT.size :]):
            raise InvalidToken()
        has_topic, has_campaign = bool(flags & _HAS_TOPIC), bool(flags & _HAS_CAMPAIGN)
        if (not has_topic and topic != _NO_TOPIC) or (
            not has_campaign and tagged_campaign != _NO_CAMPAIGN
        ):  # only a key holder could mint this; still, open nothing
            raise InvalidToken()
        return CompactPayload(
            address="",
            scope="#" + topic.hex() if has_topic else ALL,
            campaign=None,
            locale=None,
            issued_at=_EPOCH_DT + timedelta(days=day),
            key_id=kid,
            purpose=RETURN_PATH if flags & _FOR_RETURN_PATH else UNSUBSCRIBE,
            address_prefix=prefix,
            topic_tag=topic if has_topic else None,
            campaign_tag=tagged_campaign if has_campaign else None,
        )

    def open_any(self, token: str) -> TokenPayload:
        """A full token's payload, or a compact token's (:class:`CompactPayload`):
        for the places both may stand (mailto and return-path addresses)."""
        if isinstance(token, str) and len(token) == COMPACT_LENGTH:
            return self.open_compact(token)  # a full token is never this short
        return self.open(token)
