"""The ledger's tables (SQLAlchemy 2 Core).

Current state is materialised (contacts, suppressions, subscriptions) beside an
append-only event log; every ledger operation writes both in one transaction.
The migration in ``adieu/migrations`` creates exactly this; a test compares them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, overload

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import DateTime, TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, naive UTC on disk.

    Naive UTC sorts and compares the same way on SQLite (text) and PostgreSQL.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ledger")
        return as_naive_utc(value)

    def process_result_value(
        self, value: str | datetime | None, dialect: Dialect
    ) -> datetime | None:
        return None if value is None else as_utc(value)


@overload
def as_utc(value: None) -> None: ...
@overload
def as_utc(value: str | datetime) -> datetime: ...
def as_utc(value: str | datetime | None) -> datetime | None:
    """A stored time (text on SQLite, naive timestamp on PostgreSQL) as aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        # The same as ``value.replace(tzinfo=UTC)`` at a tenth of the cost
        # (measured: 0.15 µs beside 2.2 µs; every state read converts some).
        return _UTC_EPOCH + (value - _NAIVE_EPOCH)
    return value.replace(tzinfo=UTC)


def as_naive_utc(value: datetime) -> datetime:
    """A time as stored: naive UTC (a naive ``value`` is taken as local time,
    as ``astimezone`` does). By arithmetic, not ``astimezone(UTC).replace(
    tzinfo=None)``: a quarter of the cost, and every write stores a time."""
    if value.tzinfo is None:
        value = value.astimezone(UTC)
    return _NAIVE_EPOCH + (value - _UTC_EPOCH)


_NAIVE_EPOCH = datetime(1970, 1, 1)
_UTC_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# BIGINT on PostgreSQL; INTEGER (the rowid alias) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")

