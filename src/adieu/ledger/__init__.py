"""The consent and suppression ledger (layer 3)."""

from __future__ import annotations

from adieu.ledger.core import (
    Channel,
    ContactStatus,
    Event,
    EventType,
    Frequency,
    ImportResult,
    Ledger,
    Outcome,
    Reason,
    SendState,
    SuppressionRecord,
    Topic,
    UnsubscribeRequest,
)

__all__ = [
    "Channel",
    "ContactStatus",
    "Event",
    "EventType",
    "Frequency",
    "ImportResult",
    "Ledger",
    "Outcome",
    "Reason",
    "SendState",
    "SuppressionRecord",
    "Topic",
    "UnsubscribeRequest",
]
