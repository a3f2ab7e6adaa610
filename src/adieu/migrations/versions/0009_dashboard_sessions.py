"""Signing out of the dashboard ends the session on the server.

A dashboard session is a signed cookie (the key's id, an expiry, an HMAC);
until now signing out only asked the browser to forget it, and a copy kept
elsewhere worked until it expired. A session signed out is now remembered
(a digest of its cookie) until it would have expired, and refused.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from adieu.ledger.schema import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ended_sessions",
        sa.Column("session", sa.LargeBinary(32), nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("session", name="pk_ended_sessions"),
    )


def downgrade() -> None:
    op.drop_table("ended_sessions")
