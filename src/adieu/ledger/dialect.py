"""The ledger's hand-written SQL, for SQLite and PostgreSQL, in one place.

The hot paths (one-click, batch checks, bulk screening) go straight through
the driver: SQLAlchemy's statement building measured at about half of their
cost. Everything here is text built from constants and placeholders only;
values always travel as parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from adieu.ledger.schema import as_naive_utc
from adieu.ledger.vocabulary import CONSENT_REASONS, Fact, Frequency


class Dialect:
    def __init__(self, name: str) -> None:
        self.sqlite = name == "sqlite"
        #: The driver's placeholder (sqlite3: qmark; psycopg: format).
        self.p = "?" if self.sqlite else "%s"

    def marks(self, n: int) -> str:
        return ", ".join([self.p] * n)

    def stored(self, value: datetime) -> Any:
        """A time as the driver takes it: naive UTC, as text on SQLite in the
        format SQLAlchemy itself writes (so both sort and compare alike)."""
        # The text by ``isoformat``, not ``strftime``: a third of the cost.
        utc = as_naive_utc(value)
        if not self.sqlite:
            return utc
        text = utc.isoformat(" ")
        return text if utc.microsecond else text + ".000000"

    # -- writing ------------------------------------------------------------------

    def queue_deliveries(self, n: int) -> str:
        """An outbox row for every active webhook that wants each of ``n`` events."""
        p = self.p
        active = "w.active = 1" if self.sqlite else "w.active"
        pct = "%" if self.sqlite else "%%"  # psycopg reads a lone % as a placeholder
        return (
            "INSERT INTO outbox (webhook_id, event_id, contact_id, state, attempts,"
            " next_attempt_at, created_at)"
            f" SELECT w.id, e.id, e.contact_id, 'pending', 0, {p}, {p}"
            f" FROM events e JOIN webhooks w ON {active} AND (w.event_types = '*'"
            f" OR w.event_types LIKE '{pct},' || e.type || ',{pct}')"
            f" WHERE e.id IN ({self.marks(n)}) ORDER BY e.id, w.id"
        )

    def insert_events(self, n: int) -> str:
        p = self.p
        details = p if self.sqlite else f"CAST({p} AS JSON)"
        one = f"({p}, {p}, {p}, {p}, {p}, {p}, {p}, {details}, {p})"
        return (
            "INSERT INTO events (contact_id, type, channel, scope, campaign, at,"
            f" reason, details, recorded_at) VALUES {', '.join([one] * n)}"
            " RETURNING id, contact_id, scope"
        )

    def insert_contacts(self) -> str:
        p = self.p
        return (
            "INSERT INTO contacts (address_hash, address, created_at, frequency, soft_bounces)"
            f" VALUES ({p}, {p}, {p}, '{Frequency.EVERY.value}', 0)"
            " ON CONFLICT (address_hash) DO NOTHING"
        )

    def contact_ids(self, n: int) -> str:
        """Ids of ``n`` keyed hashes; on PostgreSQL locked in one global order,
        so concurrent batches never deadlock."""
        lock = "" if self.sqlite else " ORDER BY id FOR UPDATE"
        return (
            f"SELECT id, address_hash FROM contacts WHERE address_hash IN ({self.marks(n)}){lock}"
        )

    def consent_suppressions(self, n: int) -> str:
        consent = ", ".join(f"'{r.value}'" for r in sorted(CONSENT_REASONS))
        return (
            "SELECT contact_id, scope, reason, since FROM suppressions"
            f" WHERE contact_id IN ({self.marks(n)}) AND reason IN ({consent})"
        )

    def insert_suppressions(self) -> str:
        return (
            "INSERT INTO suppressions (contact_id, scope, reason, since, event_id)"
            f" VALUES ({self.marks(5)}) ON CONFLICT (contact_id, scope, reason) DO NOTHING"
        )

    def delete_subscription(self) -> str:
        return f"DELETE FROM subscriptions WHERE contact_id = {self.p} AND topic = {self.p}"

    # -- the send policy's reads ------------------------------------------------------

    def send_state(self) -> str:
        """One address's state in one indexed query; parameters (scope, scope, hash)."""
        p = self.p
        return (
            "SELECT c.frequency, c.paused_until, c.last_marketing_send_at,"
            " s.scope, s.reason, s.since, sub.topic"
            " FROM contacts c"
            f" LEFT JOIN suppressions s ON s.contact_id = c.id AND s.scope IN ('all', {p})"
            f" LEFT JOIN subscriptions sub ON sub.contact_id = c.id AND sub.topic = {p}"
            f" WHERE c.address_hash = {p}"
        )

    def send_state_all(self) -> str:
        """``send_state`` for all marketing (no topic: one join fewer, and one
        index probe instead of a list's; measured about a third cheaper on
        SQLite); parameter (hash,)."""
        return (
            "SELECT c.frequency, c.paused_until, c.last_marketing_send_at,"
            " s.scope, s.reason, s.since, NULL"
            " FROM contacts c"
            " LEFT JOIN suppressions s ON s.contact_id = c.id AND s.scope = 'all'"
            f" WHERE c.address_hash = {self.p}"
        )

    def send_states(self, keys: Sequence[bytes], scope: str) -> tuple[str, tuple[Any, ...]]:
        """Many addresses' states, keys sorted so the index is walked in order."""
        p = self.p
        if self.sqlite:
            source = "contacts c"
            where = f" WHERE c.address_hash IN ({self.marks(len(keys))})"
            params: tuple[Any, ...] = (scope, scope, *keys)
        else:  # one index probe per key, whatever the planner's statistics say
            source = f"unnest({p}::bytea[]) AS k(h) JOIN contacts c ON c.address_hash = k.h"
            where = ""
            params = (list(keys), scope, scope)
        sql = (
            "SELECT c.address_hash, c.frequency, c.paused_until,"
            " c.last_marketing_send_at, s.scope, s.reason, s.since, sub.topic"
            f" FROM {source}"
            f" LEFT JOIN suppressions s ON s.contact_id = c.id AND s.scope IN ('all', {p})"
            f" LEFT JOIN subscriptions sub ON sub.contact_id = c.id AND sub.topic = {p}"
            f"{where}"
        )
        return sql, params

    # -- bulk screening -----------------------------------------------------------------

    @property
    def address_bytes(self) -> str:
        """The clear address as UTF-8 bytes, straight into the screening dictionaries."""
        return "CAST(c.address AS BLOB)" if self.sqlite else "convert_to(c.address, 'UTF8')"

    def held_suppressions(
        self, reasons: Sequence[str], topic: str | None
    ) -> tuple[str, str, tuple[Any, ...]] | None:
        """``(label, FROM … WHERE …, params)`` for suppressions of all marketing
        with ``reasons`` and, when ``topic`` is given, of that topic for any
        reason (labelled as a topic opt-out); None when nothing is asked for."""
        wanted: list[str] = []
        params: tuple[Any, ...] = ()
        if reasons:
            wanted.append(f"(s.scope = 'all' AND s.reason IN ({self.marks(len(reasons))}))")
            params += tuple(reasons)
        if topic is not None:
            wanted.append(f"s.scope = {self.p}")
            params += (topic,)
        if not wanted:
            return None
        label = f"CASE WHEN s.scope = 'all' THEN s.reason ELSE '{Fact.TOPIC_OPT_OUT.value}' END"
        joined = (
            " FROM suppressions s JOIN contacts c ON c.id = s.contact_id"
            f" WHERE ({' OR '.join(wanted)})"
        )
        return label, joined, params

    ANY_ERASED = "SELECT 1 FROM contacts WHERE address IS NULL LIMIT 1"
    SEVERAL = (
        " AND s.contact_id IN"
        " (SELECT contact_id FROM suppressions GROUP BY contact_id HAVING COUNT(*) > 1)"
    )

    def paused(self) -> str:
        return (
            f"SELECT {self.address_bytes}, c.address_hash FROM contacts c"
            f" WHERE c.paused_until > {self.p}"
        )

    def capped(self) -> str:
        return (
            f"SELECT {self.address_bytes}, c.address_hash FROM contacts c"
            f" WHERE c.frequency = {self.p} AND c.last_marketing_send_at > {self.p}"
        )

    def subscribed(self) -> str:
        return (
            f"SELECT {self.address_bytes}, c.address_hash FROM subscriptions sub"
            f" JOIN contacts c ON c.id = sub.contact_id WHERE sub.topic = {self.p}"
        )
