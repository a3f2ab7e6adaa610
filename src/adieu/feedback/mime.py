"""The MIME side of reading returned mail: the raw message made parseable,
its own parts (never those of a message it carries) with their types, their
text, and the returned original. Light to import: ``classify`` needs it for
every message, the readers only for the reports."""

from __future__ import annotations

import binascii
import quopri
import re
from collections.abc import Iterator
from email import message_from_bytes, message_from_string
from email.header import Header, decode_header
from email.message import Message
from email.parser import HeaderParser

ORIGINAL_TYPES = ("message/rfc822", "message/global")
HEADERS_TYPES = ("text/rfc822-headers", "message/rfc822-headers", "message/global-headers")
DSN_TYPES = ("message/delivery-status", "message/global-delivery-status")


# -- the raw message ----------------------------------------------------------------------------

_LEADING_BLANK = re.compile(rb"\A(?:[ \t]*\n)+")


def parseable(data: bytes) -> bytes:
    """``data`` with line endings made LF (CR-only and CRLF mail alike) and
    the blank lines some MTAs put before the first header field removed."""
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return _LEADING_BLANK.sub(b"", data, count=1).lstrip(b" \t")


def parse(data: bytes) -> Message:
    return message_from_bytes(data)  # compat32, the default


def headers_of(text: str) -> Message:
    """A header block (a returned original's headers) as a message, its
    body, if any, left as text."""
    return HeaderParser().parsestr(text.lstrip())


# -- parts ---------------------------------------------------------------------------------------


def own_parts(message: Message) -> Iterator[Message]:
    """The message's leaf parts, in order, without going into a message it
    carries (a returned original, a forwarded message)."""
    return (part for part, _ in typed_parts(message))


def typed_parts(message: Message) -> list[tuple[Message, str]]:
    """``own_parts`` with each part's content type, worked out once per message."""
    known: list[tuple[Message, str]] | None = getattr(message, "_adieu_parts", None)
    if known is not None:
        return known
    found: list[tuple[Message, str]] = []
    pending = [message]
    while pending:
        part = pending.pop(0)
        kind = part.get_content_type()
        payload = part.get_payload()
        if not kind.startswith("message/") and isinstance(payload, list):
            pending[0:0] = [p for p in payload if isinstance(p, Message)]
        else:
            found.append((part, kind))
    setattr(message, "_adieu_parts", found)  # noqa: B010 (a cache on the parsed message)
    return found


def has_type(message: Message, *kinds: str) -> bool:
    return any(kind in kinds for _, kind in typed_parts(message))


def carried(part: Message) -> Message | None:
    """The message a ``message/rfc822`` part carries."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    if isinstance(payload, str) and payload.strip():
        return message_from_string(payload)
    return None


def part_text(part: Message) -> str:
    """A leaf part's content as text, decoded by its transfer encoding and charset."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if not isinstance(payload, bytes):
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except (LookupError, ValueError):
        return payload.decode("utf-8", "replace")


def header_text(value: object) -> str:
    """A header field's value as text: a value with 8-bit bytes in it (an
    RFC 6533 ``utf-8`` address, parsed as a ``Header``) decoded as UTF-8."""
    if isinstance(value, Header):
        pieces = []
        for chunk, charset in decode_header(value):
            if isinstance(chunk, bytes):
                name = charset if charset and charset != "unknown-8bit" else "utf-8"
                try:
                    pieces.append(chunk.decode(name, "replace"))
                except LookupError:
                    pieces.append(chunk.decode("utf-8", "replace"))
            else:
                pieces.append(chunk)
        return "".join(pieces)
    return str(value)


