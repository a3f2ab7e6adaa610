"""Turning classified inbound mail into ledger events (and never answering it:
R13, and no mail loops)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adieu.addresses import mask
from adieu.feedback.classify import Classification, classify
from adieu.ledger import Channel, EventType
from adieu.service import Adieu


@dataclass(slots=True)
class IntakeResult:
    classification: Classification
    applied: list[tuple[str, str]] = field(default_factory=list)  # (kind, masked address)
    review_id: int | None = None


class Intake:
    def __init__(self, adieu: Adieu) -> None:
        self.adieu = adieu

    def process(self, raw: bytes, envelope_to: list[str] | None = None) -> IntakeResult:
        """Classify one message and record what it says. Database trouble
        raises (the caller answers "try later"); nothing else does."""
        classification = classify(raw, self.adieu.codec, envelope_to)
        result = IntakeResult(classification)
        ledger = self.adieu.ledger
        if classification.kind in ("unknown", "unusable"):
            result.review_id = ledger.keep_for_review(
                raw, f"{classification.kind}: {classification.note}"
            )
            return result
        for finding in classification.findings:
            token = finding.token
            campaign = token.campaign if token else None
            details: dict[str, Any] = dict(finding.details)
            if finding.kind == "mailto":
                ledger.unsubscribe(
                    finding.address,
                    token.scope if token else None,
                    channel=Channel.MAILTO,
                    campaign=campaign,
                    details={"via": "mailto"},
                )
            elif finding.kind == "complaint":
                ledger.record_complaint(finding.address, campaign=campaign, details=details)
            elif finding.kind == "not_spam":
                ledger.record_event(
                    finding.address, EventType.NOT_SPAM, channel=Channel.COMPLAINT, details=details
                )
            elif finding.kind in ("hard_bounce", "soft_bounce"):
                ledger.record_bounce(
                    finding.address,
                    hard=finding.kind == "hard_bounce",
                    campaign=campaign,
                    details=details,
                )
            elif finding.kind == "rejection":
                ledger.record_event(
                    finding.address, EventType.REJECTION, channel=Channel.BOUNCE, details=details
                )
            result.applied.append((finding.kind, mask(finding.address)))
        return result
