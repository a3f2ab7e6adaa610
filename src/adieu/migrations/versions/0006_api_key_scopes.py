"""API keys get a scope (read, send, admin) instead of a read-only flag.

A read-only key becomes a ``read`` key; every other key could change
anything, so it becomes an ``admin`` key: nobody loses what they had, and a
key that should only send is made anew with ``--scope send``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("scope", sa.String(8), nullable=True))
    op.execute("UPDATE api_keys SET scope = CASE WHEN read_only THEN 'read' ELSE 'admin' END")
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("scope", existing_type=sa.String(8), nullable=False)
        batch.drop_column("read_only")


def downgrade() -> None:
    """Only ``admin`` keys may write again; a ``send`` key becomes read-only
    (the lesser of the two: it loses recording sends rather than gaining
    everything)."""
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("read_only", sa.Boolean, nullable=True))
    op.execute("UPDATE api_keys SET read_only = CASE WHEN scope = 'admin' THEN false ELSE true END")
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("read_only", existing_type=sa.Boolean, nullable=False)
        batch.drop_column("scope")
