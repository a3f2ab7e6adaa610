"""Delivery status notifications (RFC 3464), wherever their
``message/delivery-status`` part sits: in ``multipart/report``, or in the
``multipart/mixed`` that gateways, list servers and OpenSMTPD send.

Each per-recipient block is one recipient, judged on its own fields:
``Final-Recipient`` names it, or, when that is not a usable address (a
quoted or display-name form, an internal host, a directory name),
``Original-Recipient``; failing both, the one address ``X-Failed-Recipients``
or the report's text gives that no other block claimed, or the returned
original's recipient whose local part matches. Its ``Status``, ``Action`` and
``Diagnostic-Code`` (unfolded) decide, and the report's lines that name it
only when those say nothing of the cause.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

from adieu.addresses import canonical_or_none
from adieu.feedback.mime import (
    DSN_TYPES,
    encoded_report_text,
    header_text,
    part_text,
    typed_parts,
)

# Compiled once: the email parser's boundary patterns crowd re's own cache.
_FIELD = re.compile(r"^([A-Za-z][\w-]*)\s*:\s*(.*)$")
_TYPE = re.compile(r"\s*[\w.-]{1,30}\s*")
_ANGLED = re.compile(r"<([^<>\s]*@[^<>\s]*)>")
_INSIDE = re.compile(r"<([^<>]*)>")


@dataclass(frozen=True, slots=True)
class Block:
    """One per-recipient block of a DSN."""

    fields: dict[str, str]

    def get(self, name: str) -> str:
        return self.fields.get(name, "")

    @property
    def diagnostic(self) -> str:
        """The Diagnostic-Code's text (its type, ``smtp;``, taken off), and any
        extension field that carries a reason."""
        texts = [_without_type(self.get("diagnostic-code"))]
        texts.extend(
            v
            for k, v in self.fields.items()
            if k.startswith("x-") and any(w in k for w in ("diagnostic", "reason", "supplementary"))
        )
        return "\n".join(t for t in texts if t)


def _without_type(value: str) -> str:
    kind, sep, rest = value.partition(";")
    if sep and _TYPE.fullmatch(kind):
        return rest.strip()
    return value.strip()


def blocks(message: Message) -> list[Block]:
    """The per-recipient blocks of every delivery-status part the message has."""
    found: list[Block] = []
    for part, kind in typed_parts(message):
        if kind not in DSN_TYPES:
            continue
        for fields in field_groups(part):
            if any(k in fields for k in ("final-recipient", "original-recipient", "action")):
                found.append(Block(fields))
    return found


def field_groups(part: Message) -> list[dict[str, str]]:
    """A report part's groups of fields (a DSN's, an MDN's), unfolded."""
    return _groups(_text_of_status(part))


def _text_of_status(part: Message) -> str:
    encoded = encoded_report_text(part)
    if encoded is not None:
        return encoded
    payload = part.get_payload()
    if isinstance(payload, list):  # the parser made each block a header-only message
        pieces = []
        for block in payload:
            if not isinstance(block, Message):
                continue
            lines = [f"{k}: {header_text(v)}" for k, v in block.items()]
            body = block.get_payload()
            if isinstance(body, str) and body.strip():
                lines.append(body)
            pieces.append("\n".join(lines))
        return "\n\n".join(pieces)
    return part_text(part)


def _groups(text: str) -> list[dict[str, str]]:
    """Blank-line separated groups of fields, names in lower case, values
    unfolded; the first of a repeated field is kept."""
    groups: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = ""
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line.strip():
            if current:
                groups.append(current)
            current, last = {}, ""
            continue
        if line[0] in " \t" and last:
            current[last] = f"{current[last]} {line.strip()}".strip()
            continue
        match = _FIELD.match(line)
        if match:
            name = match.group(1).lower()
            if name not in current:
                current[name] = match.group(2).strip()
                last = name
            else:
                last = ""
    if current:
        groups.append(current)
    return groups


def address_in(value: str) -> str | None:
    """The address a recipient field holds (``rfc822; a@b``, ``rfc822;<a@b>``,
    ``"Name" <a@b>``), or ``None`` when it holds no usable one."""
    _, sep, rest = value.partition(";")
    text = (rest if sep else value).strip()
    inside = _ANGLED.fullmatch(text)
    candidate = inside.group(1) if inside else text
    if "@" not in candidate or any(c in candidate for c in ' <>"(),\ufffd'):
        return None  # a display name, a quoted or a commented form: not an RFC 822 address
    return canonical_or_none(candidate)


def name_in(value: str) -> str:
    """What a recipient field names when it is not an address (a directory
    name, an internal address): its local part, in lower case."""
    _, sep, rest = value.partition(";")
    text = (rest if sep else value).strip()
    inside = _INSIDE.search(text)
    text = (inside.group(1) if inside else text).strip("<>\"' ")
    return text.partition("@")[0].lower()
