"""The relay's memory of the copies it handed on, so that each recipient's
copy of a message is delivered once across the client's retries, the
relay's workers and its restarts.

A copy is known by the message's fingerprint (a keyed hash of the envelope
sender and the message as the client sent it, ``adieu.smtp.relay``) and the
recipient's keyed hash; no address is stored. A row says the copy was
``delivered`` (the upstream took it) or ``refused`` (the upstream refused it
for good, and the refusal is recorded in the ledger as a hard bounce or a
rejection). Every later attempt of the message skips both. A copy the
upstream did not take for now has no row, so the client's retry sends it.
Rows are kept for ``KEEP`` (seven days), far longer than any client retries
a message, then pruned: a message sent again byte for byte within that time
(the same Message-ID and Date) reaches nobody twice.

The guarantee, and where it ends. The rows of an attempt are committed
durably (one batched commit for whatever the relay's threads finished
meanwhile) before the client is answered, 250, 451 or 5xx alike. So:

1. The relay stops after the upstream took a copy and before its row was
   committed (a window of one batched commit, milliseconds): the client gets
   no answer and retries, and that copy is sent again. This is the one
   duplicate SMTP cannot rule out (there is no two-phase commit with the
   upstream); the relay prefers a duplicate to a lost copy (RFC 5321 §6.1).
2. The rows are committed and the relay stops before answering, or the 250
   is lost on the way (RFC 1047): the retry skips every copy delivered.
   Nothing is sent twice.
3. A permanent refusal is recorded in the ledger before its row; stopping
   between the two means the retry asks the upstream again and the refusal is
   recorded twice (the suppression itself is idempotent).
4. Two attempts of one message at the same time (a client that gave up
   waiting and sent it again while the first attempt still runs): the relay's
   workers on one machine share a list of messages under way, and the second
   attempt is answered 451 (``adieu.smtp.relay.InFlight``). Relays on two
   machines sharing one PostgreSQL ledger do not see each other's, and could
   both send a copy there.
5. The database cannot be written when an attempt ends (the batch is tried
   three times): when every copy was delivered or refused, the client gets
   the answer it would have got and no retry comes; otherwise the 451 stands
   and its retry may send the copies that went again.

The sends (for the frequency caps and the report) are written five times a
second off the path of the answer, as before, and the rest when the relay
stops.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from adieu.addresses import AddressHasher, canonical_or_none
from adieu.errors import Unavailable
from adieu.ledger.database import ReadPool
from adieu.ledger.dialect import Dialect
from adieu.ledger.vocabulary import Frequency
from adieu.scopes import check_campaign

DELIVERED = "delivered"
REFUSED = "refused"

#: How long delivered and refused copies are remembered.
KEEP = timedelta(days=7)
#: Rows removed per pruning transaction.
PRUNE_CHUNK = 5000
#: How long a writer waits for SQLite's write lock before giving up.
_LOCK_WAIT_S = 30.0
#: Rows a statement (SQLite takes up to 32,766 parameters).
_ROWS = 100


@dataclass(slots=True)
class Sends:
    """Copies delivered, to be recorded as sends (the frequency caps and the
    report count them) as ``Ledger.record_sends`` records them."""

    addresses: Sequence[str]
    category: str
    topic: str | None = None
    campaign: str | None = None


@dataclass(slots=True)
class Settle:
    """What one attempt did: per recipient key, DELIVERED or REFUSED."""

    fingerprint: bytes
    outcomes: Mapping[bytes, str]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RelayLog:
    """Reads and writes the relay's rows, many messages per transaction.

    One transaction at a time (``adieu.smtp.relay`` batches them), on a
    connection of its own, straight through the driver. On SQLite the relay's
    workers all write to the one database: the write lock is asked for again
    every fraction of a millisecond, rather than with SQLite's own backoff
    (which sleeps up to 100 ms a step).
    """

    def __init__(
        self,
        engine: Engine,
        hasher: AddressHasher,
        clock: Callable[[], datetime] = _utcnow,
        keep: timedelta = KEEP,
    ) -> None:
        self._engine = engine
        self._hasher = hasher
        self._clock = clock
        self.keep = keep
        self._sql = Dialect(engine.dialect.name)
        self._reads = ReadPool(engine)
        self._raw: Any = None
        self._writing = threading.Lock()
        self._known_sql: dict[int, str] = {}
        p = self._sql.p
        row = "rowid" if self._sql.sqlite else "ctid"
        self._prune = (
            f"DELETE FROM relay_deliveries WHERE {row} IN (SELECT {row} FROM relay_deliveries"
            f" WHERE until < {p} LIMIT {PRUNE_CHUNK})"
        )

    def now(self) -> datetime:
        return self._clock()

    def known(self, fingerprint: bytes, recipients: Sequence[bytes]) -> dict[bytes, str]:
        """Which of these copies of a message were delivered or refused
        before: recipient key → state. (A row past its time counts until it is
        pruned, minutes later: a week and a few minutes is still a week.)"""
        found: dict[bytes, str] = {}
        wanted = sorted(set(recipients))
        try:
            for start in range(0, len(wanted), 500):
                part = wanted[start : start + 500]
                rows = self._reads.fetchall(self._known(len(part)), (fingerprint, *part))
                found.update((bytes(recipient), state) for recipient, state in rows)
        except self._engine.dialect.loaded_dbapi.Error as exc:
            raise Unavailable() from exc
        return found

    def _known(self, n: int) -> str:
        sql = self._known_sql.get(n)
        if sql is None:
            sql = self._known_sql[n] = (
                "SELECT recipient, state FROM relay_deliveries"
                f" WHERE fingerprint = {self._sql.p} AND recipient IN ({self._sql.marks(n)})"
            )
        return sql

    # -- the writer's connection ------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        """A write transaction on the writers' own connection, one at a time;
        a database that cannot answer is ``Unavailable`` (nothing was written)."""
        with self._writing, self._transaction_unlocked() as cursor:
            yield cursor

    @contextlib.contextmanager
    def _transaction_unlocked(self) -> Iterator[Any]:
        dbapi = self._engine.dialect.loaded_dbapi
        try:
            if self._raw is None:
                raw = self._engine.raw_connection()  # with the engine's pragmas
                raw.detach()  # the writer's own, for as long as it lives
                if self._sql.sqlite:
                    raw.cursor().execute("PRAGMA busy_timeout = 0")  # see _begin
                self._raw = raw
            cursor = self._raw.cursor()
            if self._sql.sqlite:
                self._begin(cursor, dbapi)
        except dbapi.Error as exc:
            self.close()
            raise Unavailable() from exc
        try:
            yield cursor
            if self._sql.sqlite:
                cursor.execute("COMMIT")
            else:
                self._raw.commit()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                if self._sql.sqlite:
                    cursor.execute("ROLLBACK")
                else:
                    self._raw.rollback()
            if isinstance(exc, (dbapi.OperationalError, dbapi.InterfaceError)):
                self.close()  # a connection that failed is not used again
                raise Unavailable() from exc
            raise
        finally:
            with contextlib.suppress(Exception):
                cursor.close()

    @staticmethod
    def _begin(cursor: Any, dbapi: Any) -> None:
        """``BEGIN IMMEDIATE``, asked for again in short steps while another
        writer holds the lock (each worker commits often and briefly)."""
        deadline = time.monotonic() + _LOCK_WAIT_S
        pause = 0.0002
        while True:
            try:
                cursor.execute("BEGIN IMMEDIATE")
                return
            except dbapi.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 1.5, 0.002)

    def close(self) -> None:
        raw, self._raw = self._raw, None
        if raw is not None:
            with contextlib.suppress(Exception):
                raw.close()
        self._reads.close()

    # -- writing -------------------------------------------------------------------------

    def settle(self, settles: Sequence[Settle]) -> None:
        """Record what attempts did, in one transaction (one durable commit)."""
        until = self._sql.stored(self.now() + self.keep)
        # One order for every writer, so that concurrent batches on
        # PostgreSQL take their row locks in the same order.
        marks = sorted(
            (settle.fingerprint, recipient, state)
            for settle in settles
            for recipient, state in settle.outcomes.items()
        )
        if not marks:
            return
        p = self._sql.p
        with self._transaction() as cursor:
            # Many rows a statement: the driver lets go of the interpreter
            # lock once per statement, and the relay's threads want it back.
            for start in range(0, len(marks), _ROWS):
                part = marks[start : start + _ROWS]
                cursor.execute(
                    "INSERT INTO relay_deliveries (fingerprint, recipient, state, until) VALUES "
                    + ", ".join([f"({p}, {p}, {p}, {p})"] * len(part))
                    + " ON CONFLICT (fingerprint, recipient)"
                    " DO UPDATE SET state = excluded.state, until = excluded.until",
                    tuple(v for mark in part for v in (*mark, until)),
                )

    def record_sends(self, batches: Sequence[Sends], at: datetime | None = None) -> None:
        """Record delivered copies as sends, in one transaction: the rows
        ``Ledger.record_sends`` writes (a test compares them), the contacts
        created when missing, a send each, the last marketing send."""
        canonical: dict[str, bytes] = {}
        for batch in batches:
            for address in batch.addresses:
                found = canonical_or_none(address)
                if found is not None and found not in canonical:
                    canonical[found] = self._hasher.hash(found)
        if not canonical:
            return
        stored = self._sql.stored(at or self.now())
        p = self._sql.p
        with self._transaction() as cursor:
            new = sorted((d, a) for a, d in canonical.items())
            for start in range(0, len(new), _ROWS):
                part = new[start : start + _ROWS]
                cursor.execute(
                    "INSERT INTO contacts (address_hash, address, created_at, frequency,"
                    " soft_bounces) VALUES "
                    + ", ".join([f"({p}, {p}, {p}, '{Frequency.EVERY.value}', 0)"] * len(part))
                    + " ON CONFLICT (address_hash) DO NOTHING",
                    tuple(v for digest, address in part for v in (digest, address, stored)),
                )
            ids: dict[bytes, int] = {}
            wanted = sorted(set(canonical.values()))
            for start in range(0, len(wanted), 500):
                digests = wanted[start : start + 500]
                cursor.execute(self._sql.contact_ids(len(digests)), tuple(digests))
                ids.update((bytes(digest), contact_id) for contact_id, digest in cursor.fetchall())
            rows: list[tuple[Any, ...]] = []
            marketing: set[int] = set()
            for batch in batches:
                campaign = check_campaign(batch.campaign)
                seen: set[int] = set()
                for address in batch.addresses:
                    found = canonical_or_none(address)
                    contact_id = ids.get(canonical[found]) if found is not None else None
                    if contact_id is None or contact_id in seen:
                        continue
                    seen.add(contact_id)
                    rows.append((contact_id, batch.category, batch.topic, campaign, stored))
                    if batch.category == "marketing":
                        marketing.add(contact_id)
            for start in range(0, len(rows), _ROWS):
                part_rows = rows[start : start + _ROWS]
                cursor.execute(
                    "INSERT INTO sends (contact_id, category, topic, campaign, at) VALUES "
                    + ", ".join([f"({p}, {p}, {p}, {p}, {p})"] * len(part_rows)),
                    tuple(v for row in part_rows for v in row),
                )
            touched = sorted(marketing)
            for start in range(0, len(touched), 500):
                some = touched[start : start + 500]
                cursor.execute(
                    f"UPDATE contacts SET last_marketing_send_at = {p}"
                    f" WHERE id IN ({self._sql.marks(len(some))})",
                    (stored, *some),
                )

    def prune(self, rounds: int | None = None) -> int:
        """Forget copies past their time, in chunks of ``PRUNE_CHUNK`` rows,
        each its own transaction; at most ``rounds`` chunks when given. The
        number of rows removed."""
        removed = 0
        cutoff = self._sql.stored(self.now())
        done = 0
        while rounds is None or done < rounds:
            with self._transaction() as cursor:
                cursor.execute(self._prune, (cutoff,))
                count = cursor.rowcount
            removed += max(count, 0)
            done += 1
            if count < PRUNE_CHUNK:
                break
        return removed
