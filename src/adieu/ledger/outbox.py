"""Webhook subscribers and their outbox.

The ledger writes an outbox row for every (webhook, event) pair in the same
transaction as the event (``Ledger._queue_deliveries``), so a recorded event is
never without its deliveries, whatever crashes. Deliverers (any number, in any
process) claim rows with a lease: a deliverer that dies leaves rows that another
one picks up once the lease runs out, so delivery is at least once. Only the
oldest waiting row of each (webhook, address) can be claimed, which keeps the
order per address even across retries. Claims go round the webhooks in turn,
so a receiver with a backlog (or one that keeps failing) cannot hold back the
others: each webhook with something due gets its share of every batch.
Inactive webhooks keep their rows until they are active again.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from sqlalchemy import Engine, delete, func, insert, select, update

from adieu.errors import InvalidInput, NotFound
from adieu.ledger import schema as t
from adieu.ledger.database import WRITE
from adieu.ledger.leasing import due_in_turn, lease
from adieu.ledger.vocabulary import DEAD, DELIVERED, EVENT_TYPES, PENDING
from adieu.text import checked
from adieu.times import iso_or_none

ALL_TYPES = "*"
MAX_URL = 2000


@dataclass(frozen=True, slots=True)
class Webhook:
    id: int
    url: str
    event_types: tuple[str, ...]  # ("*",) for every type
    description: str
    active: bool
    created_at: datetime
    secret: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """One claimed outbox row, with what the deliverer needs to post it."""

    id: int
    webhook_id: int
    url: str
    secret: str
    attempts: int
    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Letter:
    """An outbox row as the dashboard and the API list it."""

    id: int
    webhook_id: int
    event_id: int
    event_type: str
    state: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    delivered_at: datetime | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Backlog:
    pending: int
    dead: int
    oldest_pending_at: datetime | None


_BAD_URL = "A webhook URL must be an http:// or https:// address"
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# What may stay as it is in a path or query (RFC 3986 pchar, and "/?" in a
# query); everything else, any non-ASCII character included, is percent-encoded.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"


def check_url(url: str) -> str:
    """A webhook URL as it is requested: http or https, an ASCII host (an
    international name IDNA-encoded), a port from 1 to 65535, the path and
    query percent-encoded (UTF-8). Spaces and control characters are refused
    anywhere. The same check runs when a webhook is created or changed and
    before each delivery."""
    if not isinstance(url, str):
        raise InvalidInput(f"{_BAD_URL}.")
    url = url.strip(" ")
    for c in url:
        if c.isspace() or unicodedata.category(c) in ("Cc", "Cs"):
            raise InvalidInput(f"{_BAD_URL}, without spaces or control characters (found {c!r}).")
    if len(url) > MAX_URL:
        raise InvalidInput(f"{_BAD_URL} of at most {MAX_URL} characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # "http://[", a port that is not a number or too large
        raise InvalidInput(f"{_BAD_URL} ({exc}).") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"{_BAD_URL}.")
    if port == 0:
        raise InvalidInput(f"{_BAD_URL} with a port from 1 to 65535.")
    netloc = _ascii_host(parts.hostname)
    if port is not None:
        netloc += f":{port}"
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at:
        netloc = _encoded(userinfo, _PATH_SAFE.replace("@", "")) + "@" + netloc
    normal = f"{parts.scheme.lower()}://{netloc}{_encoded(parts.path, _PATH_SAFE)}"
    if parts.query:
        normal += "?" + _encoded(parts.query, _QUERY_SAFE)
    if parts.fragment:
        normal += "#" + _encoded(parts.fragment, _QUERY_SAFE)
    if len(normal) > MAX_URL:
        raise InvalidInput(f"{_BAD_URL} of at most {MAX_URL} characters, once encoded.")
    return normal


def _ascii_host(host: str) -> str:
    """An IP address as it is, a name IDNA-encoded (``bücher.example`` →
    ``xn--bcher-kva.example``); InvalidInput for anything else."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return f"[{ip.compressed}]" if ip.version == 6 else ip.compressed
    try:
        name = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise InvalidInput(f"{_BAD_URL}: its host name is not valid.") from None
    labels = name[:-1].split(".") if name.endswith(".") else name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidInput(f"{_BAD_URL}: its host name is not valid.")
    return name


