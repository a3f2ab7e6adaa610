"""A hard bounce has no topic: widen any topic-scoped one to all mail.

A hard bounce is a fact about a mailbox, so it stops every message to it,
transactional included. Imports used to accept ``--topic`` with
``--reason hard_bounce`` and store the bounce under the topic, where the send
rule (which reads hard bounces of all mail) did not see it. Each such row
becomes a hard bounce of all mail, unless the contact already has one.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM suppressions WHERE reason = 'hard_bounce' AND scope <> 'all'"
        " AND contact_id IN (SELECT contact_id FROM suppressions"
        " WHERE reason = 'hard_bounce' AND scope = 'all')"
    )
    # One row per contact may become the global one; any others go.
    op.execute(
        "DELETE FROM suppressions WHERE reason = 'hard_bounce' AND scope <> 'all'"
        " AND id NOT IN (SELECT MIN(id) FROM suppressions"
        " WHERE reason = 'hard_bounce' AND scope <> 'all' GROUP BY contact_id)"
    )
    op.execute("UPDATE suppressions SET scope = 'all' WHERE reason = 'hard_bounce'")


def downgrade() -> None:
    """Nothing to undo: the widened rows say what the bounces always meant."""
