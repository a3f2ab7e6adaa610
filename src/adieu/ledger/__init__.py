"""The consent and suppression ledger (layer 2).

The vocabulary (enums) is loaded at once; the records and ``Ledger`` (the
store, with SQLAlchemy) when first asked for, so a command that needs no
database starts without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from adieu.ledger.vocabulary import Channel, EventType, Fact, Frequency, Reason

if TYPE_CHECKING:
    from adieu.ledger.records import (
        Blocklist,
        ContactStatus,
        Event,
        ImportResult,
        Outcome,
        SendState,
        Suppression,
        SuppressionRecord,
        Topic,
        UnsubscribeRequest,
    )
    from adieu.ledger.store import Ledger


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


def __getattr__(name: str) -> Any:
    """The records and the store load on first use (PEP 562)."""
    if name == "Ledger":
        from adieu.ledger.store import Ledger

        return Ledger
    if name in __all__:
        from adieu.ledger import records

        return getattr(records, name)
    raise AttributeError(name)
