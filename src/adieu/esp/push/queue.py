"""The ``esp_pushes`` queue: filled in the ledger's own transaction, drained
by the deliverer with leases, in order per (provider, contact).

It is the webhook outbox's machinery on a table of its own (the same states,
the same lease and "oldest waiting row of its kind first" rule, round-robin
across providers), so that a provider that is down or slow never holds back
the webhooks, nor the other way round.

Which decisions are pushed, per event the ledger writes:

- an unsubscribe (any door), a complaint, a hard bounce, a suppression an
  operator or an import added (its reason decides which), and a topic turned
  off in the preference center: an ``add``, for every provider that has a
  list for its scope (all mail; for a topic, SendGrid's group or Mailgun's
  tag). An event that came from a provider (an ESP webhook, its own ``sync``)
  is not pushed back to that provider;
- a resubscribe, a lift, a topic turned back on: a ``remove`` of what was
  lifted, only when nothing else holds in that scope any more (a hard bounce
  the person cannot lift keeps the provider's entry);
- an erasure: the rows already delivered or dead lose the address. Rows still
  pending keep it until they are delivered (the provider must learn of the
  suppression; its list is where the address stays, as Adieu keeps the keyed
  hash), then it is cleared; a dead letter of an erased person can no longer be
  replayed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from adieu.esp.push import ADD, BOUNCE, COMPLAINT, REMOVE, UNSUBSCRIBE
from adieu.ledger import schema as t
from adieu.ledger.database import WRITE
from adieu.ledger.leasing import due_in_turn, lease
from adieu.ledger.vocabulary import DEAD, DELIVERED, PENDING, EventType, Reason
from adieu.scopes import ALL

_KIND = {
    Reason.UNSUBSCRIBE.value: UNSUBSCRIBE,
    Reason.MANUAL.value: UNSUBSCRIBE,
    Reason.IMPORT.value: UNSUBSCRIBE,
    Reason.COMPLAINT.value: COMPLAINT,
    Reason.HARD_BOUNCE.value: BOUNCE,
}
_WATCHED = (
    EventType.UNSUBSCRIBE.value,
    EventType.COMPLAINT.value,
    EventType.HARD_BOUNCE.value,
    EventType.SUPPRESS.value,
    EventType.RESUBSCRIBE.value,
    EventType.PREFERENCES.value,
    EventType.ERASE.value,
)


@dataclass(frozen=True, slots=True)
class Decision:
    """One row to queue."""

    provider: str
    contact_id: int
    event_id: int | None
    action: str
    kind: str
    scope: str
    address: str


@dataclass(frozen=True, slots=True)
class Push:
    """One claimed row, with what the deliverer needs."""

    id: int
    provider: str
    contact_id: int
    action: str
    kind: str
    scope: str
    address: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Counts:
    pending: int = 0
    dead: int = 0
    delivered: int = 0
    oldest_pending_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Letter:
    """A dead (or pending) row as ``adieu esp list`` shows it: no address."""

    id: int
    provider: str
    action: str
    kind: str
    scope: str
    attempts: int
    last_error: str | None
    created_at: datetime


class Targets:
    """The configured providers, and per provider which topics it takes; the
    ledger calls :meth:`queue` in each write transaction that wrote events."""

    def __init__(self, takes: dict[str, Callable[[str], bool]]) -> None:
        self.takes = takes

    @classmethod
    def from_settings(cls, settings: Any) -> Targets:
        from adieu.esp.push.providers import providers

        return cls({p.name: p.takes for p in providers(settings)})

    def queue(self, conn: Connection, event_ids: Sequence[int], now: datetime) -> None:
        if not self.takes or not event_ids:
            return
        e, c = t.events, t.contacts
        rows: list[Any] = []
        for start in range(0, len(event_ids), 500):
            rows += conn.execute(
                select(e.c.id, e.c.contact_id, e.c.type, e.c.scope, e.c.details, c.c.address)
                .join(c, c.c.id == e.c.contact_id)
                .where(e.c.id.in_(list(event_ids[start : start + 500])), e.c.type.in_(_WATCHED))
                .order_by(e.c.id)
            ).all()
        decisions: list[Decision] = []
        for row in rows:
            if row.type == EventType.ERASE.value:
                conn.execute(
                    update(t.esp_pushes)
                    .where(t.esp_pushes.c.contact_id == row.contact_id)
                    .where(t.esp_pushes.c.state != PENDING)
                    .values(address=None)
                )
                continue
            if not row.address:
                continue  # known only by its keyed hash: nothing to tell a provider
            for action, kind, scope in _decisions(conn, row):
                for provider, takes in self.takes.items():
                    if _from(row.details) == provider or not takes(scope):
                        continue
                    decisions.append(
                        Decision(provider, row.contact_id, row.id, action, kind, scope, row.address)
                    )
        enqueue(conn, decisions, now)


def _from(details: Any) -> str | None:
    """The provider an event came from (an ESP webhook, or a sync's import)."""
    if not isinstance(details, dict):
        return None
    value = details.get("provider") or details.get("source")
    return value if isinstance(value, str) else None


def _decisions(conn: Connection, row: Any) -> list[tuple[str, str, str]]:
    details = row.details if isinstance(row.details, dict) else {}
    if row.type == EventType.UNSUBSCRIBE.value:
        return [(ADD, UNSUBSCRIBE, row.scope)]
    if row.type == EventType.COMPLAINT.value:
        return [(ADD, COMPLAINT, ALL)]
    if row.type == EventType.HARD_BOUNCE.value:
        return [(ADD, BOUNCE, ALL)]
    if row.type == EventType.SUPPRESS.value:
        kind = _KIND.get(str(details.get("reason")), UNSUBSCRIBE)
        return [(ADD, kind, ALL if kind != UNSUBSCRIBE else row.scope)]
    if row.type == EventType.RESUBSCRIBE.value:
        lifted = [r for r in details.get("lifted", []) if r in _KIND]
        found: list[tuple[str, str, str]] = []
        for reason in lifted:
            kind = _KIND[reason]
            scope = row.scope if kind == UNSUBSCRIBE else ALL
            if not _still_held(conn, row.contact_id, scope):
                found.append((REMOVE, kind, scope))
        return list(dict.fromkeys(found))
    if row.type == EventType.PREFERENCES.value:
        found = []
        for change in details.get("changes", []):
            if not (isinstance(change, list) and len(change) == 3):
                continue
            name, old, new = change
            if not (isinstance(name, str) and name.startswith("topic:")) or old == new:
                continue
            topic = name[len("topic:") :]
            if new is False:
                found.append((ADD, UNSUBSCRIBE, topic))
            elif not _still_held(conn, row.contact_id, topic):
                found.append((REMOVE, UNSUBSCRIBE, topic))
        return found
    return []


def _still_held(conn: Connection, contact_id: int, scope: str) -> bool:
    s = t.suppressions
    return (
        conn.execute(
            select(s.c.id).where(s.c.contact_id == contact_id, s.c.scope == scope).limit(1)
        ).first()
        is not None
    )


def enqueue(conn: Connection, decisions: Iterable[Decision], now: datetime) -> int:
    rows = [
        {
            "provider": d.provider,
            "event_id": d.event_id,
            "contact_id": d.contact_id,
            "action": d.action,
            "kind": d.kind,
            "scope": d.scope,
            "address": d.address,
            "state": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for d in decisions
    ]
    if rows:
        conn.execute(insert(t.esp_pushes), rows)
    return len(rows)


class PushQueue:
    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self._writer = engine.execution_options(**{WRITE: True})
        self._clock = clock
        self._last_served = ""

    def add(self, decisions: Iterable[Decision]) -> int:
        """Queue decisions outside an event's transaction (``adieu esp sync``)."""
        with self._writer.begin() as conn:
            return enqueue(conn, decisions, self._clock())

    def claim(self, limit: int = 100, lease_for: timedelta = timedelta(seconds=60)) -> list[Push]:
        """Due rows that are the oldest waiting one of their (provider,
        contact), leased for ``lease_for``, round-robin across providers."""
        now = self._clock()
        with self.engine.connect() as conn:
            found = due_in_turn(conn, t.esp_pushes, "provider", now, limit, self._last_served)
        if not found:
            return []
        if len(found) == limit:
            self._last_served = found[-1][1]
        candidates = [i for i, _ in found]
        q = t.esp_pushes
        with self._writer.begin() as conn:
            taken = lease(conn, q, candidates, now, lease_for)
            rows = conn.execute(select(q).where(q.c.id.in_(taken))).all()
        order = {row_id: n for n, row_id in enumerate(candidates)}
        rows = sorted(rows, key=lambda r: order[int(r.id)])
        claimed: list[Push] = []
        orphans: list[int] = []
        for r in rows:
            if not r.address:
                orphans.append(int(r.id))
                continue
            claimed.append(
                Push(
                    int(r.id),
                    r.provider,
                    int(r.contact_id),
                    r.action,
                    r.kind,
                    r.scope,
                    r.address,
                    int(r.attempts),
                )
            )
        if orphans:  # never the case for rows this code wrote; kept from dying quietly
            self.failed([(i, "no address to send (erased)", None) for i in orphans])
        return claimed

    def delivered(self, ids: Sequence[int]) -> None:
        """Done: the row stays for the counts, without the address."""
        if not ids:
            return
        q = t.esp_pushes
        with self._writer.begin() as conn:
            conn.execute(
                update(q)
                .where(q.c.id.in_(list(ids)))
                .values(
                    state=DELIVERED,
                    delivered_at=self._clock(),
                    lease_until=None,
                    attempts=q.c.attempts + 1,
                    last_error=None,
                    address=None,
                )
            )

    def failed(self, failures: Sequence[tuple[int, str, datetime | None]]) -> None:
        """(id, error, next attempt) per row; None for the next attempt makes a
        dead letter (of an erased person: without the address)."""
        if not failures:
            return
        q = t.esp_pushes
        with self._writer.begin() as conn:
            for row_id, error, next_at in failures:
                values: dict[str, Any] = {
                    "attempts": q.c.attempts + 1,
                    "last_error": error[:500],
                    "lease_until": None,
                }
                if next_at is None:
                    values["state"] = DEAD
                else:
                    values["next_attempt_at"] = next_at
                conn.execute(update(q).where(q.c.id == row_id).values(**values))
                if next_at is None:
                    erased = (
                        select(t.contacts.c.id)
                        .where(t.contacts.c.id == q.c.contact_id)
                        .where(t.contacts.c.erased_at.is_not(None))
                        .exists()
                    )
                    conn.execute(update(q).where(q.c.id == row_id, erased).values(address=None))

    def defer(self, ids: Sequence[int], until: datetime, error: str | None = None) -> None:
        """Not tried (the provider asked to wait, or failed just before): due
        again at ``until``, no attempt counted."""
        if not ids:
            return
        q = t.esp_pushes
        values: dict[str, Any] = {"lease_until": None, "next_attempt_at": until}
        if error is not None:
            values["last_error"] = error[:500]
        with self._writer.begin() as conn:
            conn.execute(
                update(q).where(q.c.id.in_(list(ids)), q.c.state == PENDING).values(**values)
            )

    def release(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        q = t.esp_pushes
        with self._writer.begin() as conn:
            conn.execute(
                update(q)
                .where(q.c.id.in_(list(ids)), q.c.state == PENDING)
                .values(lease_until=None)
            )

    def replay(self, provider: str | None = None) -> int:
        """Dead letters that still have their address back to the queue, due now."""
        q = t.esp_pushes
        query = update(q).where(q.c.state == DEAD, q.c.address.is_not(None))
        if provider is not None:
            query = query.where(q.c.provider == provider)
        with self._writer.begin() as conn:
            result = conn.execute(
                query.values(
                    state=PENDING, attempts=0, next_attempt_at=self._clock(), lease_until=None
                )
            )
        return int(result.rowcount)

    def prune(self, older_than: timedelta) -> int:
        cutoff = self._clock() - older_than
        q = t.esp_pushes
        with self._writer.begin() as conn:
            result = conn.execute(
                delete(q).where(q.c.state == DELIVERED, q.c.delivered_at < cutoff)
            )
        return int(result.rowcount)

    def counts(self) -> dict[str, Counts]:
        """Per provider: pending, dead and delivered rows, the oldest pending."""
        q = t.esp_pushes
        found: dict[str, dict[str, int]] = {}
        oldest: dict[str, datetime] = {}
        with self.engine.connect() as conn:
            for provider, state, n in conn.execute(
                select(q.c.provider, q.c.state, func.count()).group_by(q.c.provider, q.c.state)
            ):
                found.setdefault(str(provider), {})[str(state)] = int(n)
            for provider, when in conn.execute(
                select(q.c.provider, func.min(q.c.created_at))
                .where(q.c.state == PENDING)
                .group_by(q.c.provider)
            ):
                oldest[str(provider)] = t.as_utc(when)
        return {
            name: Counts(
                pending=states.get(PENDING, 0),
                dead=states.get(DEAD, 0),
                delivered=states.get(DELIVERED, 0),
                oldest_pending_at=oldest.get(name),
            )
            for name, states in found.items()
        }

    def letters(
        self, state: str = DEAD, *, provider: str | None = None, limit: int = 20
    ) -> list[Letter]:
        q = t.esp_pushes
        query = select(q).where(q.c.state == state).order_by(q.c.id.desc()).limit(limit)
        if provider is not None:
            query = query.where(q.c.provider == provider)
        with self.engine.connect() as conn:
            return [
                Letter(
                    int(r.id),
                    r.provider,
                    r.action,
                    r.kind,
                    r.scope,
                    int(r.attempts),
                    r.last_error,
                    r.created_at,
                )
                for r in conn.execute(query)
            ]


@dataclass(frozen=True, slots=True)
class ProviderBacklog:
    """One provider as ``adieu esp list`` and the dashboard show it."""

    name: str
    api: str | None  # the API's host; None when no longer configured
    counts: Counts


def backlogs(adieu: Any) -> list[ProviderBacklog]:
    """Every configured provider, and any other that still has rows."""
    from urllib.parse import urlsplit

    from adieu.esp.push import PROVIDERS
    from adieu.esp.push.providers import providers

    targets = {p.name: p for p in providers(adieu.settings)}
    counts = PushQueue(adieu.engine, adieu.ledger.now).counts()
    return [
        ProviderBacklog(
            name,
            urlsplit(targets[name].base).netloc if name in targets else None,
            counts.get(name, Counts()),
        )
        for name in PROVIDERS
        if name in targets or name in counts
    ]