topics = Table(
    "topics",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("default_opt_in", Boolean, nullable=False, default=True),
    Column("created_at", UTCDateTime, nullable=False),
    # Set when the topic was retired (deleted): links that name it still
    # unsubscribe; it is refused for new links and sends.
    Column("retired_at", UTCDateTime, nullable=True),
    # Name and description per language, as JSON: {"ja": {"name": …, "description": …}}.
    Column("translations", Text, nullable=False, default="{}", server_default="{}"),
    UniqueConstraint("key", name="uq_topics_key"),
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # HMAC-SHA256 of the canonical address: the key that survives erasure.
    Column("address_hash", LargeBinary(32), nullable=False),
    # The canonical address in the clear; NULL once erased.
    Column("address", String(320), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("frequency", String(16), nullable=False, default="every"),
    Column("paused_until", UTCDateTime, nullable=True),
    Column("last_marketing_send_at", UTCDateTime, nullable=True),
    Column("soft_bounces", Integer, nullable=False, default=0),
    Column("soft_bounce_since", UTCDateTime, nullable=True),
    Column("erased_at", UTCDateTime, nullable=True),
    UniqueConstraint("address_hash", name="uq_contacts_address_hash"),
)
Index("ix_contacts_address", contacts.c.address)
# For bulk screening: who is paused, who reached a frequency cap.
Index("ix_contacts_paused_until", contacts.c.paused_until)
Index("ix_contacts_frequency", contacts.c.frequency, contacts.c.last_marketing_send_at)

# A "no" to marketing: scope "all" or one topic key. Present means suppressed.
suppressions = Table(
    "suppressions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("contact_id", Id, ForeignKey("contacts.id"), nullable=False),
    Column("scope", String(64), nullable=False),
    Column("reason", String(16), nullable=False),
    Column("since", UTCDateTime, nullable=False),
    Column("event_id", Id, nullable=True),
    # Several reasons can hold at once (an unsubscribe and a hard bounce):
    # resubscribing lifts the consent reasons, never a hard bounce.
    UniqueConstraint("contact_id", "scope", "reason", name="uq_suppressions_contact_scope_reason"),
)
Index("ix_suppressions_scope", suppressions.c.scope)

# An explicit "yes" to a topic whose default is opt-out (R7).
subscriptions = Table(
    "subscriptions",
    metadata,
    Column("contact_id", Id, ForeignKey("contacts.id"), primary_key=True),
    Column("topic", String(64), primary_key=True),
    Column("since", UTCDateTime, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("contact_id", Id, ForeignKey("contacts.id"), nullable=False),
    Column("type", String(32), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("scope", String(64), nullable=False),
    Column("campaign", String(100), nullable=True),
    Column("at", UTCDateTime, nullable=False),
    # Free text a person gave (R15): removed on erasure.
    Column("reason", Text, nullable=True),
    # Where it came from and what was shown (GDPR proof): removed on erasure.
    Column("details", JSON, nullable=True),
    # When the change was committed (``at`` is when it was asked for): the
    # report's time-to-honour. NULL on rows older than this column.
    Column("recorded_at", UTCDateTime, nullable=True),
)
Index("ix_events_contact_id", events.c.contact_id, events.c.id)
Index("ix_events_at", events.c.at)
Index("ix_events_type", events.c.type, events.c.at)

# Sends, for frequency caps and (later) rates per campaign and topic.
sends = Table(
    "sends",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("contact_id", Id, ForeignKey("contacts.id"), nullable=False),
    Column("category", String(16), nullable=False),
    Column("topic", String(64), nullable=True),
    Column("campaign", String(100), nullable=True),
    Column("at", UTCDateTime, nullable=False),
)
Index("ix_sends_contact_id", sends.c.contact_id, sends.c.at)
Index("ix_sends_at", sends.c.at)

# Inbound mail nobody could classify, kept for a person to look at.
inbound_review = Table(
    "inbound_review",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("received_at", UTCDateTime, nullable=False),
    Column("size", Integer, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("note", Text, nullable=False),
)

# The operator's API keys: only a SHA-256 of each key is kept (keys are 32
# random bytes, so a fast hash is enough); ``prefix`` lets a person tell them apart;
# ``scope`` is what the key may do (``adieu.ledger.vocabulary.Scope``).
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", LargeBinary(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("scope", String(8), nullable=False),
    UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
)

# Dashboard sessions signed out before they expired: the SHA-256 of the
# session cookie, kept until the cookie would have expired anyway
# (``ApiKeys.end_session``).
ended_sessions = Table(
    "ended_sessions",
    metadata,
    Column("session", LargeBinary(32), primary_key=True),
    Column("expires_at", UTCDateTime, nullable=False),
)

# Webhook subscribers. ``event_types`` is "*" or ",type,type," so that the
# outbox can be filled by one INSERT … SELECT in the event's own transaction.
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("url", String(2000), nullable=False),
    Column("secret", String(100), nullable=False),
    Column("event_types", String(500), nullable=False),
    Column("description", String(200), nullable=False, default=""),
    Column("active", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)


def _delivery_columns() -> list[Column[Any]]:
    """A queue row's delivery bookkeeping (``ledger.leasing``): pending →
    delivered, or → dead after the last attempt (replayable); leased while a
    deliverer works on it."""
    return [
        Column("state", String(16), nullable=False),
        Column("attempts", Integer, nullable=False, default=0),
        Column("next_attempt_at", UTCDateTime, nullable=False),
        Column("lease_until", UTCDateTime, nullable=True),
        Column("last_error", String(500), nullable=True),
        Column("created_at", UTCDateTime, nullable=False),
        Column("delivered_at", UTCDateTime, nullable=True),
    ]


# One row per (webhook, event) to deliver. Written in the same transaction as
# the event, so an event is never recorded without its deliveries (at least once).
outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("webhook_id", Id, ForeignKey("webhooks.id"), nullable=False),
    Column("event_id", Id, ForeignKey("events.id"), nullable=False),
    Column("contact_id", Id, nullable=False),
    *_delivery_columns(),
)
# The deliverer's two questions: what is due, and is an earlier one for the
# same address still waiting (order per address).
Index("ix_outbox_state", outbox.c.state, outbox.c.next_attempt_at)
Index("ix_outbox_order", outbox.c.webhook_id, outbox.c.contact_id, outbox.c.state, outbox.c.id)
Index("ix_outbox_event_id", outbox.c.event_id)

# What the relay handed on: one row per copy (the message's fingerprint, the
# recipient's keyed hash; never an address), so a retry after a 451, on any
# worker or after a restart, never delivers a copy twice
# (``adieu.ledger.relaylog``). ``state`` is delivered or refused; the row
# holds until ``until``, then is pruned.
relay_deliveries = Table(
    "relay_deliveries",
    metadata,
    Column("fingerprint", LargeBinary(32), primary_key=True),
    Column("recipient", LargeBinary(32), primary_key=True),
    Column("state", String(10), nullable=False),
    Column("until", UTCDateTime, nullable=False),
)
Index("ix_relay_deliveries_until", relay_deliveries.c.until)

# Events an email service provider posted to /hooks/{provider}, one row per
# (provider, the provider's event id, recipient's keyed hash): a redelivered
# event finds its row and is recorded once (``adieu.esp.hooks``). ``state`` is
# pending while the event is being recorded (a pending row older than a few
# minutes is taken over: the process that claimed it died), then recorded.
esp_events = Table(
    "esp_events",
    metadata,
    Column("provider", String(16), primary_key=True),
    Column("event_id", String(200), primary_key=True),
    Column("recipient", LargeBinary(32), primary_key=True),
    Column("state", String(10), nullable=False),
    Column("claimed_at", UTCDateTime, nullable=False),
)
Index("ix_esp_events_claimed_at", esp_events.c.claimed_at)

# Single-use values of the providers' authentication (Mailgun's tokens,
# SparkPost's batch ids), as SHA-256 digests, refused again until ``until``.
esp_nonces = Table(
    "esp_nonces",
    metadata,
    Column("provider", String(16), primary_key=True),
    Column("nonce", LargeBinary(32), primary_key=True),
    Column("until", UTCDateTime, nullable=False),
)
Index("ix_esp_nonces_until", esp_nonces.c.until)

# Adieu's decisions on their way to each configured email service provider's
# suppression list (``adieu.esp.push``): one row per (provider, decision),
# written in the same transaction as the event, leased and retried like the
# webhook outbox, in order per (provider, contact). ``action`` is add or
# remove, ``kind`` unsubscribe, complaint or bounce. The address is what the
# provider's API needs; it is cleared once the row is delivered, and when the
# person is erased every row that is not still pending loses it too.
esp_pushes = Table(
    "esp_pushes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("provider", String(16), nullable=False),
    Column("event_id", Id, nullable=True),
    Column("contact_id", Id, nullable=False),
    Column("action", String(8), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("scope", String(64), nullable=False),
    Column("address", String(320), nullable=True),
    *_delivery_columns(),
)
Index("ix_esp_pushes_state", esp_pushes.c.state, esp_pushes.c.next_attempt_at)
Index(
    "ix_esp_pushes_order",
    esp_pushes.c.provider,
    esp_pushes.c.contact_id,
    esp_pushes.c.state,
    esp_pushes.c.id,
)
