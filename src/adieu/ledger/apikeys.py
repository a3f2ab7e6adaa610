"""API keys for the operator's doors (``/api/v1``, ``/admin``, ``/metrics``).

A key is shown once, when it is made; only its SHA-256 is stored. Keys are 32
random bytes, so a fast hash cannot be brute-forced and lets every request be
checked with one indexed lookup. Each key has a scope (``Scope``): ``read``,
``send`` or ``admin``; only an ``admin`` key changes anyone's consent.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from adieu.errors import InvalidInput, NotFound
from adieu.ledger import schema as t
from adieu.ledger.database import WRITE
from adieu.ledger.vocabulary import Scope
from adieu.text import checked

PREFIX = "adieu_"
#: How often ``last_used_at`` is written: a busy key must not cost a write per call.
_TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    name: str
    prefix: str
    scope: Scope
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()


class ApiKeys:
    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self._writer = engine.execution_options(**{WRITE: True})
        self._clock = clock
        self._touched: dict[int, datetime] = {}

    def create(self, name: str, *, scope: Scope = Scope.ADMIN) -> tuple[ApiKey, str]:
        """A new key and its secret (the only time the secret exists in the clear)."""
        if scope not in tuple(Scope):
            raise InvalidInput(f"An API key's scope is read, send or admin (not {scope!r}).")
        scope = Scope(scope)
        name = checked(name, "An API key's name").strip()
        if not name or len(name) > 100:
            raise InvalidInput("An API key needs a name of 1-100 characters.")
        secret = PREFIX + secrets.token_urlsafe(32)
        prefix = secret[: len(PREFIX) + 6]
        now = self._clock()
        with self._writer.begin() as conn:
            key_id = conn.execute(
                insert(t.api_keys)
                .values(
                    name=name,
                    prefix=prefix,
                    key_hash=_digest(secret),
                    scope=scope.value,
                    created_at=now,
                )
                .returning(t.api_keys.c.id)
            ).scalar_one()
        return ApiKey(int(key_id), name, prefix, scope, now), secret

    def list(self) -> list[ApiKey]:
        query = select(t.api_keys).order_by(t.api_keys.c.id)
        with self.engine.connect() as conn:
            return [_key(row) for row in conn.execute(query)]

    def get(self, key_id: int) -> ApiKey:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.api_keys).where(t.api_keys.c.id == key_id)).first()
        if row is None:
            raise NotFound(f"There is no API key with id {key_id}.")
        return _key(row)

    def revoke(self, reference: str) -> ApiKey:
        """Revoke a key by id or by its prefix; revoking twice changes nothing."""
        column = t.api_keys.c.prefix if reference.startswith(PREFIX) else t.api_keys.c.id
        value: str | int = reference
        if column is t.api_keys.c.id:
            if not reference.isdigit():
                raise InvalidInput("Give the key's id (a number) or its prefix (adieu_…).")
            value = int(reference)
        with self._writer.begin() as conn:
            rows = conn.execute(select(t.api_keys).where(column == value)).all()
            if not rows:
                raise NotFound(f"There is no API key {reference!r}.")
            if len(rows) > 1:
                raise InvalidInput(f"{reference!r} names more than one key: use its id.")
            row = rows[0]
            if row.revoked_at is None:
                conn.execute(
                    update(t.api_keys)
                    .where(t.api_keys.c.id == row.id)
                    .values(revoked_at=self._clock())
                )
        return self.get(int(row.id))

    def end_session(self, session: bytes, expires_at: datetime) -> None:
        """Sign a dashboard session out (``session``: a digest of its cookie):
        it stops working everywhere, not only in the browser that asked. Kept
        until ``expires_at``, when the cookie stops working anyway; older
        entries go now."""
        ended = t.ended_sessions
        with self._writer.begin() as conn:
            conn.execute(delete(ended).where(ended.c.expires_at < self._clock()))
            known = conn.execute(select(ended.c.session).where(ended.c.session == session))
            if known.first() is None:
                conn.execute(insert(ended).values(session=session, expires_at=expires_at))

    def session_ended(self, session: bytes) -> bool:
        """Whether the dashboard session with this digest was signed out."""
        ended = t.ended_sessions
        with self.engine.connect() as conn:
            found = conn.execute(select(ended.c.session).where(ended.c.session == session))
            return found.first() is not None

    def verify(self, secret: str) -> ApiKey | None:
        """The active key with this secret, or None."""
        if not secret.startswith(PREFIX) or len(secret) > 200:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.api_keys).where(
                    t.api_keys.c.key_hash == _digest(secret), t.api_keys.c.revoked_at.is_(None)
                )
            ).first()
        if row is None:
            return None
        key = _key(row)
        now = self._clock()
        last = self._touched.get(key.id) or key.last_used_at
        if last is None or now - last >= _TOUCH_EVERY:
            self._touched[key.id] = now
            with self._writer.begin() as conn:
                conn.execute(
                    update(t.api_keys).where(t.api_keys.c.id == key.id).values(last_used_at=now)
                )
        return key


def _key(row: object) -> ApiKey:
    r: Any = row
    return ApiKey(
        id=int(r.id),
        name=r.name,
        prefix=r.prefix,
        scope=Scope(r.scope),
        created_at=r.created_at,
        last_used_at=r.last_used_at,
        revoked_at=r.revoked_at,
    )
