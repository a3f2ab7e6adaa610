"""The ledger from empty: topics, contacts, suppressions, subscriptions, events, sends.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from adieu.ledger.schema import Id, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "topics",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("default_opt_in", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_topics"),
        sa.UniqueConstraint("key", name="uq_topics_key"),
    )
    op.create_table(
        "contacts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("address_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("address", sa.String(320), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("frequency", sa.String(16), nullable=False),
        sa.Column("paused_until", UTCDateTime, nullable=True),
        sa.Column("last_marketing_send_at", UTCDateTime, nullable=True),
        sa.Column("soft_bounces", sa.Integer, nullable=False),
        sa.Column("soft_bounce_since", UTCDateTime, nullable=True),
        sa.Column("erased_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_contacts"),
        sa.UniqueConstraint("address_hash", name="uq_contacts_address_hash"),
    )
    op.create_index("ix_contacts_address", "contacts", ["address"])
    op.create_index("ix_contacts_paused_until", "contacts", ["paused_until"])
    op.create_index("ix_contacts_frequency", "contacts", ["frequency", "last_marketing_send_at"])
    op.create_table(
        "suppressions",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("contact_id", Id, nullable=False),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("since", UTCDateTime, nullable=False),
        sa.Column("event_id", Id, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_suppressions"),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name="fk_suppressions_contact_id_contacts"
        ),
        sa.UniqueConstraint(
            "contact_id", "scope", "reason", name="uq_suppressions_contact_scope_reason"
        ),
    )
    op.create_index("ix_suppressions_scope", "suppressions", ["scope"])
    op.create_table(
        "subscriptions",
        sa.Column("contact_id", Id, nullable=False),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("since", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("contact_id", "topic", name="pk_subscriptions"),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name="fk_subscriptions_contact_id_contacts"
        ),
    )
    op.create_table(
        "events",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("contact_id", Id, nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("campaign", sa.String(100), nullable=True),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("details", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name="fk_events_contact_id_contacts"
        ),
    )
    op.create_index("ix_events_contact_id", "events", ["contact_id", "id"])
    op.create_index("ix_events_at", "events", ["at"])
    op.create_table(
        "sends",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("contact_id", Id, nullable=False),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("topic", sa.String(64), nullable=True),
        sa.Column("campaign", sa.String(100), nullable=True),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sends"),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name="fk_sends_contact_id_contacts"
        ),
    )
    op.create_index("ix_sends_contact_id", "sends", ["contact_id", "at"])
    op.create_index("ix_sends_at", "sends", ["at"])


def downgrade() -> None:
    for table in ("sends", "events", "subscriptions", "suppressions", "contacts", "topics"):
        op.drop_table(table)
