"""Why a bounce or complaint was recorded, in one line, from the details its
finding left on the event (``adieu status``, the API's contact document, the
dashboard). Cheap to import: no parsing, no vocabulary."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def decisive(details: Mapping[str, Any] | None) -> str:
    """What decided: the phrase matched (in quotes), else the status code and
    what it means, else the feedback type; "" when the details say nothing."""
    if not details:
        return ""
    phrase = details.get("phrase")
    if phrase:
        return f"\u201c{phrase}\u201d"
    status, meaning = details.get("status"), details.get("meaning")
    if status and meaning:
        return f"{status} ({meaning})"
    feedback = details.get("feedback-type")
    return str(feedback) if feedback else ""


def summary(details: Mapping[str, Any] | None) -> str:
    """The status code, the phrase that decided with its source, and which
    field named the recipient: ``5.1.1 “user unknown” (postfix); named by
    final-recipient``. Addresses are never part of it."""
    if not details:
        return ""
    parts = []
    status = details.get("status")
    if status and details.get("phrase"):
        parts.append(str(status))
    said = decisive(details)
    if said:
        source = details.get("source")
        parts.append(f"{said} ({source})" if source and details.get("phrase") else said)
    named = details.get("recipient_from")
    text = " ".join(parts)
    if named:
        text = f"{text}; named by {named}" if text else f"named by {named}"
    return text
