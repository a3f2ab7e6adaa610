"""The relay's memory of the copies it handed on, shared by every worker.

One row per copy: the message's fingerprint and the recipient's keyed hash
(never an address), its state (delivered or refused) and the time until
which it holds. A retry after a 451, on any worker or after a restart,
skips the copies already delivered or refused (``adieu.ledger.relaylog``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from adieu.ledger.schema import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "relay_deliveries",
        sa.Column("fingerprint", sa.LargeBinary(32), nullable=False),
        sa.Column("recipient", sa.LargeBinary(32), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("until", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", "recipient", name="pk_relay_deliveries"),
    )
    op.create_index("ix_relay_deliveries_until", "relay_deliveries", ["until"])


def downgrade() -> None:
    """The memory goes: a message retried afterwards may reach someone twice."""
    op.drop_index("ix_relay_deliveries_until", table_name="relay_deliveries")
    op.drop_table("relay_deliveries")
