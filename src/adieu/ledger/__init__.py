"""The consent and suppression ledger (layer 3)."""

from __future__ import annotations

from adieu.ledger.store import Ledger
from adieu.ledger.vocabulary import (
    Blocklist,
    Channel,
    ContactStatus,
    Event,
    EventType,
    Fact,
    Frequency,
    ImportResult,
    Outcome,
    Reason,
    SendState,
    Suppression,
    SuppressionRecord,
    Topic,
    UnsubscribeRequest,
)

__all__ = [
    "Blocklist",
    "Channel",
    "ContactStatus",
    "Event",
    "EventType",
    "Fact",
    "Frequency",
    "ImportResult",
    "Ledger",
    "Outcome",
    "Reason",
    "SendState",
    "Suppression",
    "SuppressionRecord",
    "Topic",
    "UnsubscribeRequest",
]
