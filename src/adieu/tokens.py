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
"""

from __future__ import annotations

import binascii
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


@dataclass(frozen=True, slots=True)
class TokenPayload:
    address: str
    scope: str  # a topic key, or "all"
    campaign: str | None
    locale: str | None
    issued_at: datetime
    key_id: int


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

    __slots__ = ("_aead", "_current_aead", "_current_id", "_header")

    def __init__(self, keys: Mapping[int, bytes]) -> None:
        if not keys:
            raise ValueError("a token codec needs at least one key")
        self._aead = {kid: AESGCM(key) for kid, key in keys.items()}
        self._current_id = max(keys)
        self._current_aead = self._aead[self._current_id]
        self._header = _HEADER.pack(VERSION, self._current_id)

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
