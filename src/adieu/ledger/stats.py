"""Counting what the ledger holds: for the report, the metrics and the event feed.

Only aggregate queries live here (GROUP BY in the database, a row per day,
campaign and topic); the rates and verdicts built on them are ``adieu.report``'s.
Days are UTC days.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, and_, case, func, select

from adieu.ledger import schema as t
from adieu.ledger.outbox import event_document
from adieu.ledger.vocabulary import DELIVERED
from adieu.scopes import ALL

#: The event types that stop mail and so must be honoured in time.
HONOURED = ("unsubscribe", "complaint")
COUNTED = ("unsubscribe", "complaint", "hard_bounce", "soft_bounce", "unverified")


@dataclass(slots=True)
class DayRow:
    """One day, campaign and topic (None: no campaign / all marketing)."""

    day: date
    campaign: str | None
    topic: str | None
    sends: int = 0
    unsubscribes: dict[str, int] = field(default_factory=dict)  # by channel
    complaints: int = 0
    hard_bounces: int = 0
    soft_bounces: int = 0
    unverified: int = 0  # returned reports that were not trusted (changed nothing)


@dataclass(frozen=True, slots=True)
class Honour:
    """One request that stopped mail: asked at, committed at, last webhook delivery."""

    event_id: int
    at: datetime
    recorded_at: datetime | None
    webhooks: int
    undelivered: int
    last_delivered_at: datetime | None


def _day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


class Stats:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def daily(self, since: datetime, until: datetime | None = None) -> list[DayRow]:
        rows: dict[tuple[date, str | None, str | None], DayRow] = {}

        def row(day: Any, campaign: str | None, topic: str | None) -> DayRow:
            key = (_day(day), campaign, None if topic in (None, ALL) else topic)
            if key not in rows:
                rows[key] = DayRow(*key)
            return rows[key]

        s, e = t.sends, t.events
        send_day, event_day = func.date(s.c.at), func.date(e.c.at)
        send_when = [s.c.category == "marketing", s.c.at >= since]
        event_when = [e.c.type.in_(COUNTED), e.c.at >= since]
        if until is not None:
            send_when.append(s.c.at < until)
            event_when.append(e.c.at < until)
        with self.engine.connect() as conn:
            for day, campaign, topic, n in conn.execute(
                select(send_day, s.c.campaign, s.c.topic, func.count())
                .where(*send_when)
                .group_by(send_day, s.c.campaign, s.c.topic)
            ):
                row(day, campaign, topic).sends += int(n)
            for day, campaign, scope, kind, channel, n in conn.execute(
                select(event_day, e.c.campaign, e.c.scope, e.c.type, e.c.channel, func.count())
                .where(*event_when)
                .group_by(event_day, e.c.campaign, e.c.scope, e.c.type, e.c.channel)
            ):
                target = row(day, campaign, scope)
                if kind == "unsubscribe":
                    target.unsubscribes[channel] = target.unsubscribes.get(channel, 0) + int(n)
                elif kind == "complaint":
                    target.complaints += int(n)
                elif kind == "hard_bounce":
                    target.hard_bounces += int(n)
                elif kind == "soft_bounce":
                    target.soft_bounces += int(n)
                else:
                    target.unverified += int(n)
        return sorted(rows.values(), key=lambda r: (r.day, r.campaign or "", r.topic or ""))

    def reasons(self, since: datetime) -> list[tuple[str | None, str | None, int]]:
        """(choice, free text or None, count) of the reasons people gave (R15):
        on the page after leaving (``reason`` events) and with the unsubscribe
        itself (``adieu unsubscribe --reason``, the API's ``reason``)."""
        e = t.events
        choice = e.c.details["choice"].as_string()
        text = case((e.c.reason == choice, None), else_=func.lower(func.trim(e.c.reason)))
        with self.engine.connect() as conn:
            return [
                (c, txt, int(n))
                for c, txt, n in conn.execute(
                    select(choice, text, func.count())
                    .where(
                        e.c.type.in_(("reason", "unsubscribe")),
                        e.c.at >= since,
                        e.c.reason.is_not(None),
                    )
                    .group_by(choice, text)
                    .order_by(func.count().desc())
                )
            ]

    def honour(self, since: datetime) -> list[Honour]:
        e, o = t.events, t.outbox
        undelivered = func.sum(
            case((and_(o.c.id.is_not(None), o.c.state != DELIVERED), 1), else_=0)
        )
        with self.engine.connect() as conn:
            return [
                Honour(
                    event_id=int(r[0]),
                    at=t.as_utc(str(r[1]) if isinstance(r[1], str) else r[1]),
                    recorded_at=t.as_utc(r[2]) if r[2] is not None else None,
                    webhooks=int(r[3]),
                    undelivered=int(r[4] or 0),
                    last_delivered_at=t.as_utc(r[5]) if r[5] is not None else None,
                )
                for r in conn.execute(
                    select(
                        e.c.id,
                        e.c.at,
                        e.c.recorded_at,
                        func.count(o.c.id),
                        undelivered,
                        func.max(o.c.delivered_at),
                    )
                    .select_from(e.outerjoin(o, o.c.event_id == e.c.id))
                    .where(e.c.type.in_(HONOURED), e.c.at >= since)
                    .group_by(e.c.id, e.c.at, e.c.recorded_at)
                )
            ]

    def event_counts(self, after_id: int = 0) -> tuple[int, list[tuple[str, str, int]]]:
        """Events by (type, channel) with an id above ``after_id``, and the
        highest id seen: the metrics add these up without recounting."""
        e = t.events
        with self.engine.connect() as conn:
            top = conn.execute(select(func.max(e.c.id))).scalar()
            if top is None or int(top) <= after_id:
                return after_id, []
            counts = conn.execute(
                select(e.c.type, e.c.channel, func.count())
                .where(e.c.id > after_id, e.c.id <= int(top))
                .group_by(e.c.type, e.c.channel)
            ).all()
        return int(top), [(str(k), str(c), int(n)) for k, c, n in counts]

    def events(
        self, after_id: int = 0, limit: int = 100, types: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Events in id order after ``after_id`` (the API's cursor paging)."""
        query = (
            select(t.events, t.contacts.c.address, t.contacts.c.address_hash)
            .join(t.contacts, t.contacts.c.id == t.events.c.contact_id)
            .where(t.events.c.id > after_id)
            .order_by(t.events.c.id)
            .limit(limit)
        )
        if types:
            query = query.where(t.events.c.type.in_(list(types)))
        with self.engine.connect() as conn:
            return [event_document(r) for r in conn.execute(query)]

    def latest_events(self, limit: int = 20) -> list[dict[str, Any]]:
        query = (
            select(t.events, t.contacts.c.address, t.contacts.c.address_hash)
            .join(t.contacts, t.contacts.c.id == t.events.c.contact_id)
            .order_by(t.events.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [event_document(r) for r in conn.execute(query)]
