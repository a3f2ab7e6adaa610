"""Complaints: ARF feedback reports (RFC 5965, RFC 6650), including
multi-recipient ones, the legacy ``opt-out`` type with ``Removal-Recipient``,
and Outlook.com/Hotmail complaint notices that carry the complained-of
message (with its ``X-HmXmrOriginalRecipient`` field) but no ARF part.

Every named recipient is a finding; a provider's placeholder (``redacted@…``,
``undisclosed-recipients``) never is. DMARC failure reports
(``auth-failure``, RFC 6591) and ``other`` are not complaints."""

from __future__ import annotations

from email.message import Message
from typing import Any

from adieu.feedback import markers
from adieu.feedback.mime import (
    ORIGINAL_TYPES,
    carried,
    encoded_report_text,
    header_text,
    original_of,
    part_text,
    typed_parts,
)
from adieu.feedback.reading import (
    Reading,
    Reported,
    addresses_of,
    placeholder,
    shown,
)

COMPLAINT, UNKNOWN = "complaint", "unknown"
#: Feedback types that are a complaint (RFC 5965 and the ARF draft's opt-out types).
COMPLAINT_TYPES = {"abuse", "fraud", "virus", "opt-out", "opt-out-list", "unsubscribe"}
NOT_SPAM_TYPES = {"not-spam", "miscategorized"}
_KEPT = (
    "feedback-type",
    "user-agent",
    "version",
    "arrival-date",
    "source-ip",
    "reported-domain",
    "incidents",
)


def fields_of(message: Message) -> list[tuple[str, str]]:
    """Every field of the feedback-report part, in order (repeated ones kept)."""
    found: list[tuple[str, str]] = []
    for part, kind in typed_parts(message):
        if kind != "message/feedback-report":
            continue
        encoded = encoded_report_text(part)
        payload = part.get_payload()
        if encoded is None and isinstance(payload, list):  # parsed as header blocks
            for block in payload:
                if isinstance(block, Message):
                    found.extend(
                        (k.lower(), " ".join(header_text(v).split())) for k, v in block.items()
                    )
            continue
        last = -1
        for line in (part_text(part) if encoded is None else encoded).splitlines():
            if line[:1] in (" ", "\t") and last >= 0:
                name, value = found[last]
                found[last] = (name, f"{value} {line.strip()}")
                continue
            name, sep, value = line.partition(":")
            if sep and name.strip() and " " not in name.strip():
                found.append((name.strip().lower(), value.strip()))
                last = len(found) - 1
    return found


def kind_of(feedback_type: str) -> str | None:
    """The finding a feedback type gives, or ``None`` (not acted on)."""
    if feedback_type in COMPLAINT_TYPES:
        return "complaint"
    if feedback_type in NOT_SPAM_TYPES:
        return "not_spam"
    return None


def from_arf(message: Message) -> Reading:
    fields = fields_of(message)
    first: dict[str, str] = {}
    for name, value in fields:
        first.setdefault(name, value)
    feedback_type = first.get("feedback-type", "").strip().lower()
    details: dict[str, Any] = {k: first[k] for k in _KEPT if k in first}
    original = original_of(message)
    kind = kind_of(feedback_type)
    if kind is None:
        note = f"feedback type {shown(feedback_type)!r} is not acted on"
        return Reading(UNKNOWN, note=note, original=original)
    reported: list[Reported] = []
    for field, how in (
        ("original-rcpt-to", "original-rcpt-to"),
        ("removal-recipient", "removal-recipient"),
    ):
        for value in (v for n, v in fields if n == field):
            for address in addresses_of(value.strip()):
                if not placeholder(address) and address not in {r.address for r in reported}:
                    reported.append(
                        Reported(address, kind, how, {**details, "recipient_from": how})
                    )
    if not reported and original is not None:
        # A To at the sender's own domain is the sender's list or alias
        # address (the real recipients were not shown): never a complainant.
        own = {
            a.rpartition("@")[2]
            for a in addresses_of(
                original.get("From"), original.get("Sender"), original.get("Return-Path")
            )
        }
        for field, how in ((_HOTMAIL, "x-hmxmroriginalrecipient"), ("To", "original-to")):
            for address in addresses_of(*original.get_all(field, [])):
                if how == "original-to" and address.rpartition("@")[2] in own:
                    continue
                if not placeholder(address):
                    reported.append(
                        Reported(address, kind, how, {**details, "recipient_from": how})
                    )
            if reported:
                break
    return Reading(COMPLAINT, tuple(reported), original=original, finding=kind, details=details)


#: The field Outlook.com (Hotmail) adds naming the mailbox a message was delivered to.
_HOTMAIL = "X-HmXmrOriginalRecipient"
_MICROSOFT = ("hotmail", "outlook", "msn", "live.", "microsoft")


def from_notice(message: Message) -> Reading | None:
    """An Outlook.com/Hotmail complaint notice without an ARF part (JMRP's
    older form): from Microsoft or titled a complaint, carrying the
    complained-of message; the complainant is in ``X-HmXmrOriginalRecipient``,
    on the notice itself or on the message it carries. A delivery failure
    notice is never one."""
    sender = str(message.get("From", "")).lower()
    subject = str(message.get("Subject", "")).lower()
    if any(s in sender for s in markers.BOUNCE_SENDERS) or any(
        s in subject for s in markers.BOUNCE_SUBJECTS
    ):
        return None
    if not (any(s in sender for s in _MICROSOFT) or "complaint" in subject or "abuse" in subject):
        return None
    carriers: list[tuple[Message, Message | None]] = [(message, None)]
    for part, kind in typed_parts(message):
        if kind in ORIGINAL_TYPES and (inner := carried(part)) is not None:
            carriers.append((inner, inner))
    for carrier, inner in carriers:
        found = [a for a in addresses_of(*carrier.get_all(_HOTMAIL, [])) if not placeholder(a)]
        if not found:
            continue
        how = "x-hmxmroriginalrecipient"
        details = {"feedback-type": "abuse", "recipient_from": how}
        original = inner if inner is not None else next((c for c, i in carriers[1:]), None)
        return Reading(
            COMPLAINT,
            tuple(Reported(a, "complaint", how, dict(details)) for a in found),
            original=original,
        )
    return None
