"""Fair, ordered leasing of queued rows: what the webhook outbox
(``ledger.outbox``) and the push queue to the email service providers
(``esp.push.queue``) share.

Each queue's rows belong to a target (a webhook, a provider) and a contact.
A row is due when it waits (``PENDING``), its next attempt is due and no
lease holds it; of a target's rows for one contact only the oldest waiting
one is due, so that decisions about a person arrive in order. Due rows are
taken round-robin across targets (each target's oldest first, then each
one's second…), the targets after the one served last first within a turn,
so that one target's backlog never fills a batch while another has
something due.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, FromClause, Table, func, select, update
from sqlalchemy.engine import Connection

from adieu.ledger.vocabulary import PENDING


def due_in_turn(
    conn: Connection,
    table: Table,
    target: str,
    now: datetime,
    limit: int,
    last_served: Any,
    *,
    joined: tuple[FromClause, Callable[[Any], ColumnElement[bool]]] | None = None,
) -> list[tuple[int, Any]]:
    """Up to ``limit`` due rows as (id, target), in turn order. ``target`` is
    the name of the target's column; ``joined``, a table and the join
    condition over it and that column (e.g. the row's webhook, active),
    restricts which targets take part."""
    o, p = table.alias("o"), table.alias("p")
    earlier = (
        select(p.c.id)
        .where(
            p.c[target] == o.c[target],
            p.c.contact_id == o.c.contact_id,
            p.c.state == PENDING,
            p.c.id < o.c.id,
        )
        .exists()
    )
    free = (o.c.lease_until.is_(None)) | (o.c.lease_until <= now)
    source: FromClause = o
    if joined is not None:
        other, condition = joined
        source = o.join(other, condition(o.c[target]))
    turn = func.row_number().over(partition_by=o.c[target], order_by=o.c.id)
    due = (
        select(o.c.id, o.c[target].label("target"), turn.label("turn"))
        .select_from(source)
        .where(o.c.state == PENDING, o.c.next_attempt_at <= now, free, ~earlier)
        .subquery()
    )
    query = (
        select(due.c.id, due.c.target)
        .order_by(due.c.turn, due.c.target <= last_served, due.c.target)
        .limit(limit)
    )
    return [(int(i), served) for i, served in conn.execute(query)]


def lease(
    conn: Connection, table: Table, ids: Sequence[int], now: datetime, hold: timedelta
) -> list[int]:
    """Lease the rows of ``ids`` still waiting and free for ``hold``; the
    ids taken (a concurrent deliverer that leased a row first wins it)."""
    return [
        int(i)
        for i in conn.execute(
            update(table)
            .where(
                table.c.id.in_(list(ids)),
                table.c.state == PENDING,
                (table.c.lease_until.is_(None)) | (table.c.lease_until <= now),
            )
            .values(lease_until=now + hold)
            .returning(table.c.id)
        ).scalars()
    ]
