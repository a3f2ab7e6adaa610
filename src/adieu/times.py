"""The one way Adieu writes a point in time: ISO 8601 in UTC with a ``Z``
(RFC 3339 §5.6), the same in the API, webhooks, exports, event details and the
CLI's JSON. The ledger stores UTC; a time read back without a zone is UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(value: datetime, timespec: str = "auto") -> str:
    """``timespec`` as for ``datetime.isoformat`` ("seconds" for people to read)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def iso_or_none(value: datetime | None) -> str | None:
    return iso(value) if value is not None else None
