"""The send policy (layer 3): who may be mailed now, and why not.

The rule itself is ``adieu.policy.rules`` (light: the CLI reads its names
without loading the store); ``Policy`` (``adieu.policy.gate``) applies it to
the ledger's state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from adieu.policy.rules import (
    ALLOWED,
    FREQUENCY_WINDOW,
    INVALID_ADDRESS,
    RULES,
    Category,
    Decision,
    decide,
    reason_of,
)

if TYPE_CHECKING:
    from adieu.policy.gate import FilterReport, Policy

__all__ = [
    "ALLOWED",
    "FREQUENCY_WINDOW",
    "INVALID_ADDRESS",
    "RULES",
    "Category",
    "Decision",
    "FilterReport",
    "Policy",
    "decide",
    "reason_of",
]


def __getattr__(name: str) -> Any:
    """``Policy`` and ``FilterReport`` load the store: only when asked for."""
    if name in ("Policy", "FilterReport"):
        from adieu.policy import gate

        return getattr(gate, name)
    raise AttributeError(name)
