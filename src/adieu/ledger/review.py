"""The inbound review queue: mail nobody could classify, kept for a person to read."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from adieu.addresses import addresses_in, mask
from adieu.ledger import schema as t
from adieu.ledger.base import LedgerBase


def redact(raw: bytes, addresses: Iterable[str]) -> bytes:
    """``raw`` with every occurrence of ``addresses`` (any case) masked."""
    for address in addresses:
        pattern = re.compile(re.escape(address.encode("utf-8")), re.IGNORECASE)
        raw = pattern.sub(mask(address).encode("utf-8"), raw)
    return raw


class ReviewQueue(LedgerBase):
    """Inbound messages kept for review."""

    def keep_for_review(self, raw: bytes, note: str, *, limit: int = 256 * 1024) -> int:
        """Keep an inbound message nobody could classify (size-limited). An
        erased person's address in it is masked before it is stored."""
        raw = raw[:limit]
        with self._write() as conn:
            erased = self._erased_among(conn, addresses_in(raw))
            if erased:
                raw = redact(raw, erased)
            result = conn.execute(
                insert(t.inbound_review)
                .values(
                    received_at=self.now(),
                    size=len(raw),
                    content=raw,
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

    def _erased_among(self, conn: Connection, addresses: list[str]) -> list[str]:
        if not addresses:
            return []
        digests = {self.hasher.hash(a): a for a in addresses}
        rows = conn.execute(
            select(t.contacts.c.address_hash).where(
                t.contacts.c.address_hash.in_(list(digests)), t.contacts.c.erased_at.is_not(None)
            )
        )
        return [digests[bytes(r.address_hash)] for r in rows]

    def _redact_review(self, conn: Connection, address: str) -> int:
        """Mask ``address`` wherever the review queue holds it (erasure)."""
        needle = re.compile(re.escape(address.encode("utf-8")), re.IGNORECASE)
        changed, after = 0, 0
        while True:
            rows = conn.execute(
                select(t.inbound_review.c.id, t.inbound_review.c.content)
                .where(t.inbound_review.c.id > after)
                .order_by(t.inbound_review.c.id)
                .limit(200)
            ).all()
            if not rows:
                return changed
            for row in rows:
                content = bytes(row.content)
                if needle.search(content):
                    conn.execute(
                        update(t.inbound_review)
                        .where(t.inbound_review.c.id == row.id)
                        .values(content=redact(content, [address]))
                    )
                    changed += 1
            after = rows[-1].id
