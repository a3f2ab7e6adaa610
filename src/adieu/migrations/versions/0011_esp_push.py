"""Adieu's decisions queued for each configured ESP, delivered like webhooks.

``esp_pushes``: one row per (provider, decision) — an unsubscribe, a
complaint or a hard bounce to add to the provider's suppression list, or an
entry to remove after a resubscribe or an operator's lift.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from adieu.ledger.schema import Id, UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "esp_pushes",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("event_id", Id, nullable=True),
        sa.Column("contact_id", Id, nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("address", sa.String(320), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime, nullable=False),
        sa.Column("lease_until", UTCDateTime, nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("delivered_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_esp_pushes"),
    )
    op.create_index("ix_esp_pushes_state", "esp_pushes", ["state", "next_attempt_at"])
    op.create_index("ix_esp_pushes_order", "esp_pushes", ["provider", "contact_id", "state", "id"])


def downgrade() -> None:
    op.drop_index("ix_esp_pushes_order", table_name="esp_pushes")
    op.drop_index("ix_esp_pushes_state", table_name="esp_pushes")
    op.drop_table("esp_pushes")
