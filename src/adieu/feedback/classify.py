"""Reading what comes back by mail (no ledger access here: pure parsing).

- mailto unsubscribes (RFC 2369): ``unsubscribe+TOKEN@domain``, or the token in
  the subject;
- complaints (ARF, RFC 5965): ``multipart/report; report-type=feedback-report``;
- bounces (DSN, RFC 3464): ``message/delivery-status`` per recipient, with
  flufl.bounce's detectors for the non-standard ones;
- auto-replies (RFC 3834 ``Auto-Submitted``, vacation notices): ignored.

The recipient is found from Adieu's own token first (it survives providers'
redaction), then from the report's fields, then from the returned original.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from enum import StrEnum
from typing import Any

from adieu.addresses import canonical_or_none
from adieu.errors import InvalidToken
from adieu.tokens import TokenCodec, TokenPayload

_TOKEN = re.compile(r"(?:/[up]/|unsubscribe\+)([A-Za-z0-9_-]{40,1024})")
_BARE_TOKEN = re.compile(r"(?<![A-Za-z0-9_-])([A-Za-z0-9_-]{40,1024})(?![A-Za-z0-9_-])")
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
# A permanent failure caused by the sender's side is not a dead address.
_SENDER_SIDE = re.compile(
    r"spam|block|black ?list|deny ?list|reputation|policy|dmarc|spf\b|dkim|authenticat"
    r"|rate|too many|virus|malware|content|rejected due|not accepted from|banned",
    re.IGNORECASE,
)
_DEAD = re.compile(
    r"user unknown|unknown user|no such (user|mailbox|recipient)|does not exist|not exist"
    r"|mailbox (unavailable|disabled|not found)|account (disabled|closed|inactive)"
    r"|invalid (recipient|mailbox|address)|recipient (address )?rejected: user"
    r"|address rejected|no mailbox|host not found|domain not found|no such domain",
    re.IGNORECASE,
)
_FULL = re.compile(r"quota|mailbox full|over ?limit|insufficient (system )?storage", re.I)
COMPLAINT_TYPES = {"abuse", "fraud", "virus"}


class FindingKind(StrEnum):
    """What one inbound message means for one recipient."""

    MAILTO = "mailto"
    COMPLAINT = "complaint"
    NOT_SPAM = "not_spam"
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    REJECTION = "rejection"  # a sender-side refusal: recorded, nobody suppressed


class MessageKind(StrEnum):
    """What an inbound message is, as a whole."""

    UNSUBSCRIBE = "unsubscribe"
    COMPLAINT = "complaint"
    BOUNCE = "bounce"
    AUTO_REPLY = "auto_reply"
    UNKNOWN = "unknown"  # kept for a person to read
    UNUSABLE = "unusable"  # cannot even be parsed


@dataclass(frozen=True, slots=True)
class Finding:
    """What one inbound message means for one recipient."""

    kind: FindingKind
    address: str
    token: TokenPayload | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Classification:
    """What the message is, and ``findings`` per recipient."""

    kind: MessageKind
    findings: tuple[Finding, ...] = ()
    note: str = ""


def classify(
    data: bytes, codec: TokenCodec, envelope_to: list[str] | None = None
) -> Classification:
    try:
        message = message_from_bytes(data)  # compat32, the default
    except Exception as exc:
        return Classification(MessageKind.UNUSABLE, note=f"cannot be parsed: {type(exc).__name__}")
    if not message.keys():
        return Classification(MessageKind.UNUSABLE, note="no header fields")
    param = message.get_param("report-type") if message.is_multipart() else None
    report = param.lower() if isinstance(param, str) else ""
    content_type = message.get_content_type()
    if content_type == "multipart/report" and report == "feedback-report":
        return _arf(message, codec)
    if content_type == "multipart/report" and report == "delivery-status":
        return _dsn(message, codec, _verp(envelope_to or []))
    mailto = _mailto(message, codec, envelope_to or [])
    if mailto is not None:
        return mailto
    # Non-standard bounces before auto-replies: MTAs mark bounces Auto-Submitted too.
    bounced = _nonstandard_bounce(message, codec)
    if bounced is not None:
        return bounced
    if _auto_reply(message):
        return Classification(MessageKind.AUTO_REPLY, note="auto-reply, ignored")
    return Classification(MessageKind.UNKNOWN, note="not a report Adieu can read; kept for review")


# -- tokens ----------------------------------------------------------------------


def _tokens_in(
    text: str, codec: TokenCodec, pattern: re.Pattern[str] = _TOKEN
) -> list[TokenPayload]:
    found = []
    for candidate in pattern.findall(text):
        try:
            found.append(codec.open(candidate))
        except InvalidToken:
            continue
    return found


def _original(message: Message) -> Message | None:
    """The returned original message (or its headers) inside a report."""
    for part in message.walk():
        kind = part.get_content_type()
        if kind in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        if kind in ("text/rfc822-headers", "message/rfc822-headers"):
            raw = part.get_payload(decode=True) or b""
            return message_from_bytes(raw if isinstance(raw, bytes) else b"")
    return None


def _text_of(message: Message) -> str:
    """Everything readable in a message, headers included, as text."""
    pieces = [f"{k}: {v}" for k, v in message.items()]
    for part in message.walk():
        if part.is_multipart():
            pieces.extend(f"{k}: {v}" for k, v in part.items())
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            pieces.append(payload.decode("utf-8", "replace"))
        elif isinstance(part.get_payload(), str):
            pieces.append(str(part.get_payload()))
    return "\n".join(pieces)


# -- mailto ----------------------------------------------------------------------


def _mailto(message: Message, codec: TokenCodec, envelope_to: list[str]) -> Classification | None:
    candidates = [*envelope_to, str(message.get("To", "")), str(message.get("Delivered-To", ""))]
    tokens = _tokens_in(" ".join(candidates), codec) or _tokens_in(
        str(message.get("Subject", "")), codec, _BARE_TOKEN
    )
    if not tokens:
        return None
    token = tokens[0]
    return Classification(
        MessageKind.UNSUBSCRIBE,
        (Finding(FindingKind.MAILTO, token.address, token, {"scope": token.scope}),),
    )


# -- ARF (RFC 5965) --------------------------------------------------------------------


def _arf(message: Message, codec: TokenCodec) -> Classification:
    fields: dict[str, str] = {}
    for part in message.walk():
        if part.get_content_type() == "message/feedback-report":
            decoded = part.get_payload(decode=True)
            if isinstance(decoded, bytes):
                text = decoded.decode("utf-8", "replace")
            else:  # the library parsed it as (a list of) header blocks
                inner = part.get_payload()
                text = "\n".join(str(p) for p in (inner if isinstance(inner, list) else [inner]))
            for line in text.splitlines():
                name, sep, value = line.partition(":")
                if sep and name.strip():
                    fields.setdefault(name.strip().lower(), value.strip())
    feedback_type = fields.get("feedback-type", "").lower()
    details: dict[str, Any] = {
        key: fields[key]
        for key in (
            "feedback-type",
            "user-agent",
            "version",
            "arrival-date",
            "source-ip",
            "reported-domain",
            "original-rcpt-to",
        )
        if key in fields
    }
    original = _original(message)
    tokens = _tokens_in(_text_of(original), codec) if original is not None else []
    address = tokens[0].address if tokens else None
    how = "token"
    if address is None:
        address = canonical_or_none(fields.get("original-rcpt-to", "").strip("<> "))
        how = "original-rcpt-to"
    if address is None and original is not None:
        address = canonical_or_none(re.sub(r".*<|>.*", "", str(original.get("To", ""))))
        how = "original-to"
    if address is None:
        return Classification(
            MessageKind.UNKNOWN, note="a complaint report without a recipient (redacted)"
        )
    kind = (
        "complaint"
        if feedback_type in COMPLAINT_TYPES
        else ("not_spam" if feedback_type == "not-spam" else "complaint_other")
    )
    if kind == "complaint_other":
        return Classification(
            MessageKind.UNKNOWN, note=f"feedback type {feedback_type!r} is not acted on"
        )
    details["recipient_from"] = how
    return Classification(
        MessageKind.COMPLAINT,
        (Finding(FindingKind(kind), address, tokens[0] if tokens else None, details),),
    )


# -- DSN (RFC 3464) ------------------------------------------------------------------------


def bounce_kind(status: str, diagnostic: str) -> str:
    """hard_bounce (the address is dead), rejection (the sender's side) or soft_bounce."""
    match = _STATUS.search(status) or _STATUS.search(diagnostic)
    klass, subject, detail = match.groups() if match else ("5", "0", "0")
    if klass == "4" or _FULL.search(diagnostic) or (subject, detail) == ("2", "2"):
        return "soft_bounce"
    if klass == "2":
        return "delivered"
    if subject == "7" or _SENDER_SIDE.search(diagnostic):
        return "rejection"
    if subject == "1" or (subject, detail) == ("2", "1") or _DEAD.search(diagnostic):
        return "hard_bounce"
    return "rejection"  # a permanent failure of unclear cause: never suppress on a guess


_VERP = re.compile(r"^[^+@]+\+(?P<local>[^=@]+)=(?P<domain>[^@]+)@")


def _verp(envelope_to: list[str]) -> str | None:
    """The recipient encoded in a VERP return path (``bounces+ann=example.org@…``)."""
    for address in envelope_to:
        match = _VERP.match(address.strip("<> "))
        if match:
            found = canonical_or_none(f"{match['local']}@{match['domain']}")
            if found:
                return found
    return None


def _dsn(message: Message, codec: TokenCodec, verp: str | None = None) -> Classification:
    blocks: list[dict[str, str]] = []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        sections = payload if isinstance(payload, list) else []
        if not sections:
            raw = part.get_payload(decode=True) or b""
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            sections = [
                message_from_bytes(chunk.encode())
                for chunk in re.split(r"\r?\n\r?\n", text)
                if chunk.strip()
            ]
        for section in sections[1:] if len(sections) > 1 else sections:
            if isinstance(section, Message):
                blocks.append({k.lower(): str(v) for k, v in section.items()})
    original = _original(message)
    tokens = _tokens_in(_text_of(original), codec) if original is not None else []
    findings = []
    for block in blocks:
        action = block.get("action", "").strip().lower()
        if action and action not in ("failed", "delayed"):
            continue
        recipient = block.get("final-recipient") or block.get("original-recipient") or ""
        recipient = recipient.split(";", 1)[-1].strip().strip("<>")
        kind = bounce_kind(block.get("status", ""), block.get("diagnostic-code", ""))
        if kind == "delivered":
            continue
        token = tokens[0] if len(tokens) == 1 else None
        # Adieu's own token first, then the VERP return path, then the report.
        address = token.address if token else (verp or canonical_or_none(recipient))
        if address is None:
            continue
        findings.append(
            Finding(
                FindingKind(kind),
                address,
                token,
                {
                    "status": block.get("status", "").strip(),
                    "diagnostic": block.get("diagnostic-code", "").strip()[:300],
                    "action": action,
                },
            )
        )
    if not findings:
        return Classification(
            MessageKind.UNKNOWN, note="a delivery report with no failed recipient"
        )
    return Classification(MessageKind.BOUNCE, tuple(findings))


def _nonstandard_bounce(message: Message, codec: TokenCodec) -> Classification | None:
    try:
        # flufl.bounce costs about 50 ms to import: only for mail that needs it.
        from flufl.bounce import all_failures

        temporary, permanent = all_failures(message)
    except Exception:
        return None
    if not temporary and not permanent:
        return None
    text = _text_of(message)
    tokens = _tokens_in(text, codec)
    findings = []
    for raw, kind in [(a, "hard_bounce") for a in permanent] + [
        (a, "soft_bounce") for a in temporary
    ]:
        address = canonical_or_none(raw.decode("utf-8", "replace"))
        if address is None:
            continue
        if kind == "hard_bounce":
            kind = bounce_kind("", text)  # the same rules: who is at fault?
            if kind == "delivered":
                continue
        token = tokens[0] if len(tokens) == 1 else None
        findings.append(
            Finding(
                FindingKind(kind),
                token.address if token else address,
                token,
                {"detector": "flufl.bounce"},
            )
        )
    return Classification(MessageKind.BOUNCE, tuple(findings)) if findings else None


# -- auto-replies (RFC 3834) -----------------------------------------------------------------


_AUTO_SUBJECT = re.compile(
    r"^(auto(matic)? ?(reply|response)|out of (the )?office|abwesenheit|frånvaro|absence"
    r"|vacation|on leave|autoreply)",
    re.IGNORECASE,
)


def _auto_reply(message: Message) -> bool:
    submitted = str(message.get("Auto-Submitted", "no")).strip().lower()
    if submitted not in ("", "no"):
        return True
    if message.get("X-Autoreply") or message.get("X-Autorespond"):
        return True
    if str(message.get("Precedence", "")).lower() == "auto_reply":
        return True
    return bool(_AUTO_SUBJECT.search(str(message.get("Subject", ""))))
