"""What the readers of returned mail share: what a reader reports about one
recipient, and the addresses a report and its returned original name (the
MIME helpers are in ``adieu.feedback.mime``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from adieu.addresses import ADDRESS_IN_TEXT, canonical_or_none


@dataclass(frozen=True, slots=True)
class Reported:
    """One recipient a report names, and what it says about them."""

    address: str
    kind: str  # a FindingKind value
    recipient_from: str  # which field or line named the address
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reading:
    """What a reader made of a message."""

    kind: str  # a MessageKind value
    reported: tuple[Reported, ...] = ()
    note: str = ""
    original: Message | None = None  # the returned original, where tokens are looked for
    finding: str = ""  # for a complaint naming nobody: the finding its type gives
    details: dict[str, Any] = field(default_factory=dict)  # about the message as a whole


# Compiled once: the email parser's boundary patterns crowd re's own cache.
_MASKED = re.compile(r"[x*#._-]+")
_RECEIVED_FOR = re.compile(r"\bfor\s+<?([^\s<>;]+@[^\s<>;]+)>?")


def shown(value: str) -> str:
    """A value from a report, fit for a note: short, any address in it masked."""
    from adieu.addresses import mask_all

    return mask_all(value)[:60]


# -- addresses -----------------------------------------------------------------------------------


def addresses_of(*values: object) -> list[str]:
    """The valid addresses in header values (``Name <a@b>, c@d``), in order."""
    found: list[str] = []
    for value in values:
        text = str(value) if value else ""
        if "@" not in text:
            continue
        for match in ADDRESS_IN_TEXT.finditer(text):
            address = canonical_or_none(match.group(0).strip(".-"))
            if address and address not in found:
                found.append(address)
    return found


def placeholder(address: str) -> bool:
    """A provider's stand-in for a withheld address (``redacted@…``, ``xxxx@…``)."""
    from adieu.feedback import markers

    local = address.partition("@")[0].lower()
    if local in markers.PLACEHOLDERS or "redacted" in local or "undisclosed" in local:
        return True
    return bool(_MASKED.fullmatch(local))


def senders_of(message: Message, original: Message | None) -> set[str]:
    """Addresses that are never a recipient of the original: the report's own
    sender and recipient, the original's sender and reply addresses."""
    found = set(
        addresses_of(
            message.get("From"),
            message.get("Sender"),
            message.get("Reply-To"),
            message.get("To"),
            message.get("Return-Path"),
            message.get("Delivered-To"),
            message.get("X-Original-To"),
        )
    )
    if original is not None:
        found.update(
            addresses_of(
                original.get("From"),
                original.get("Sender"),
                original.get("Reply-To"),
                original.get("Return-Path"),
                original.get("Errors-To"),
            )
        )
    return found


def recipients_of(original: Message | None) -> list[str]:
    """Whom the returned original was addressed to, as far as its header
    fields say (``To``, ``Cc``, the ``for <…>`` of its ``Received`` fields)."""
    if original is None:
        return []
    found = addresses_of(*original.get_all("To", []), *original.get_all("Cc", []))
    for received in original.get_all("Received", []):
        match = _RECEIVED_FOR.search(str(received))
        if match:
            address = canonical_or_none(match.group(1))
            if address and address not in found:
                found.append(address)
    return [a for a in found if not placeholder(a)]
