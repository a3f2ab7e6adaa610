"""Suppression lists in and out: imports in batches, exports streamed."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy import select

from adieu.ledger import schema as t
from adieu.ledger.records import ImportResult, SuppressionRecord
from adieu.ledger.topics import TopicStore
from adieu.ledger.vocabulary import Channel, EventType, Frequency, Reason
from adieu.scopes import ALL
from adieu.times import iso


class BulkStore(TopicStore):
    """Imports and exports of suppressions."""

    def import_suppressions(
        self,
        records: Iterable[SuppressionRecord],
        *,
        channel: Channel = Channel.IMPORT,
        source: str = "generic",
        batch_size: int = 2000,
        details: Mapping[str, Any] | None = None,
    ) -> ImportResult:
        """Add suppressions in batches, one transaction per batch.

        Each new suppression gets its own event (where it came from, when, and
        ``details``: who imported it, never personal data).
        Already-suppressed addresses are counted and left as they are.
        """
        extra = dict(details or {})
        result = ImportResult()
        batch: list[SuppressionRecord] = []
        for record in records:
            batch.append(record)
            if len(batch) >= batch_size:
                self._import_batch(batch, result, channel, source, extra)
                batch = []
        if batch:
            self._import_batch(batch, result, channel, source, extra)
        if result.added >= 10_000 and not self._sqlite:
            # Fresh planner statistics: with the old ones PostgreSQL may think
            # the suppressions are a handful and hash all of them for every
            # batch check (measured: 180 ms instead of 9 ms per 1,000 addresses).
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("ANALYZE contacts")
                conn.exec_driver_sql("ANALYZE suppressions")
        return result

    def _import_batch(
        self,
        batch: list[SuppressionRecord],
        result: ImportResult,
        channel: Channel,
        source: str,
        extra: Mapping[str, Any],
    ) -> None:
        now = self.now()
        # A hard bounce is a fact about the mailbox: it has no topic.
        batch = [
            replace(r, scope=ALL) if r.reason is Reason.HARD_BOUNCE and r.scope != ALL else r
            for r in batch
        ]
        scopes = {r.scope for r in batch}
        for scope in scopes:
            self.check_scope(scope)
        with self._write() as conn:
            clear = sorted({r.address for r in batch if r.address})
            by_address = self._contact_ids(conn, clear)
            ids: dict[bytes, int] = {}
            hashed_only = [r.address_hash for r in batch if not r.address and r.address_hash]
            for start in range(0, len(hashed_only), 900):
                for r in conn.execute(
                    select(t.contacts.c.address_hash, t.contacts.c.id).where(
                        t.contacts.c.address_hash.in_(hashed_only[start : start + 900])
                    )
                ):
                    ids[bytes(r.address_hash)] = r.id
            missing = [h for h in hashed_only if h not in ids]
            if missing:  # an erased contact from another installation with our key
                conn.execute(
                    self._insert(t.contacts).on_conflict_do_nothing(
                        index_elements=["address_hash"]
                    ),
                    [
                        {
                            "address_hash": h,
                            "address": None,
                            "created_at": now,
                            "erased_at": now,
                            "frequency": Frequency.EVERY.value,
                            "soft_bounces": 0,
                        }
                        for h in dict.fromkeys(missing)
                    ],
                )
                for r in conn.execute(
                    select(t.contacts.c.address_hash, t.contacts.c.id).where(
                        t.contacts.c.address_hash.in_(missing)
                    )
                ):
                    ids[bytes(r.address_hash)] = r.id
            # Already held: the same scope with a hard bounce (for a bounce) or
            # with any consent reason (for the others).
            held: set[tuple[int, str, bool]] = set()
            id_list = list({*ids.values(), *by_address.values()})
            for start in range(0, len(id_list), 900):
                held.update(
                    (r.contact_id, r.scope, r.reason == Reason.HARD_BOUNCE.value)
                    for r in conn.execute(
                        select(
                            t.suppressions.c.contact_id,
                            t.suppressions.c.scope,
                            t.suppressions.c.reason,
                        ).where(t.suppressions.c.contact_id.in_(id_list[start : start + 900]))
                    )
                )
            new: list[tuple[int, SuppressionRecord]] = []
            for record in batch:
                cid = (
                    by_address[record.address] if record.address else ids[record.address_hash]  # type: ignore[index]
                )
                key = (cid, record.scope, record.reason is Reason.HARD_BOUNCE)
                if key in held:
                    result.already += 1
                    continue
                held.add(key)
                new.append((cid, record))
            if not new:
                return
            event_ids = self._insert_events(
                conn,
                [
                    (
                        cid,
                        EventType.SUPPRESS.value,
                        channel.value,
                        r.scope,
                        None,
                        self._stored(now),
                        None,
                        json.dumps(
                            {
                                **extra,
                                "source": source,
                                "reason": r.reason.value,
                                **({"since": iso(r.since)} if r.since else {}),
                            }
                        ),
                    )
                    for cid, r in new
                ],
            )
            conn.execute(
                self._insert(t.suppressions).on_conflict_do_nothing(
                    index_elements=["contact_id", "scope", "reason"]
                ),
                [
                    {
                        "contact_id": cid,
                        "scope": r.scope,
                        "reason": r.reason.value,
                        "since": r.since or now,
                        "event_id": eid,
                    }
                    for (cid, r), eid in zip(new, event_ids, strict=True)
                ],
            )
            result.added += len(new)

    def export_suppressions(self, *, batch: int = 5000) -> Iterator[SuppressionRecord]:
        """Every suppression, streamed in id order."""
        c, s = t.contacts, t.suppressions
        query = (
            select(c.c.address, c.c.address_hash, s.c.scope, s.c.reason, s.c.since)
            .join(s, s.c.contact_id == c.c.id)
            .order_by(s.c.id)
        )
        with self.engine.connect() as conn:
            for r in conn.execution_options(yield_per=batch).execute(query):
                yield SuppressionRecord(
                    address=r.address,
                    address_hash=bytes(r.address_hash),
                    scope=r.scope,
                    reason=Reason(r.reason),
                    since=r.since,
                )
