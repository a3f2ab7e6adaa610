"""The ``Ledger``: every consent change, recorded once, in one transaction.

Each operation locks the contact (``SELECT … FOR UPDATE`` on PostgreSQL; the
single SQLite writer lock via ``BEGIN IMMEDIATE``), changes the materialised
state and appends an event, then commits. Nothing else writes consent state.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from adieu.addresses import canonical
from adieu.errors import AdieuError, Erased, InvalidInput
from adieu.ledger import schema as t
from adieu.ledger.base import _KNOWN_PLAIN, _REASON, _clip
from adieu.ledger.bulk import BulkStore
from adieu.ledger.records import (
    Blocklist,
    ContactStatus,
    Event,
    Outcome,
    PreferenceChange,
    SendState,
    Suppression,
    UnsubscribeRequest,
)
from adieu.ledger.review import ReviewQueue
from adieu.ledger.schema import as_utc
from adieu.ledger.vocabulary import (
    CONSENT_REASONS,
    LIFTABLE_FACTS,
    OPERATOR_CHANNELS,
    PERSON_REASONS,
    Channel,
    EventType,
    Fact,
    Frequency,
    Reason,
)
from adieu.scopes import ALL, check_campaign
from adieu.text import checked
from adieu.times import iso_or_none

#: How often a contact with no choice of its own hears from us (the default).
_EVERY = Frequency.EVERY.value


class Ledger(BulkStore, ReviewQueue):
    """The consent and suppression store. Addresses may be given in any case."""

    # -- consent ------------------------------------------------------------

    def unsubscribe(
        self,
        address: str,
        scope: str | None = ALL,
        *,
        channel: Channel,
        campaign: str | None = None,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> Outcome:
        """Stop marketing for ``scope``. A repeat changes nothing and says since when."""
        request = UnsubscribeRequest(address, scope, channel, campaign, reason, details, at)
        (result,) = self.unsubscribe_many([request])
        if isinstance(result, AdieuError):
            raise result
        return result

    def unsubscribe_many(
        self, requests: Sequence[UnsubscribeRequest]
    ) -> list[Outcome | AdieuError]:
        """Unsubscribes in one transaction and a handful of set-based statements,
        so one durable commit serves them all (group commit). A request that is
        not valid gets its error in its place and writes nothing; the others go
        ahead. The same person twice in one batch is unsubscribed once."""
        results: list[Outcome | AdieuError] = []
        valid: list[tuple[int, UnsubscribeRequest]] = []
        for i, request in enumerate(requests):
            try:
                checked = self._checked(request)
            except AdieuError as exc:
                results.append(exc)
                continue
            results.append(Outcome(changed=False, scope=checked.scope or ALL))
            valid.append((i, checked))
        if not valid:
            return results
        sql = self._sql
        with self._write() as conn:
            # Straight through the driver: this is the path every one-click takes.
            contact_of = self._contact_ids(conn, [r.address for _, r in valid])
            held: dict[tuple[int, str], Suppression] = {}
            id_list = sorted(set(contact_of.values()))
            for start in range(0, len(id_list), 500):
                part = id_list[start : start + 500]
                for contact_id, scope, reason, since in conn.exec_driver_sql(
                    sql.consent_suppressions(len(part)), tuple(part)
                ):
                    key = (contact_id, scope)
                    when = as_utc(since)
                    if key not in held or when < held[key].since:
                        held[key] = Suppression(scope, Reason(reason), when)
            new: list[tuple[int, int, UnsubscribeRequest]] = []
            for i, request in valid:
                scope = request.scope or ALL
                key = (contact_of[request.address], scope)
                if key in held:
                    first = held[key]
                    results[i] = Outcome(
                        changed=False, scope=scope, since=first.since, reason=first.reason
                    )
                    continue
                at = request.at or self.now()
                held[key] = Suppression(scope, Reason.UNSUBSCRIBE, at)
                new.append((i, key[0], request))
            if not new:
                return results
            # Each request's time as stored, once for its event and its suppression.
            stored = [self._stored(r.at or self.now()) for _, _, r in new]
            event_ids = self._insert_events(
                conn,
                [
                    (
                        cid,
                        EventType.UNSUBSCRIBE.value,
                        r.channel.value,
                        r.scope or ALL,
                        r.campaign,
                        at,
                        _clip(r.reason),
                        json.dumps(dict(r.details)) if r.details else None,
                    )
                    for (_, cid, r), at in zip(new, stored, strict=True)
                ],
            )
            conn.exec_driver_sql(
                sql.insert_suppressions(),
                [
                    (cid, r.scope or ALL, Reason.UNSUBSCRIBE.value, at, eid)
                    for (_, cid, r), at, eid in zip(new, stored, event_ids, strict=True)
                ],
            )
            topical = [(cid, r.scope) for _, cid, r in new if r.scope not in (None, ALL)]
            if topical:
                conn.exec_driver_sql(sql.delete_subscription(), topical)
        for (i, _, r), eid in zip(new, event_ids, strict=True):
            results[i] = Outcome(
                changed=True,
                scope=r.scope or ALL,
                since=r.at,
                reason=Reason.UNSUBSCRIBE,
                event_id=eid,
            )
        return results

    def _checked(self, request: UnsubscribeRequest) -> UnsubscribeRequest:
        return replace(
            request,
            address=canonical(request.address),
            scope=self.check_scope(request.scope),
            at=request.at or self.now(),
            campaign=check_campaign(request.campaign),
            reason=checked(request.reason, "A reason", lines=True) if request.reason else None,
        )

    def resubscribe(
        self,
        address: str,
        scope: str | None = ALL,
        *,
        channel: Channel,
        campaign: str | None = None,
        details: Mapping[str, Any] | None = None,
        at: datetime | None = None,
        lift: Iterable[Reason | str] = (),
        note: str | None = None,
    ) -> Outcome:
        """Lift the person's own "no" for ``scope`` (an unsubscribe, an
        operator's or an imported suppression). For a topic people must opt
        into, this is also the opt-in (R7).

        A complaint or a hard bounce stays unless an operator (``channel`` API
        or CLI) names it in ``lift`` and gives a ``note``; both hold for all
        mail, so they are lifted with ``scope`` all. An erased address is
        never lifted (:class:`Erased`). ``Outcome.detail`` names what still
        holds after this (``complaint`` or ``hard_bounce``), if anything.
        """
        address = canonical(address)
        scope = self.check_scope(scope)
        facts = _facts_to_lift(lift, channel, scope, note)
        if note:
            checked(note, "A note", lines=True)
        at = at or self.now()
        with self._write() as conn:
            contact = self._contact(conn, address)
            assert contact is not None
            if contact.erased_at is not None:
                raise Erased()
            held = self._suppressions(conn, contact.id, scope)
            if scope != ALL:
                held += self._suppressions(conn, contact.id, ALL)
            lifted = sorted(
                {
                    s.reason
                    for s in held
                    if (s.scope == scope and s.reason in PERSON_REASONS) or s.reason in facts
                }
            )
            still = [
                r.value
                for r in (Reason.HARD_BOUNCE, Reason.COMPLAINT)
                if r not in lifted and any(s.reason == r for s in held)
            ]
            opt_in = (
                scope != ALL
                and not self.topic(scope).default_opt_in
                and not conn.execute(
                    select(t.subscriptions.c.since).where(
                        t.subscriptions.c.contact_id == contact.id, t.subscriptions.c.topic == scope
                    )
                ).first()
            )
            detail = still[0] if still else None
            if not lifted and not opt_in:
                return Outcome(changed=False, scope=scope, detail=detail)
            recorded: dict[str, Any] = dict(details or {})
            if lifted:
                recorded["lifted"] = [r.value for r in lifted]
            if note:
                recorded["note"] = _clip(note.strip())
            event_id = self._event(
                conn,
                contact.id,
                EventType.RESUBSCRIBE,
                channel,
                scope,
                at,
                campaign=campaign,
                details=recorded,
            )
            # The person's own choices are lifted in the link's scope; the
            # facts an operator names (complaint, hard bounce) are global.
            for where, kinds in ((scope, PERSON_REASONS), (ALL, LIFTABLE_FACTS)):
                chosen = [r.value for r in lifted if r in kinds]
                if chosen:
                    conn.execute(
                        delete(t.suppressions).where(
                            t.suppressions.c.contact_id == contact.id,
                            t.suppressions.c.scope == where,
                            t.suppressions.c.reason.in_(chosen),
                        )
                    )
            if Reason.HARD_BOUNCE in lifted:
                conn.execute(
                    update(t.contacts)
                    .where(t.contacts.c.id == contact.id)
                    .values(soft_bounces=0, soft_bounce_since=None)
                )
            if opt_in:
                conn.execute(
                    insert(t.subscriptions).values(contact_id=contact.id, topic=scope, since=at)
                )
        return Outcome(changed=True, scope=scope, since=at, event_id=event_id, detail=detail)

    def add_reason(
        self,
        address: str,
        reason: str,
        *,
        channel: Channel,
        choice: str | None = None,
        scope: str = ALL,
        at: datetime | None = None,
    ) -> Outcome:
        """The optional reason someone gave after leaving (R15: never before).
        ``scope`` is what they left (all marketing, or the topic they left
        alone): the reason is taken when a suppression holds there."""
        address = canonical(address)
        scope = self.check_scope(scope)
        checked(reason, "A reason", lines=True)
        at = at or self.now()
        with self._write() as conn:
            contact = self._contact(conn, address, create=False)
            if contact is None or not self._suppressions(conn, contact.id, scope):
                raise InvalidInput("A reason can only be given after unsubscribing.")
            event_id = self._event(
                conn,
                contact.id,
                EventType.REASON,
                channel,
                scope,
                at,
                reason=_clip(reason),
                details={"choice": choice} if choice else None,
            )
        return Outcome(changed=True, scope=scope, since=at, event_id=event_id)

    def set_preferences(
        self,
        address: str,
        *,
        channel: Channel = Channel.PREFERENCES,
        topics: Mapping[str, bool] | None = None,
        frequency: Frequency | None = None,
        paused_until: datetime | None = None,
        clear_pause: bool = False,
        details: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> list[PreferenceChange]:
        """Apply a preference-center save (R7); returns what it changed."""
        address = canonical(address)
        at = at or self.now()
        wanted = {self.topic(key).key: bool(on) for key, on in (topics or {}).items()}
        with self._write() as conn:
            contact = self._contact(conn, address)
            assert contact is not None
            if contact.erased_at is not None:
                raise Erased()
            changes: list[PreferenceChange] = []
            subscribed = {
                r.topic
                for r in conn.execute(
                    select(t.subscriptions.c.topic).where(
                        t.subscriptions.c.contact_id == contact.id
                    )
                )
            }
            opted_out = {
                r.scope
                for r in conn.execute(
                    select(t.suppressions.c.scope).where(
                        t.suppressions.c.contact_id == contact.id, t.suppressions.c.scope != ALL
                    )
                )
            }
            for key, on in sorted(wanted.items()):
                topic = self._topics[key]
                current = key not in opted_out and (topic.default_opt_in or key in subscribed)
                if current != on:
                    changes.append(PreferenceChange("topic", current, on, key))
            if frequency is not None and frequency.value != contact.frequency:
                changes.append(PreferenceChange("frequency", contact.frequency, frequency.value))
            new_pause = None if clear_pause else (paused_until or contact.paused_until)
            if new_pause != contact.paused_until:
                old, new = iso_or_none(contact.paused_until), iso_or_none(new_pause)
                changes.append(PreferenceChange("paused_until", old, new))
            if not changes:
                return []
            event_id = self._event(
                conn,
                contact.id,
                EventType.PREFERENCES,
                channel,
                ALL,
                at,
                details={**(details or {}), "changes": [c.recorded for c in changes]},
            )
            for change in changes:
                if change.topic is None:
                    continue
                key, on = change.topic, change.new
                if on:
                    conn.execute(
                        delete(t.suppressions).where(
                            t.suppressions.c.contact_id == contact.id,
                            t.suppressions.c.scope == key,
                            t.suppressions.c.reason.in_([r.value for r in PERSON_REASONS]),
                        )
                    )
                    if not self._topics[key].default_opt_in:
                        conn.execute(
                            self._insert(t.subscriptions)
                            .values(contact_id=contact.id, topic=key, since=at)
                            .on_conflict_do_nothing()
                        )
                else:
                    self._suppress(conn, contact.id, key, Reason.UNSUBSCRIBE, at, event_id)
                    conn.execute(
                        delete(t.subscriptions).where(
                            t.subscriptions.c.contact_id == contact.id,
                            t.subscriptions.c.topic == key,
                        )
                    )
            conn.execute(
                update(t.contacts)
                .where(t.contacts.c.id == contact.id)
                .values(
                    frequency=(frequency or Frequency(contact.frequency)).value,
                    paused_until=new_pause,
                )
            )
        return changes

    # -- feedback -----------------------------------------------------------

    def record_complaint(
        self,
        address: str,
        *,
        channel: Channel = Channel.COMPLAINT,
        campaign: str | None = None,
        details: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> Outcome:
        """A spam complaint: always recorded, and all marketing stops."""
        address = canonical(address)
        at = at or self.now()
        with self._write() as conn:
            contact = self._contact(conn, address)
            assert contact is not None
            before = [
                s for s in self._suppressions(conn, contact.id, ALL) if s.reason in CONSENT_REASONS
            ]
            event_id = self._event(
                conn,
                contact.id,
                EventType.COMPLAINT,
                channel,
                ALL,
                at,
                campaign=campaign,
                details=details,
            )
            self._suppress(conn, contact.id, ALL, Reason.COMPLAINT, at, event_id)
        since = min([s.since for s in before], default=at)
        return Outcome(
            changed=not before, scope=ALL, since=since, reason=Reason.COMPLAINT, event_id=event_id
        )

    def record_bounce(
        self,
        address: str,
        *,
        hard: bool,
        channel: Channel = Channel.BOUNCE,
        campaign: str | None = None,
        details: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> Outcome:
        """A bounce. Hard: suppressed for everything. Soft: counted; the
        ``soft_bounce_limit``-th within the window counts as hard."""
        address = canonical(address)
        at = at or self.now()
        with self._write() as conn:
            contact = self._contact(conn, address)
            assert contact is not None
            detail = None
            if not hard:
                window_open = (
                    contact.soft_bounce_since is not None
                    and at - contact.soft_bounce_since <= self.soft_bounce_window
                )
                count = contact.soft_bounces + 1 if window_open else 1
                since = contact.soft_bounce_since if window_open else at
                conn.execute(
                    update(t.contacts)
                    .where(t.contacts.c.id == contact.id)
                    .values(soft_bounces=count, soft_bounce_since=since)
                )
                self._event(
                    conn,
                    contact.id,
                    EventType.SOFT_BOUNCE,
                    channel,
                    ALL,
                    at,
                    campaign=campaign,
                    details={**(details or {}), "count": count},
                )
                if count < self.soft_bounce_limit:
                    return Outcome(changed=False, scope=ALL, detail=f"soft:{count}")
                hard, detail = True, f"soft:{count}"
                details = {**(details or {}), "soft_bounces": count}
            held = [
                s
                for s in self._suppressions(conn, contact.id, ALL)
                if s.reason == Reason.HARD_BOUNCE
            ]
            event_id = self._event(
                conn,
                contact.id,
                EventType.HARD_BOUNCE,
                channel,
                ALL,
                at,
                campaign=campaign,
                details=details,
            )
            if held:
                return Outcome(
                    changed=False,
                    scope=ALL,
                    since=held[0].since,
                    reason=Reason.HARD_BOUNCE,
                    event_id=event_id,
                    detail=detail,
                )
            self._suppress(conn, contact.id, ALL, Reason.HARD_BOUNCE, at, event_id)
        return Outcome(
            changed=True,
            scope=ALL,
            since=at,
            reason=Reason.HARD_BOUNCE,
            event_id=event_id,
            detail=detail,
        )

    def record_send(
        self,
        address: str,
        *,
        category: str = "marketing",
        topic: str | None = None,
        campaign: str | None = None,
        at: datetime | None = None,
    ) -> None:
        """A message went out (the frequency caps count these)."""
        self.record_sends([address], category=category, topic=topic, campaign=campaign, at=at)

    def record_sends(
        self,
        addresses: Iterable[str],
        *,
        category: str = "marketing",
        topic: str | None = None,
        campaign: str | None = None,
        at: datetime | None = None,
    ) -> int:
        at = at or self.now()
        topic = None if topic is None or topic == ALL else self.topic(topic).key
        campaign = check_campaign(campaign)
        canon = sorted({canonical(a) for a in addresses})
        with self._write() as conn:
            ids = self._contact_ids(conn, canon)
            if not ids:
                return 0
            conn.execute(
                insert(t.sends),
                [
                    {
                        "contact_id": cid,
                        "category": category,
                        "topic": topic,
                        "campaign": campaign,
                        "at": at,
                    }
                    for cid in ids.values()
                ],
            )
            if category == "marketing":
                conn.execute(
                    update(t.contacts)
                    .where(t.contacts.c.id.in_(list(ids.values())))
                    .values(last_marketing_send_at=at)
                )
        return len(ids)

    def sent_since(self, address: str, since: datetime) -> bool:
        """Whether a send of any category to ``address`` is recorded at or after
        ``since`` (one indexed query: the keyed hash, then ``ix_sends_contact_id``)."""
        digest = self.hasher.hash(canonical(address))
        query = (
            select(t.sends.c.id)
            .join(t.contacts, t.contacts.c.id == t.sends.c.contact_id)
            .where(t.contacts.c.address_hash == digest, t.sends.c.at >= since)
            .limit(1)
        )
        with self.engine.connect() as conn:
            return conn.execute(query).first() is not None

    def record_event(
        self,
        address: str,
        type_: EventType,
        *,
        channel: Channel,
        details: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> int:
        """An event that changes no state (a not-spam report, a rejection, an
        unverified report)."""
        address = canonical(address)
        with self._write() as conn:
            contact = self._contact(conn, address)
            assert contact is not None
            return self._event(
                conn, contact.id, type_, channel, ALL, at or self.now(), details=details
            )

    # -- reading ------------------------------------------------------------

    def send_state(self, address: str, topic: str | None = None) -> SendState:
        """The state the send policy reads, in one indexed query (the hot path)."""
        digest = self.hasher.hash(canonical(address))
        if topic is None or topic == ALL:
            rows = self._reads.fetchall(self._send_state_all_sql, (digest,))
        else:
            rows = self._reads.fetchall(self._send_state_sql, (topic, topic, digest))
        if not rows:
            return SendState(known=False)
        first = rows[0]
        frequency, paused_until, last_send = first[:3]
        if (
            len(rows) == 1
            and first[6] is None
            and frequency == _EVERY
            and paused_until is None
            and last_send is None
        ):
            # The common cases: nothing holds, or one suppression does.
            if first[3] is None:
                return _KNOWN_PLAIN
            return SendState(
                known=True,
                suppressions=(Suppression(first[3], _REASON[first[4]], as_utc(first[5])),),
            )
        return SendState(
            known=True,
            suppressions=tuple(
                Suppression(r[3], _REASON[r[4]], as_utc(r[5])) for r in rows if r[3] is not None
            ),
            subscribed_topics=frozenset(r[6] for r in rows if r[6] is not None),
            frequency=Frequency(frequency),
            paused_until=as_utc(paused_until),
            last_marketing_send_at=as_utc(last_send),
        )

    def send_states(
        self, digests: Sequence[bytes], topic: str | None = None
    ) -> dict[bytes, SendState]:
        """``send_state`` for many keyed hashes at once (the API's batch check):
        one query per 1,000 addresses, keys sorted so the index is walked in
        order. Unknown addresses are left out."""
        scope = topic or ALL
        wanted = sorted(set(digests))
        grouped: dict[bytes, list[Any]] = {}
        for start in range(0, len(wanted), 1000):
            sql, params = self._sql.send_states(wanted[start : start + 1000], scope)
            for row in self._reads.fetchall(sql, params):
                grouped.setdefault(bytes(row[0]), []).append(row)
        states: dict[bytes, SendState] = {}
        every = _EVERY
        for digest, rows in grouped.items():
            first = rows[0]
            if (
                len(rows) == 1
                and first[7] is None
                and first[1] == every
                and first[2] is None
                and first[3] is None
            ):
                # The common cases: nothing holds, or one suppression does.
                states[digest] = (
                    _KNOWN_PLAIN
                    if first[4] is None
                    else SendState(
                        known=True,
                        suppressions=(Suppression(first[4], _REASON[first[5]], as_utc(first[6])),),
                    )
                )
                continue
            states[digest] = SendState(
                known=True,
                suppressions=tuple(
                    Suppression(r[4], _REASON[r[5]], as_utc(r[6])) for r in rows if r[4] is not None
                ),
                subscribed_topics=frozenset(r[7] for r in rows if r[7] is not None),
                frequency=Frequency(first[1]),
                paused_until=as_utc(first[2]),
                last_marketing_send_at=as_utc(first[3]),
            )
        return states

    def close(self) -> None:
        """Close the read connections (the engine is its owner's to dispose)."""
        self._reads.close()

    def status(
        self, address: str | None, *, with_history: bool = True, digest: bytes | None = None
    ) -> ContactStatus:
        """State and history of an address (or of a keyed hash, ``digest``)."""
        address = canonical(address) if address is not None else None
        digest = digest if digest is not None else self.hasher.hash(address or "")
        with self.engine.connect() as conn:
            contact = conn.execute(
                select(t.contacts).where(t.contacts.c.address_hash == digest)
            ).first()
            if contact is None:
                return ContactStatus(
                    address=address, address_hash=digest, state=SendState(known=False)
                )
            sups = tuple(
                Suppression(r.scope, Reason(r.reason), r.since)
                for r in conn.execute(
                    select(t.suppressions)
                    .where(t.suppressions.c.contact_id == contact.id)
                    .order_by(t.suppressions.c.since, t.suppressions.c.id)
                )
            )
            subs = frozenset(
                r.topic
                for r in conn.execute(
                    select(t.subscriptions.c.topic).where(
                        t.subscriptions.c.contact_id == contact.id
                    )
                )
            )
            events = self._history(conn, contact.id) if with_history else ()
        return ContactStatus(
            address=contact.address,
            address_hash=digest,
            state=SendState(
                known=True,
                suppressions=sups,
                subscribed_topics=subs,
                frequency=Frequency(contact.frequency),
                paused_until=contact.paused_until,
                last_marketing_send_at=contact.last_marketing_send_at,
            ),
            soft_bounces=contact.soft_bounces,
            erased_at=contact.erased_at,
            events=events,
        )

    def history(self, address: str) -> tuple[Event, ...]:
        digest = self.hasher.hash(canonical(address))
        with self.engine.connect() as conn:
            contact_id = conn.execute(
                select(t.contacts.c.id).where(t.contacts.c.address_hash == digest)
            ).scalar()
            return self._history(conn, contact_id) if contact_id is not None else ()

    def _history(self, conn: Connection, contact_id: int) -> tuple[Event, ...]:
        rows = conn.execute(
            select(t.events).where(t.events.c.contact_id == contact_id).order_by(t.events.c.id)
        )
        return tuple(
            Event(
                id=r.id,
                type=EventType(r.type),
                channel=Channel(r.channel),
                scope=r.scope,
                campaign=r.campaign,
                at=r.at,
                reason=r.reason,
                details=r.details,
                recorded_at=r.recorded_at,
            )
            for r in rows
        )

    def blocklist(
        self,
        topic: str | None,
        at: datetime,
        *,
        facts: Sequence[Fact],
        windows: Mapping[Frequency, timedelta],
    ) -> Blocklist:
        """Everyone for whom one of ``facts`` holds in ``topic`` at ``at``, each
        with the first of them in the order given (the policy's rule order).
        ``windows``: how long each frequency keeps the next send waiting.

        Read in a few set-based queries straight from the driver, addresses
        as UTF-8 bytes, so that screening millions of addresses afterwards
        costs one dictionary lookup each (``adieu filter``).
        """
        scope = self.check_scope(topic)
        sql = self._sql
        rank = {fact: i for i, fact in enumerate(facts)}
        address = sql.address_bytes
        clear: dict[bytes, str] = {}
        hashed: dict[bytes, str] = {}

        def note(addr: Any, digest: Any, fact: str) -> None:
            """Keep the fact that ranks first for this contact."""
            target, key = (clear, bytes(addr)) if addr is not None else (hashed, bytes(digest))
            held = target.get(key)
            if held is None or rank[Fact(fact)] < rank[Fact(held)]:
                target[key] = fact

        # Suppressions: of all marketing by reason, and of this topic by any.
        held = sql.held_suppressions(
            [f.value for f in facts if f.value in _REASON],
            scope if Fact.TOPIC_OPT_OUT in rank and scope != ALL else None,
        )
        if held is not None:
            label, joined, params = held
            # Straight from the cursor into the dictionary: the bulk of the work.
            clear = self._reads.mapping(
                f"SELECT {address}, {label}{joined} AND c.address IS NOT NULL", params
            )
            # Erased contacts are few or none: look for one through the index
            # before joining every suppression for them.
            if self._reads.fetchall(sql.ANY_ERASED, ()):
                hashed = {
                    bytes(d): why
                    for d, why in self._reads.rows(
                        f"SELECT c.address_hash, {label}{joined} AND c.address IS NULL", params
                    )
                }
            # A few people are suppressed for several reasons: name the first.
            for addr, digest, why in self._reads.fetchall(
                f"SELECT {address}, c.address_hash, {label}{joined}{sql.SEVERAL}", params
            ):
                note(addr, digest, why)
        later: list[tuple[Fact, str, tuple[Any, ...]]] = []
        if Fact.PAUSED in rank:
            later.append((Fact.PAUSED, sql.paused(), (self._stored(at),)))
        if Fact.FREQUENCY_CAP in rank:
            for freq, window in windows.items():
                later.append(
                    (Fact.FREQUENCY_CAP, sql.capped(), (freq.value, self._stored(at - window)))
                )
        for fact, query, values in later:
            for addr, digest in self._reads.fetchall(query, values):
                note(addr, digest, fact.value)
        if Fact.NOT_SUBSCRIBED not in rank or scope == ALL or self.topic(scope).default_opt_in:
            return Blocklist(clear, hashed)
        subs = self._reads.fetchall(sql.subscribed(), (scope,))
        allow = frozenset(bytes(a) for a, _ in subs if a is not None)
        allow_hashed = frozenset(bytes(h) for a, h in subs if a is None)
        # Who is not subscribed, and held only by facts that rank after that,
        # is reported as not subscribed.
        after = {f.value for f in facts[rank[Fact.NOT_SUBSCRIBED] + 1 :]}
        for target, allowed in ((clear, allow), (hashed, allow_hashed)):
            for key, why in target.items():
                if why in after and key not in allowed:
                    target[key] = Fact.NOT_SUBSCRIBED.value
        return Blocklist(clear, hashed, allow, allow_hashed)

    def count_contacts(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t.contacts)).scalar_one())

    def address_of(self, digest: bytes) -> tuple[bool, str | None]:
        """Whether a contact has this keyed hash, and its address while held."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.contacts.c.address).where(t.contacts.c.address_hash == digest)
            ).first()
        return (False, None) if row is None else (True, row.address)

    def contacts_by_hash_prefix(
        self, prefix: bytes, limit: int = 2
    ) -> list[tuple[bytes, str | None]]:
        """The contacts whose keyed hash begins with ``prefix`` (a compact
        token's recipient), at most ``limit``: (keyed hash, address, or
        ``None`` once erased). A range on the unique ``address_hash`` index."""
        low, high = prefix.ljust(32, b"\x00"), prefix.ljust(32, b"\xff")  # SHA-256: 32 bytes
        query = (
            select(t.contacts.c.address_hash, t.contacts.c.address)
            .where(t.contacts.c.address_hash >= low, t.contacts.c.address_hash <= high)
            .order_by(t.contacts.c.address_hash)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [(bytes(row.address_hash), row.address) for row in rows]

    def campaigns_sent(self, address: str, limit: int = 200) -> list[str]:
        """The distinct campaigns of the latest ``limit`` sends recorded to
        ``address``, newest first (a compact token's campaign is one of them)."""
        digest = self.hasher.hash(canonical(address))
        query = (
            select(t.sends.c.campaign)
            .join(t.contacts, t.contacts.c.id == t.sends.c.contact_id)
            .where(t.contacts.c.address_hash == digest)
            .order_by(t.sends.c.at.desc(), t.sends.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).scalars().all()
        return list(dict.fromkeys(c for c in rows if c is not None))

    def unsubscribe_hashed(
        self,
        digest: bytes,
        scope: str | None = ALL,
        *,
        channel: Channel,
        campaign: str | None = None,
        at: datetime | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """Unsubscribe someone known only by the keyed hash of their address
        (erased, or never seen and named by the API's contact key). ``details``
        (who did it) must hold no personal data."""
        scope = self.check_scope(scope)
        at = at or self.now()
        with self._write() as conn:
            contact = self._contact(conn, None, digest=digest)
            assert contact is not None
            held = [
                s
                for s in self._suppressions(conn, contact.id, scope)
                if s.reason in CONSENT_REASONS
            ]
            if held:
                first = min(held, key=lambda s: s.since)
                return Outcome(changed=False, scope=scope, since=first.since, reason=first.reason)
            event_id = self._event(
                conn,
                contact.id,
                EventType.UNSUBSCRIBE,
                channel,
                scope,
                at,
                campaign=campaign,
                details=details,
            )
            self._suppress(conn, contact.id, scope, Reason.UNSUBSCRIBE, at, event_id)
        return Outcome(
            changed=True, scope=scope, since=at, reason=Reason.UNSUBSCRIBE, event_id=event_id
        )

    def erase(
        self,
        address: str | None,
        *,
        channel: Channel,
        at: datetime | None = None,
        digest: bytes | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """GDPR erasure: forget the clear address, keep only what suppression needs.

        The keyed-hash contact stays suppressed for ever (so the address can
        never be imported and mailed again; no door lifts it); events keep
        their skeleton (type, channel, scope, time) but lose free text and
        details; the inbound review queue keeps the address only masked. An
        address never seen is stored as its keyed hash alone, suppressed
        (``Outcome.detail`` is ``never_seen``). ``digest`` instead of an
        address erases by the keyed hash alone. ``details`` (who did it)
        must hold no personal data.
        """
        address = canonical(address) if address is not None else None
        digest = digest if digest is not None else self.hasher.hash(address or "")
        at = at or self.now()
        with self._write() as conn:
            contact = self._contact(conn, None, digest=digest, create=False)
            never_seen = contact is None
            if contact is None:
                contact = self._contact(conn, None, digest=digest)
            assert contact is not None
            if contact.erased_at is not None:
                return Outcome(changed=False, scope=ALL, since=contact.erased_at)
            conn.execute(
                update(t.events)
                .where(t.events.c.contact_id == contact.id)
                .values(reason=None, details=None)
            )
            conn.execute(delete(t.subscriptions).where(t.subscriptions.c.contact_id == contact.id))
            event_id = self._event(
                conn, contact.id, EventType.ERASE, channel, ALL, at, details=details
            )
            self._suppress(conn, contact.id, ALL, Reason.MANUAL, at, event_id)
            conn.execute(
                update(t.contacts)
                .where(t.contacts.c.id == contact.id)
                .values(address=None, erased_at=at, paused_until=None)
            )
            known = address or contact.address
            if known:
                self._redact_review(conn, known)
        self._scrub_files()
        return Outcome(
            changed=True,
            scope=ALL,
            since=at,
            reason=Reason.MANUAL,
            event_id=event_id,
            detail="never_seen" if never_seen else None,
        )


def _facts_to_lift(
    lift: Iterable[Reason | str], channel: Channel, scope: str, note: str | None
) -> frozenset[Reason]:
    """The complaints and hard bounces an operator asked to lift, checked:
    only an operator lifts them, on purpose, with a note, for all mail."""
    chosen = set()
    for name in lift:
        try:
            reason = Reason(name)
        except ValueError:
            reason = None
        if reason not in LIFTABLE_FACTS:
            raise InvalidInput(
                f"Only a complaint or a hard bounce can be lifted (not {str(name)!r})."
            )
        chosen.add(reason)
    if not chosen:
        return frozenset()
    if channel not in OPERATOR_CHANNELS:
        raise InvalidInput("Only an operator can lift a complaint or a hard bounce.")
    if not (note or "").strip():
        raise InvalidInput("Say why when lifting a complaint or a hard bounce (a note).")
    if scope != ALL:
        raise InvalidInput(
            "A complaint or a hard bounce holds for all mail: lift it without a topic."
        )
    return frozenset(r for r in chosen if r is not None)
