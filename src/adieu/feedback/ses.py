"""Amazon SES notifications delivered by mail: an SNS ``email`` subscription
(the notification's JSON is the body) or ``email-json`` (an SNS envelope
whose ``Message`` is that JSON as a string), for ``Bounce``, ``Complaint``
and ``Delivery`` notifications and event publishing's ``eventType``.

Each bounced recipient is judged on its own ``status`` and
``diagnosticCode``, with SES's bounce type and subtype where those say more:
``Permanent``/``NoEmail`` and ``Suppressed`` are dead addresses (SES's own
records of an invalid address), ``Transient`` never is, and a content,
attachment or size refusal is the sender's side whatever its label.
"""

from __future__ import annotations

import json
from email.message import Message
from typing import Any

from adieu.feedback import vocabulary
from adieu.feedback.arf import kind_of
from adieu.feedback.mime import part_text, typed_parts
from adieu.feedback.reading import Reading, Reported, addresses_of, placeholder, shown

_SENDER_SIDE_SUBTYPES = {"messagetoolarge", "contentrejected", "attachmentrejected"}


def notification(message: Message) -> dict[str, Any] | None:
    """The SES notification the message's text carries, if it carries one."""
    for part, kind in typed_parts(message):
        if kind not in ("text/plain", "application/json"):
            continue
        text = part_text(part)
        if (
            '"notificationType"' not in text
            and '"eventType"' not in text
            and ('\\"notificationType\\"' not in text)
        ):
            continue
        start = text.find("{")
        if start < 0:
            continue
        try:
            found, _ = json.JSONDecoder().raw_decode(text[start:])
        except ValueError:
            continue
        if isinstance(found, dict) and isinstance(found.get("Message"), str):
            try:
                found = json.loads(found["Message"])
            except ValueError:
                continue
        if isinstance(found, dict) and (found.get("notificationType") or found.get("eventType")):
            return found
    return None


def from_notification(found: dict[str, Any]) -> Reading:
    kind = str(found.get("notificationType") or found.get("eventType") or "")
    if kind == "Bounce" and isinstance(found.get("bounce"), dict):
        return _bounce(found["bounce"])
    if kind == "Complaint" and isinstance(found.get("complaint"), dict):
        return _complaint(found["complaint"])
    note = f"an Amazon SES {shown(kind) or 'unknown'} notification: nothing to do"
    return Reading("unknown", note=note)


def _bounce(bounce: dict[str, Any]) -> Reading:
    bounce_type = str(bounce.get("bounceType", ""))
    subtype = str(bounce.get("bounceSubType", ""))
    reported = []
    for entry in bounce.get("bouncedRecipients") or []:
        if not isinstance(entry, dict):
            continue
        for address in addresses_of(str(entry.get("emailAddress", ""))):
            if placeholder(address):
                continue
            status = str(entry.get("status") or "")
            diagnostic = str(entry.get("diagnosticCode") or "")
            action = str(entry.get("action") or "")
            _, sep, rest = diagnostic.partition(";")
            said = rest.strip() if sep and len(diagnostic.partition(";")[0]) < 20 else diagnostic
            verdict = vocabulary.decide(status, said, "" if action == "failed" else action)
            kind = _adjusted(verdict, bounce_type, subtype)
            details: dict[str, Any] = {
                **verdict.details(),
                "recipient_from": "ses-bounced-recipients",
                "ses_bounce_type": bounce_type,
                "ses_bounce_subtype": subtype,
            }
            if kind != verdict.kind:
                details["basis"] = "ses-bounce-type"
            if action:
                details["action"] = action
            if said:
                from adieu.addresses import mask_all

                details["diagnostic"] = mask_all(" ".join(said.split()))[:300]
            reported.append(Reported(address, kind, "ses-bounced-recipients", details))
    if not reported:
        return Reading("unknown", note="an Amazon SES bounce notification without a recipient")
    return Reading("bounce", tuple(reported))


def _adjusted(verdict: vocabulary.Verdict, bounce_type: str, subtype: str) -> str:
    sub = subtype.lower()
    if sub in _SENDER_SIDE_SUBTYPES:
        return vocabulary.REJECTION
    sender_side = verdict.kind == vocabulary.REJECTION and verdict.basis != "default"
    if bounce_type == "Permanent" and sub in ("noemail", "suppressed"):
        return verdict.kind if sender_side else vocabulary.HARD  # SES's record of a dead address
    if bounce_type == "Permanent" and sub == "onaccountsuppressionlist":
        return vocabulary.REJECTION  # suppressed by the account, for a reason not given
    if bounce_type == "Transient":
        return verdict.kind if sender_side else vocabulary.SOFT
    if verdict.kind == vocabulary.DELIVERED:  # SES says it bounced: of unclear cause
        return vocabulary.REJECTION
    return verdict.kind


def _complaint(complaint: dict[str, Any]) -> Reading:
    feedback_type = str(complaint.get("complaintFeedbackType") or "abuse").strip().lower()
    kind = kind_of(feedback_type)
    if kind is None:
        return Reading("unknown", note=f"feedback type {shown(feedback_type)!r} is not acted on")
    reported = []
    for entry in complaint.get("complainedRecipients") or []:
        if not isinstance(entry, dict):
            continue
        for address in addresses_of(str(entry.get("emailAddress", ""))):
            if not placeholder(address):
                how = "ses-complained-recipients"
                details = {"feedback-type": feedback_type, "recipient_from": how}
                reported.append(Reported(address, kind, how, details))
    if not reported:
        return Reading("unknown", note="an Amazon SES complaint without a recipient")
    return Reading("complaint", tuple(reported))
