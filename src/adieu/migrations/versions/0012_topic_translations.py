"""Topic names and descriptions per language.

A topic had one name, shown on every page: a Japanese page named an English
topic. Each topic now keeps a name and description per language (JSON keyed
by catalog locale, such as ``ja`` or ``pt_BR``); a language without its own
reads the default name and description, which stay where they were.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("topics") as batch:
        batch.add_column(sa.Column("translations", sa.Text, nullable=False, server_default="{}"))


def downgrade() -> None:
    """The per-language names go; the default name and description stay."""
    with op.batch_alter_table("topics") as batch:
        batch.drop_column("translations")
