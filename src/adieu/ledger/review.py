"""The inbound review queue: mail nobody could classify, kept for a person to read."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select

from adieu.ledger import schema as t
from adieu.ledger.base import LedgerBase


class ReviewQueue(LedgerBase):
    """Inbound messages kept for review."""

    def keep_for_review(self, raw: bytes, note: str, *, limit: int = 256 * 1024) -> int:
        """Keep an inbound message nobody could classify (size-limited)."""
        with self._write() as conn:
            result = conn.execute(
                insert(t.inbound_review)
                .values(
                    received_at=self.now(),
                    size=len(raw),
                    content=raw[:limit],
                    note=note[:500],
                )
                .returning(t.inbound_review.c.id)
            )
            return int(result.scalar_one())

    def review_items(self, limit: int = 100) -> list[tuple[int, datetime, int, str, bytes]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.inbound_review).order_by(t.inbound_review.c.id.desc()).limit(limit)
            )
            return [(r.id, r.received_at, r.size, r.note, bytes(r.content)) for r in rows]
