"""Turning classified inbound mail into ledger events (and never answering it:
R13, and no mail loops).

Anyone can send mail to the inbound address, so a finding changes the ledger
only when it is trusted (``ADIEU_INBOUND_TRUST``):

- ``token``: it carries Adieu's own token (the mailto address or subject, a
  token-bearing return path, or a token in the returned original);
- ``sent`` (the default): a token, or a send to the address it names is
  recorded within ``ADIEU_INBOUND_SENT_DAYS``;
- ``any``: every finding (the route is trusted).

A finding that is not trusted changes nothing: it is recorded as an
``unverified`` event, and the whole message is kept in the review queue with a
note that says why (addresses masked).

A compact token (``adieu.tokens``: the mailto, a per-recipient return path,
CFBL-Feedback-ID) names its recipient by the first bytes of their keyed hash.
It is resolved here: the one contact whose keyed hash begins with them; when
there is none (a link minted with no ledger write), the one address named in
the message itself (the sender's From, a report's recipient) whose keyed hash
does. Its topic is the topic with its tag, its campaign the campaign of a
send recorded to the recipient with its tag (else none). Then it proves
itself like a full token. A compact token that names nobody known (or a
mailto's topic that is not known) changes nothing and the message is kept
for review; one that names an erased contact changes nothing either (erasure
already stops all mail). One message counts once for one person: findings
of the same kind for the same address are applied once.

A message delivered to several envelope recipients (an SMTP or LMTP
listener, a pipe given several) is read once per recipient
(``process_each``): each return path or mailto address names its own
person, and one report for one person still counts once. The envelope
recipient is what the MTA delivered for, so a mailto token there names its
person even when the message's To lists other mailto addresses too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from adieu.addresses import addresses_in, mask
from adieu.errors import InvalidToken
from adieu.feedback.classify import (
    Classification,
    Finding,
    FindingKind,
    MessageKind,
    classify,
)
from adieu.ledger import Channel, EventType
from adieu.scopes import ALL
from adieu.service import Adieu
from adieu.tokens import UNSUBSCRIBE, CompactPayload

#: A mailto unsubscribe address as an envelope recipient (any case: MTAs fold it).
_ENVELOPE_MAILTO = re.compile(r"(?i)^<?\s*unsubscribe\+([A-Za-z0-9_-]{40,1024})@[^@<>]+>?$")

#: How much of a message is read for addresses a compact token may name.
_SCAN = 256 * 1024

#: The channel an unverified finding is recorded under.
_CHANNEL = {
    FindingKind.MAILTO: Channel.MAILTO,
    FindingKind.COMPLAINT: Channel.COMPLAINT,
    FindingKind.NOT_SPAM: Channel.COMPLAINT,
}


@dataclass(slots=True)
class IntakeResult:
    classification: Classification
    applied: list[tuple[str, str]] = field(default_factory=list)  # (kind, masked address)
    #: Findings that were not trusted, so changed nothing: (kind, masked address).
    unverified: list[tuple[str, str]] = field(default_factory=list)
    review_id: int | None = None
    #: The review queue's note for this message, when it was kept.
    review_note: str = ""
    #: Findings whose compact token names nobody known, so changed nothing (kinds).
    unresolved: list[str] = field(default_factory=list)


class Intake:
    def __init__(self, adieu: Adieu) -> None:
        self.adieu = adieu

    def process(self, raw: bytes, envelope_to: list[str] | None = None) -> IntakeResult:
        """Classify one message and record what it says. Database trouble
        raises (the caller answers "try later"); nothing else does."""
        return self._process(raw, envelope_to or [], set(), {})

    def process_each(self, raw: bytes, recipients: Sequence[str]) -> list[IntakeResult]:
        """``process`` for each envelope recipient in turn (one result each,
        in order): a report for one person counts once however many
        recipients it came to, and a message kept for review is kept once.
        Database trouble raises, after the recipients before it were recorded."""
        if len(recipients) <= 1:
            return [self.process(raw, list(recipients))]
        reading = self.reading(raw)
        return [reading.recipient(recipient) for recipient in recipients]

    def reading(self, raw: bytes) -> MessageReading:
        """One message read for its recipients one at a time (``process_each``
        when each recipient's outcome is wanted on its own, as LMTP does)."""
        return MessageReading(self, raw)

    def _process(
        self,
        raw: bytes,
        envelope_to: list[str],
        seen: set[tuple[str, str]],
        kept: dict[str, int],
    ) -> IntakeResult:
        classification = classify(raw, self.adieu.codec, envelope_to)
        if classification.kind in (MessageKind.UNKNOWN, MessageKind.AUTO_REPLY):
            classification = self._envelope_mailto(envelope_to) or classification
        result = IntakeResult(classification)
        ledger = self.adieu.ledger
        if classification.kind in ("unknown", "unusable"):
            result.review_note = f"{classification.kind}: {classification.note}"
            result.review_id = self._keep(raw, result.review_note, kept)
            return result
        doubts: list[str] = []
        unresolved: list[str] = []
        for finding in classification.findings:
            if isinstance(finding.token, CompactPayload):
                resolved, unknown = self._resolve(finding, finding.token, raw)
                if resolved is None:
                    if unknown:
                        result.unresolved.append(finding.kind.value)
                        unresolved.append(f"{finding.kind.value}: {unknown}")
                    continue
                finding = resolved
            if (finding.kind.value, finding.address) in seen:
                continue  # the same report for the same person, again: once
            seen.add((finding.kind.value, finding.address))
            trusted_by, why, short = self._trust(finding)
            if trusted_by is None:
                ledger.record_event(
                    finding.address,
                    EventType.UNVERIFIED,
                    channel=_CHANNEL.get(finding.kind, Channel.BOUNCE),
                    details={**finding.details, "finding": finding.kind.value, "why": why},
                )
                who = mask(finding.address)
                result.unverified.append((finding.kind.value, who))
                doubts.append(f"{finding.kind.value} for {who}: {short}")
                continue
            self._apply(finding, trusted_by)
            result.applied.append((finding.kind.value, mask(finding.address)))
        notes = []
        if unresolved:
            notes.append("unresolved: " + "; ".join(unresolved))
        if doubts:
            notes.append("unverified: " + "; ".join(doubts))
        if notes:
            result.review_note = "; ".join(notes)
            result.review_id = self._keep(raw, result.review_note, kept)
        return result

    def _keep(self, raw: bytes, note: str, kept: dict[str, int]) -> int:
        """Keep ``raw`` for review once per message (``kept`` remembers it)."""
        if "id" not in kept:
            kept["id"] = self.adieu.ledger.keep_for_review(raw, note)
        return kept["id"]

    def _envelope_mailto(self, envelope_to: list[str]) -> Classification | None:
        """A mailto unsubscribe named by the one envelope recipient alone."""
        if len(envelope_to) != 1:
            return None
        match = _ENVELOPE_MAILTO.match(envelope_to[0].strip())
        if match is None:
            return None
        try:
            token = self.adieu.codec.open_any(match.group(1))
        except InvalidToken:
            return None
        if isinstance(token, CompactPayload) and token.purpose != UNSUBSCRIBE:
            return None
        finding = Finding(FindingKind.MAILTO, token.address, token, {"scope": token.scope})
        return Classification(MessageKind.UNSUBSCRIBE, (finding,))

    def _resolve(
        self, finding: Finding, token: CompactPayload, raw: bytes
    ) -> tuple[Finding | None, str]:
        """``finding`` with its compact token resolved (see the module's
        docstring); otherwise ``None`` and why (empty: nothing to keep)."""
        ledger = self.adieu.ledger
        hasher = self.adieu.hasher
        matches = ledger.contacts_by_hash_prefix(token.address_prefix)
        if len(matches) == 1 and matches[0][1] is None:
            return None, ""  # erased: suppressed for good, and nothing is kept about them
        if len(matches) == 1 and matches[0][1] is not None:
            address, how = matches[0][1], "contact"
        else:
            # Nobody (a link minted with no ledger write) or, beyond all
            # likelihood, several: an address the message names, if one fits.
            known = {digest for digest, _ in matches}
            named = [
                a
                for a in addresses_in(raw[:_SCAN])
                if token.names(digest := hasher.hash(a)) and (not known or digest in known)
            ]
            if len(named) != 1:
                return None, "a compact token that names no known contact"
            address, how = named[0], "message"
        scope = ALL
        if token.topic_tag is not None:
            topics = [t.key for t in ledger.topics(retired=True) if token.names_topic(t.key)]
            if len(topics) == 1:
                scope = topics[0]
            elif finding.kind == FindingKind.MAILTO:  # what to leave is not known: no guess
                return None, "a compact token for a topic that is not known"
        campaign = None
        if token.campaign_tag is not None:
            campaign = next(
                (c for c in ledger.campaigns_sent(address) if token.names_campaign(c)), None
            )
        return (
            replace(
                finding,
                address=address,
                token=token.resolved(address, scope, campaign),
                details={**finding.details, "token": "compact", "recipient_by": how},
            ),
            "",
        )

    def _trust(self, finding: Finding) -> tuple[str | None, str, str]:
        """How ``finding`` is trusted (``token``, ``send`` or ``route``), or
        ``None`` with why not, at length (the event) and in short (the note)."""
        if finding.token is not None and finding.token.address == finding.address:
            return "token", "", ""
        settings = self.adieu.settings
        if settings.inbound_trust == "any":
            return "route", "", ""
        if settings.inbound_trust == "token":
            return None, "no token from Adieu in the report or its return path", "no token"
        days = settings.inbound_sent_days
        ledger = self.adieu.ledger
        if ledger.sent_since(finding.address, ledger.now() - timedelta(days=days)):
            return "send", "", ""
        return (
            None,
            f"no token and no send to this address in the last {days} days",
            "no token, no recent send",
        )

    def _apply(self, finding: Finding, trusted_by: str) -> None:
        ledger = self.adieu.ledger
        token = finding.token
        campaign = token.campaign if token else None
        details: dict[str, Any] = {**finding.details, "trusted_by": trusted_by}
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


class MessageReading:
    """One message's recipients, read one at a time (``Intake.reading``)."""

    def __init__(self, intake: Intake, raw: bytes) -> None:
        self._intake = intake
        self._raw = raw
        self._seen: set[tuple[str, str]] = set()
        self._kept: dict[str, int] = {}

    def recipient(self, recipient: str) -> IntakeResult:
        """Record what the message says for ``recipient``; database trouble raises."""
        return self._intake._process(self._raw, [recipient], self._seen, self._kept)