def _encoded(text: str, safe: str) -> str:
    return _STRAY_PERCENT.sub("%25", quote(text, safe=safe))


def check_types(event_types: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(sorted(set(event_types)))
    if not chosen:
        raise InvalidInput("Choose at least one event type (or '*' for all).")
    if ALL_TYPES in chosen:
        return (ALL_TYPES,)
    unknown = [e for e in chosen if e not in EVENT_TYPES]
    if unknown:
        raise InvalidInput(
            f"Unknown event type {unknown[0]!r}: use {', '.join(EVENT_TYPES)} or '*'."
        )
    return chosen


def check_description(description: str) -> str:
    """A webhook's description, trimmed: at most 200 characters of text
    (line breaks and tabs allowed, no other control characters)."""
    description = checked(description, "A webhook's description", lines=True).strip()
    if len(description) > 200:
        raise InvalidInput("A description can be at most 200 characters.")
    return description


def _stored_types(types: tuple[str, ...]) -> str:
    return ALL_TYPES if types == (ALL_TYPES,) else "," + ",".join(types) + ","


def _webhook(row: Any) -> Webhook:
    raw = str(row.event_types)
    types = (ALL_TYPES,) if raw == ALL_TYPES else tuple(filter(None, raw.split(",")))
    return Webhook(
        id=int(row.id),
        url=row.url,
        event_types=types,
        description=row.description,
        active=bool(row.active),
        created_at=row.created_at,
        secret=row.secret,
    )


class Outbox:
    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self._writer = engine.execution_options(**{WRITE: True})
        self._clock = clock
        self._postgres = engine.dialect.name == "postgresql"
        self._last_served = 0  # the webhook whose row ended the last full batch

    # -- subscribers ----------------------------------------------------------

    def create_webhook(
        self, url: str, event_types: Iterable[str] = (ALL_TYPES,), description: str = ""
    ) -> Webhook:
        url = check_url(url)
        types = check_types(event_types)
        description = check_description(description)
        with self._writer.begin() as conn:
            new_id = conn.execute(
                insert(t.webhooks)
                .values(
                    url=url,
                    secret="whsec_" + secrets.token_urlsafe(32),
                    event_types=_stored_types(types),
                    description=description,
                    active=True,
                    created_at=self._clock(),
                )
                .returning(t.webhooks.c.id)
            ).scalar_one()
        return self.webhook(int(new_id))

    def webhooks(self) -> list[Webhook]:
        with self.engine.connect() as conn:
            return [_webhook(r) for r in conn.execute(select(t.webhooks).order_by(t.webhooks.c.id))]

    def webhook(self, webhook_id: int) -> Webhook:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.webhooks).where(t.webhooks.c.id == webhook_id)).first()
        if row is None:
            raise NotFound(f"There is no webhook with id {webhook_id}.")
        return _webhook(row)

    def update_webhook(
        self,
        webhook_id: int,
        *,
        url: str | None = None,
        event_types: Iterable[str] | None = None,
        description: str | None = None,
        active: bool | None = None,
    ) -> Webhook:
        values: dict[str, Any] = {}
        if url is not None:
            values["url"] = check_url(url)
        if event_types is not None:
            values["event_types"] = _stored_types(check_types(event_types))
        if description is not None:
            values["description"] = check_description(description)
        if active is not None:
            values["active"] = active
        self.webhook(webhook_id)
        if values:
            with self._writer.begin() as conn:
                conn.execute(
                    update(t.webhooks).where(t.webhooks.c.id == webhook_id).values(**values)
                )
        return self.webhook(webhook_id)

    def delete_webhook(self, webhook_id: int) -> None:
        """Remove a subscriber and everything still queued for it."""
        self.webhook(webhook_id)
        with self._writer.begin() as conn:
            conn.execute(delete(t.outbox).where(t.outbox.c.webhook_id == webhook_id))
            conn.execute(delete(t.webhooks).where(t.webhooks.c.id == webhook_id))

    # -- delivery -------------------------------------------------------------

    def claim(
        self, limit: int = 100, lease_for: timedelta = timedelta(seconds=60)
    ) -> list[Delivery]:
        """Due rows that are the oldest waiting one of their (webhook, address),
        leased to the caller for ``lease_for``; only for active webhooks, and taken
        round-robin across them (each webhook's oldest first, then each one's
        second…), so that one webhook's backlog never fills a whole batch while
        another has something due. The deliveries come in that order."""
        now = self._clock()
        w = t.webhooks
        # Looking needs no write lock (an idle deliverer must not contend with
        # the pages' commits); the conditional UPDATE re-checks each row.
        with self.engine.connect() as conn:
            found = due_in_turn(
                conn,
                t.outbox,
                "webhook_id",
                now,
                limit,
                self._last_served,
                joined=(w, lambda hook: (w.c.id == hook) & w.c.active.is_(True)),
            )
        if not found:
            return []
        candidates = [i for i, _ in found]
        if len(found) == limit:
            self._last_served = found[-1][1]
        with self._writer.begin() as conn:
            taken = lease(conn, t.outbox, candidates, now, lease_for)
            rows = conn.execute(
                select(
                    t.outbox.c.id.label("outbox_id"),
                    t.outbox.c.webhook_id,
                    t.outbox.c.attempts,
                    t.webhooks.c.url,
                    t.webhooks.c.secret,
                    t.events,
                    t.contacts.c.address,
                    t.contacts.c.address_hash,
                )
                .select_from(
                    t.outbox.join(t.webhooks, t.webhooks.c.id == t.outbox.c.webhook_id)
                    .join(t.events, t.events.c.id == t.outbox.c.event_id)
                    .join(t.contacts, t.contacts.c.id == t.events.c.contact_id)
                )
                .where(t.outbox.c.id.in_(taken), t.webhooks.c.active.is_(True))
            ).all()
        order = {row_id: n for n, row_id in enumerate(candidates)}
        rows = sorted(rows, key=lambda r: order[int(r.outbox_id)])
        return [
            Delivery(
                id=int(r.outbox_id),
                webhook_id=int(r.webhook_id),
                url=r.url,
                secret=r.secret,
                attempts=int(r.attempts),
                event=event_document(r),
            )
            for r in rows
        ]

    def delivered(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        with self._writer.begin() as conn:
            conn.execute(
                update(t.outbox)
                .where(t.outbox.c.id.in_(list(ids)))
                .values(
                    state=DELIVERED,
                    delivered_at=self._clock(),
                    lease_until=None,
                    attempts=t.outbox.c.attempts + 1,
                    last_error=None,
                )
            )

    def failed(self, failures: Sequence[tuple[int, str, datetime | None]]) -> None:
        """(id, error, next attempt) per row; a next attempt of None makes a dead letter."""
        if not failures:
            return
        with self._writer.begin() as conn:
            for row_id, error, next_at in failures:
                values: dict[str, Any] = {
                    "attempts": t.outbox.c.attempts + 1,
                    "last_error": error[:500],
                    "lease_until": None,
                }
                if next_at is None:
                    values["state"] = DEAD
                else:
                    values["next_attempt_at"] = next_at
                conn.execute(update(t.outbox).where(t.outbox.c.id == row_id).values(**values))

    def release(self, ids: Sequence[int]) -> None:
        """Give back leased rows that were not tried (a deliverer stopping)."""
        if not ids:
            return
        with self._writer.begin() as conn:
            conn.execute(
                update(t.outbox)
                .where(t.outbox.c.id.in_(list(ids)), t.outbox.c.state == PENDING)
                .values(lease_until=None)
            )

    def replay(self, ids: Sequence[int] | None = None, *, webhook_id: int | None = None) -> int:
        """Dead letters back to the queue, due now (all of them, or those given)."""
        query = update(t.outbox).where(t.outbox.c.state == DEAD)
        if ids is not None:
            query = query.where(t.outbox.c.id.in_(list(ids)))
        if webhook_id is not None:
            query = query.where(t.outbox.c.webhook_id == webhook_id)
        with self._writer.begin() as conn:
            result = conn.execute(
                query.values(
                    state=PENDING, attempts=0, next_attempt_at=self._clock(), lease_until=None
                )
            )
        return int(result.rowcount)

    def prune(self, older_than: timedelta) -> int:
        """Forget delivered rows older than ``older_than`` (the event itself
        stays in the ledger; only its delivery record goes)."""
        cutoff = self._clock() - older_than
        with self._writer.begin() as conn:
            result = conn.execute(
                delete(t.outbox).where(
                    t.outbox.c.state == DELIVERED, t.outbox.c.delivered_at < cutoff
                )
            )
        return int(result.rowcount)

    # -- watching -------------------------------------------------------------

    def backlog(self) -> Backlog:
        with self.engine.connect() as conn:
            counts: dict[str, int] = dict(
                conn.execute(
                    select(t.outbox.c.state, func.count())
                    .where(t.outbox.c.state.in_([PENDING, DEAD]))
                    .group_by(t.outbox.c.state)
                ).all()
            )
            oldest = conn.execute(
                select(func.min(t.outbox.c.created_at)).where(t.outbox.c.state == PENDING)
            ).scalar()
        return Backlog(
            pending=int(counts.get(PENDING, 0)),
            dead=int(counts.get(DEAD, 0)),
            oldest_pending_at=t.as_utc(oldest) if oldest is not None else None,
        )

    def counts(self) -> dict[int, dict[str, int]]:
        """Deliveries per webhook and state."""
        found: dict[int, dict[str, int]] = {}
        with self.engine.connect() as conn:
            for hook, state, n in conn.execute(
                select(t.outbox.c.webhook_id, t.outbox.c.state, func.count()).group_by(
                    t.outbox.c.webhook_id, t.outbox.c.state
                )
            ):
                found.setdefault(int(hook), {})[str(state)] = int(n)
        return found

    def letters(
        self, state: str | None = None, *, webhook_id: int | None = None, limit: int = 100
    ) -> list[Letter]:
        query = (
            select(t.outbox, t.events.c.type)
            .join(t.events, t.events.c.id == t.outbox.c.event_id)
            .order_by(t.outbox.c.id.desc())
            .limit(limit)
        )
        if state is not None:
            query = query.where(t.outbox.c.state == state)
        if webhook_id is not None:
            query = query.where(t.outbox.c.webhook_id == webhook_id)
        with self.engine.connect() as conn:
            return [
                Letter(
                    id=int(r.id),
                    webhook_id=int(r.webhook_id),
                    event_id=int(r.event_id),
                    event_type=r.type,
                    state=r.state,
                    attempts=int(r.attempts),
                    next_attempt_at=r.next_attempt_at,
                    created_at=r.created_at,
                    delivered_at=r.delivered_at,
                    last_error=r.last_error,
                )
                for r in conn.execute(query)
            ]


def event_document(row: Any) -> dict[str, Any]:
    """An event as the API and the webhooks show it. The address is there until
    the person is erased; ``contact`` (the keyed hash) stays."""
    return {
        "id": int(row.id),
        "type": row.type,
        "channel": row.channel,
        "scope": row.scope,
        "campaign": row.campaign,
        "at": iso_or_none(row.at),
        "recorded_at": iso_or_none(row.recorded_at),
        "contact": bytes(row.address_hash).hex(),
        "address": row.address,
        "reason": row.reason,
        "details": row.details,
    }
