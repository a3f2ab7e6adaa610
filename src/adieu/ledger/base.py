"""The ledger's plumbing: connections, the write transaction, contacts and events.

Each operation locks the contact (``SELECT … FOR UPDATE`` on PostgreSQL; the
single SQLite writer lock via ``BEGIN IMMEDIATE``), changes the materialised
state and appends an event, then commits. Nothing else writes consent state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Row, insert, select
from sqlalchemy.engine import Connection

from adieu.addresses import AddressHasher, mask_all
from adieu.ledger import schema as t
from adieu.ledger.database import WRITE, ReadPool
from adieu.ledger.dialect import Dialect
from adieu.ledger.records import SendState, Suppression, Topic
from adieu.ledger.vocabulary import Channel, EventType, Frequency, Reason
from adieu.scopes import check_campaign


def _utcnow() -> datetime:
    return datetime.now(UTC)


#: A known contact for whom nothing holds (no suppression, pause or cap).
_KNOWN_PLAIN = SendState(known=True)
_REASON = {r.value: r for r in Reason}

#: ``Connection.info`` key: the events written in the current transaction.
_WRITTEN = "adieu_events_written"


class LedgerBase:
    """What every part of the ledger shares: the engine, the hasher, the clock,
    the write transaction and the low-level writes of contacts and events."""

    #: The email service providers that get the ledger's decisions
    #: (``adieu.esp.push.queue.Targets``, set by ``Adieu``): queued in the
    #: same transaction as the events, like the webhook deliveries.
    esp_targets: Any = None

    def __init__(
        self,
        engine: Engine,
        hasher: AddressHasher,
        *,
        soft_bounce_limit: int = 3,
        soft_bounce_days: int = 30,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.engine = engine
        self.hasher = hasher
        self.soft_bounce_limit = soft_bounce_limit
        self.soft_bounce_window = timedelta(days=soft_bounce_days)
        self._clock = clock
        self._writer = engine.execution_options(**{WRITE: True})
        #: The transaction ``together`` holds open, per thread.
        self._joined = threading.local()
        self._insert: Any = _dialect_insert(engine.dialect.name)
        self._reads = ReadPool(engine)
        self._sqlite = engine.dialect.name == "sqlite"
        self._sql = Dialect(engine.dialect.name)
        self._send_state_sql = self._sql.send_state()
        self._send_state_all_sql = self._sql.send_state_all()
        self._topics: dict[str, Topic] = {}
        self._topics_loaded_at = datetime.min.replace(tzinfo=UTC)

    # -- plumbing -----------------------------------------------------------

    @contextmanager
    def together(self) -> Iterator[Connection]:
        """Several writes as one transaction, one durable commit: every ledger
        write made in the block, on this thread, joins it, each in a savepoint
        of its own (one that fails leaves no trace; the others stand). The
        events' deliveries are queued at the end, as for any write. If the
        block raises, nothing of it is committed. The connection is the
        block's own writes' too (a queue's bookkeeping beside the ledger's)."""
        if getattr(self._joined, "conn", None) is not None:
            raise RuntimeError("ledger writes are already together on this thread")
        with self._write() as conn:
            self._joined.conn = conn
            try:
                yield conn
            finally:
                self._joined.conn = None

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction. Events written in it get their webhook deliveries
        queued in the same transaction, just before the commit. Inside
        ``together``, a savepoint of its transaction instead."""
        joined: Connection | None = getattr(self._joined, "conn", None)
        if joined is not None:
            so_far: list[int] = joined.info[_WRITTEN]
            before = len(so_far)
            try:
                with joined.begin_nested():
                    yield joined
            except BaseException:
                del so_far[before:]  # rolled back: no deliveries for them
                raise
            return
        with self._writer.begin() as conn:
            written: list[int] = []
            conn.info[_WRITTEN] = written
            try:
                yield conn
                if written:
                    self._queue_deliveries(conn, written)
                    if self.esp_targets is not None:
                        self.esp_targets.queue(conn, written, self.now())
            finally:
                if not conn.invalidated:  # a lost connection has no info (and raises)
                    conn.info.pop(_WRITTEN, None)

    def _queue_deliveries(self, conn: Connection, event_ids: list[int]) -> None:
        """Fill the outbox for every active webhook that wants these events, in
        one INSERT … SELECT (nothing at all when no webhook is registered)."""
        now = self._stored(self.now())
        for start in range(0, len(event_ids), 500):
            part = event_ids[start : start + 500]
            conn.exec_driver_sql(self._sql.queue_deliveries(len(part)), (now, now, *part))

    def _scrub_files(self) -> None:
        """After an erasure on SQLite: copy the write-ahead log into the
        database and truncate it, so no old page image with the erased address
        lingers in ``adieu.db-wal`` (``secure_delete`` zeroes it in the
        database file). Best effort: a reader holding an old snapshot can keep
        part of the log until the next checkpoint."""
        if not self._sqlite:
            return
        raw = self.engine.raw_connection()
        try:
            raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()  # type: ignore[union-attr]
        finally:
            raw.close()

    def now(self) -> datetime:
        return self._clock()

    def _contact(
        self,
        conn: Connection,
        address: str | None,
        *,
        create: bool = True,
        digest: bytes | None = None,
    ) -> Row[Any] | None:
        """The contact row, locked for this transaction; created when asked.
        With ``address=None`` the contact is known by its keyed hash only."""
        digest = digest if digest is not None else self.hasher.hash(address or "")
        query = select(t.contacts).where(t.contacts.c.address_hash == digest).with_for_update()
        row = conn.execute(query).first()
        if row is None and create:
            conn.execute(
                self._insert(t.contacts)
                .values(
                    address_hash=digest,
                    address=address,
                    created_at=self.now(),
                    frequency=Frequency.EVERY.value,
                    soft_bounces=0,
                )
                .on_conflict_do_nothing(index_elements=["address_hash"])
            )
            row = conn.execute(query).first()
        return row

    def _event(
        self,
        conn: Connection,
        contact_id: int,
        type_: EventType,
        channel: Channel,
        scope: str,
        at: datetime,
        *,
        campaign: str | None = None,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> int:
        if details or reason:
            erased = conn.execute(
                select(t.contacts.c.erased_at).where(t.contacts.c.id == contact_id)
            ).scalar()
            if erased is not None:
                # An erased person is never stored in the clear again: no free
                # text, and any address in the details masked.
                reason, details = None, _masked(details)
        result = conn.execute(
            insert(t.events)
            .values(
                contact_id=contact_id,
                type=type_.value,
                channel=channel.value,
                scope=scope,
                campaign=check_campaign(campaign),
                at=at,
                reason=reason,
                details=dict(details) if details else None,
                recorded_at=self.now(),
            )
            .returning(t.events.c.id)
        )
        event_id = int(result.scalar_one())
        conn.info[_WRITTEN].append(event_id)
        return event_id

    def _stored(self, value: datetime) -> Any:
        return self._sql.stored(value)

    def _insert_events(self, conn: Connection, rows: list[tuple[Any, ...]]) -> list[int]:
        """Insert events straight through the driver, in multi-row statements.

        ``rows`` are (contact_id, type, channel, scope, campaign, at, reason,
        details) with ``at`` from :meth:`_stored` and ``details`` as JSON text.
        Returns the ids in the order given. Rows come back from ``INSERT …
        RETURNING`` in any order, so each statement takes rows whose
        (contact, scope) is unique, and they are matched on it.
        """
        recorded = self._stored(self.now())
        ids: list[int] = [0] * len(rows)
        waiting = list(range(len(rows)))
        while waiting:
            taken: dict[tuple[int, str], int] = {}
            later: list[int] = []
            for i in waiting:
                key = (rows[i][0], rows[i][3])
                if key in taken:
                    later.append(i)
                else:
                    taken[key] = i
            chosen = list(taken.values())
            for start in range(0, len(chosen), 100):
                part = chosen[start : start + 100]
                returned = conn.exec_driver_sql(
                    self._sql.insert_events(len(part)),
                    tuple(value for i in part for value in (*rows[i], recorded)),
                )
                for event_id, contact_id, scope in returned:
                    ids[taken[(contact_id, scope)]] = event_id
            waiting = later
        conn.info[_WRITTEN].extend(ids)
        return ids

    def _suppressions(self, conn: Connection, contact_id: int, scope: str) -> list[Suppression]:
        rows = conn.execute(
            select(t.suppressions.c.scope, t.suppressions.c.reason, t.suppressions.c.since).where(
                t.suppressions.c.contact_id == contact_id, t.suppressions.c.scope == scope
            )
        )
        return [Suppression(r.scope, Reason(r.reason), r.since) for r in rows]

    def _suppress(
        self,
        conn: Connection,
        contact_id: int,
        scope: str,
        reason: Reason,
        at: datetime,
        event_id: int,
    ) -> None:
        conn.execute(
            self._insert(t.suppressions)
            .values(
                contact_id=contact_id, scope=scope, reason=reason.value, since=at, event_id=event_id
            )
            .on_conflict_do_nothing(index_elements=["contact_id", "scope", "reason"])
        )

    def _contact_ids(self, conn: Connection, addresses: list[str]) -> dict[str, int]:
        """Contact ids for canonical ``addresses``, creating the missing ones,
        straight through the driver. On PostgreSQL the rows are locked for this
        transaction, in one global order, so concurrent batches never deadlock."""
        if not addresses:
            return {}
        digests = {a: self.hasher.hash(a) for a in addresses}
        created = self._stored(self.now())
        conn.exec_driver_sql(
            self._sql.insert_contacts(), sorted((d, a, created) for a, d in digests.items())
        )
        found: dict[bytes, int] = {}
        wanted = sorted(set(digests.values()))
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            for contact_id, digest in conn.exec_driver_sql(
                self._sql.contact_ids(len(part)), tuple(part)
            ):
                found[bytes(digest)] = contact_id
        return {a: found[d] for a, d in digests.items()}


def _masked(value: Any) -> Any:
    """``value`` (event details) with every address in it masked."""
    if isinstance(value, str):
        return mask_all(value)
    if isinstance(value, Mapping):
        return {str(k): _masked(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v) for v in value]
    return value


def _clip(text: str | None, limit: int = 1000) -> str | None:
    if text is None:
        return None
    text = text.strip()
    return text[:limit] or None


def _dialect_insert(name: str) -> Any:
    """The dialect's ``insert`` (with ON CONFLICT), importing only the one in use."""
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert
