"""Alembic environment: always run with a connection handed in by Adieu."""

from __future__ import annotations

from alembic import context

from adieu.ledger.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable by calling alembic directly
    raise RuntimeError("run migrations with 'adieu db upgrade'")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
