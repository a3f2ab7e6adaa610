"""Provider events received by /hooks/{provider}, kept by their id so a redelivery is recorded once.

``esp_events``: one row per provider event and recipient (the provider's
event id, the recipient's keyed hash). ``esp_nonces``: the single-use values
of the providers' authentication (Mailgun's tokens, SparkPost's batch ids).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from adieu.ledger.schema import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "esp_events",
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("recipient", sa.LargeBinary(32), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("claimed_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("provider", "event_id", "recipient", name="pk_esp_events"),
    )
    op.create_index("ix_esp_events_claimed_at", "esp_events", ["claimed_at"])
    op.create_table(
        "esp_nonces",
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("nonce", sa.LargeBinary(32), nullable=False),
        sa.Column("until", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("provider", "nonce", name="pk_esp_nonces"),
    )
    op.create_index("ix_esp_nonces_until", "esp_nonces", ["until"])


def downgrade() -> None:
    op.drop_index("ix_esp_nonces_until", table_name="esp_nonces")
    op.drop_table("esp_nonces")
    op.drop_index("ix_esp_events_claimed_at", table_name="esp_events")
    op.drop_table("esp_events")
