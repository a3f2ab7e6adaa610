from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from adieu.ledger.database import HEAD, current_revision, head_revision, upgrade
from adieu.ledger.schema import metadata
from adieu.service import Adieu


def test_migration_creates_exactly_the_schema_the_code_uses(adieu: Adieu) -> None:
    def ours(obj: object, name: str | None, type_: str, reflected: bool, other: object) -> bool:
        # PostgreSQL's extra hash index (migration 0004) lives outside the metadata.
        return not (type_ == "index" and name == "ix_contacts_address_hash_hash")

    with adieu.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": ours})
        diff = compare_metadata(context, metadata)
    assert diff == []
    assert current_revision(adieu.engine) == head_revision() == HEAD
    assert upgrade(adieu.engine) is False, "a second upgrade finds nothing to do"


def test_the_hash_index_for_batch_checks_exists_on_postgresql_only(adieu: Adieu) -> None:
    from sqlalchemy import inspect

    indexes = {i["name"]: i for i in inspect(adieu.engine).get_indexes("contacts")}
    if adieu.engine.dialect.name == "postgresql":
        assert "ix_contacts_address_hash_hash" in indexes
    else:
        assert "ix_contacts_address_hash_hash" not in indexes  # SQLite has no hash indexes