def encoded_report_text(part: Message) -> str | None:
    """The text of a report part (``message/delivery-status``,
    ``message/feedback-report``) sent in base64 or quoted-printable, which
    the parser cannot read as header blocks; ``None`` when it is not encoded."""
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if encoding not in ("base64", "quoted-printable"):
        return None
    payload = part.get_payload()
    if isinstance(payload, list):
        pieces = []
        for block in payload:
            if isinstance(block, Message):
                lines = [f"{k}: {header_text(v)}" for k, v in block.items()]
                body = block.get_payload()
                if isinstance(body, str):
                    lines.append(body)
                pieces.append("\n".join(lines))
        raw = "\n\n".join(pieces)
    else:
        raw = str(payload)
    data = raw.encode("ascii", "replace")
    try:
        decoded = binascii.a2b_base64(data) if encoding == "base64" else quopri.decodestring(data)
    except (binascii.Error, ValueError):
        return None
    return decoded.decode("utf-8", "replace")


_TAG = re.compile(r"<(?:br|p|div|tr|li|h\d|table)\b[^>]*>|</(?:p|div|tr|li|h\d|table)>", re.I)
_ANY_TAG = re.compile(r"<[^>]*>")
_STYLE = re.compile(r"<(style|script|head)\b.*?</\1>", re.I | re.S)


def html_text(html: str) -> str:
    from html import unescape

    text = _TAG.sub("\n", _STYLE.sub(" ", html))
    return unescape(_ANY_TAG.sub(" ", text))


_NOT_REPORT_TEXT = ("text/calendar", "text/csv", "text/xml", "text/x-vcard", "text/vcard")


def report_texts(message: Message) -> list[str]:
    """The human-readable parts of a report (its text, not a returned
    original's): text/plain, or text/html where a part has no plain text."""
    plain: list[str] = []
    html: list[str] = []
    for part, kind in typed_parts(message):
        if kind in HEADERS_TYPES or kind in DSN_TYPES:
            continue
        if kind == "text/html":
            html.append(html_text(part_text(part)))
        elif part.get_content_maintype() == "text" and kind not in _NOT_REPORT_TEXT:
            disposition = str(part.get("Content-Disposition", "")).lower()
            if "attachment" in disposition and part.get_filename():
                continue  # a file someone attached, not the report's words
            plain.append(part_text(part))
    return plain or html


def original_of(message: Message) -> Message | None:
    """The returned original (or its header block) in a report."""
    for part, kind in typed_parts(message):
        if kind in ORIGINAL_TYPES:
            found = carried(part)
            if found is not None:
                return found
        if kind in HEADERS_TYPES:
            return headers_of(part_text(part))
    return None


def is_report(message: Message) -> bool:
    """Whether ``message`` is itself a delivery or feedback report (a report
    that returns one concerns a forwarded report, not mail sent to a person)."""
    if message.get_content_type() == "multipart/report":
        return True
    from adieu.feedback import markers

    sender = str(message.get("From", "")).lower()
    subject = str(message.get("Subject", "")).lower()
    return any(s in sender for s in markers.BOUNCE_SENDERS) and any(
        s in subject for s in markers.BOUNCE_SUBJECTS
    )


def may_be_report(message: Message) -> bool:
    """Cheaply, before any reader is imported: whether the message could be a
    report a reader finds something in (it carries a message, or its sender,
    subject, header fields or text have the words reports have). What this
    turns away (a person's mail, most auto-replies) no reader would take."""
    from adieu.feedback import markers

    if any(kind in ORIGINAL_TYPES for _, kind in typed_parts(message)):
        return True
    if message.get("X-Failed-Recipients") or message.get("X-HmXmrOriginalRecipient"):
        return True
    sender = str(message.get("From", "")).lower()
    subject = str(message.get("Subject", "")).lower()
    if any(s in sender for s in markers.BOUNCE_SENDERS) or any(
        s in subject for s in markers.BOUNCE_SUBJECTS
    ):
        return True
    for part, kind in typed_parts(message):
        if part.get_content_maintype() == "text" or kind == "application/json":
            text = part_text(part).lower()
            if "notificationtype" in text or "eventtype" in text:
                return True
            if any(p in text for p in markers.BOUNCE_PREAMBLES):
                return True
    return False
