from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from adieu.ledger.database import HEAD, current_revision, head_revision, upgrade
from adieu.ledger.schema import metadata
from adieu.service import Adieu


def test_migration_creates_exactly_the_schema_the_code_uses(adieu: Adieu) -> None:
    with adieu.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    assert current_revision(adieu.engine) == head_revision() == HEAD
    assert upgrade(adieu.engine) is False, "a second upgrade finds nothing to do"
