"""Topics are retired, not deleted: links that name one keep working.

A link names its topic inside its token and is never recorded, so a topic
that was ever used in a link may be named by a click years later. Removing
the topic made such links answer "not found" (even "Unsubscribe from all").
A retired topic stays, with the time it was retired: it is refused for new
links and sends and left out of the preference center, and every link that
names it still unsubscribes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from adieu.ledger.schema import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("topics") as batch:
        batch.add_column(sa.Column("retired_at", UTCDateTime, nullable=True))


def downgrade() -> None:
    """Retired topics become ordinary topics again (nothing is deleted: links
    that name them keep working)."""
    with op.batch_alter_table("topics") as batch:
        batch.drop_column("retired_at")
