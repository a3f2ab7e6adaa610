from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from importlib import resources

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from adieu.ledger.apikeys import ApiKeys
from adieu.ledger.database import (
    HEAD,
    WRITE,
    current_revision,
    head_revision,
    make_engine,
    upgrade,
)
from adieu.ledger.schema import UTCDateTime, metadata
from adieu.ledger.vocabulary import Scope
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


def _migrate(engine: sa.Engine, target: str, *, down: bool = False) -> None:
    """Run the migrations up (or down) to ``target``, as ``adieu db upgrade`` does."""
    config = Config()
    config.set_main_option("script_location", str(resources.files("adieu") / "migrations"))
    with engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
        config.attributes["connection"] = conn
        if down:
            command.downgrade(config, target)
        else:
            command.upgrade(config, target)


#: ``api_keys`` as migration 0005 left it (a read-only flag, no scope).
_KEYS_0005 = sa.table(
    "api_keys",
    sa.column("name", sa.String),
    sa.column("prefix", sa.String),
    sa.column("key_hash", sa.LargeBinary),
    sa.column("read_only", sa.Boolean),
    sa.column("created_at", UTCDateTime),
)


def test_0006_makes_read_only_keys_read_keys_and_the_others_admin_keys(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        _migrate(engine, "0005")
        now = datetime(2026, 12, 1, tzinfo=UTC)
        secrets = {"reporting": "adieu_reporting-secret", "ops": "adieu_ops-secret"}
        with engine.begin() as conn:
            conn.execute(
                sa.insert(_KEYS_0005),
                [
                    {
                        "name": name,
                        "prefix": secret[:12],
                        "key_hash": hashlib.sha256(secret.encode()).digest(),
                        "read_only": name == "reporting",
                        "created_at": now,
                    }
                    for name, secret in secrets.items()
                ],
            )
        _migrate(engine, "0006")
        columns = {c["name"]: c for c in sa.inspect(engine).get_columns("api_keys")}
        assert "read_only" not in columns
        assert columns["scope"]["nullable"] is False
        keys = ApiKeys(engine, lambda: now)
        assert [(k.name, k.scope) for k in keys.list()] == [
            ("reporting", Scope.READ),
            ("ops", Scope.ADMIN),
        ]
        reporting = keys.verify(secrets["reporting"])
        assert reporting is not None and reporting.scope is Scope.READ
        keys.create("mailer", scope=Scope.SEND)
        # And back: only an admin key may write again; a send key is read-only.
        _migrate(engine, "0005", down=True)
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT name, read_only FROM api_keys ORDER BY id")).all()
        assert [(name, bool(flag)) for name, flag in rows] == [
            ("reporting", True),
            ("ops", False),
            ("mailer", True),
        ]
    finally:
        engine.dispose()


def test_0007_keeps_every_topic_in_use_and_retired_topics_come_back_on_downgrade(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    try:
        _migrate(engine, "0006")
        created = datetime(2026, 12, 1, tzinfo=UTC)
        topics_0006 = sa.table(
            "topics",
            sa.column("key", sa.String),
            sa.column("name", sa.String),
            sa.column("description", sa.String),
            sa.column("default_opt_in", sa.Boolean),
            sa.column("created_at", UTCDateTime),
        )
        with engine.begin() as conn:
            conn.execute(
                sa.insert(topics_0006),
                [
                    {
                        "key": key,
                        "name": key.title(),
                        "description": "",
                        "default_opt_in": key == "news",
                        "created_at": created,
                    }
                    for key in ("news", "vip")
                ],
            )
        _migrate(engine, "0007")
        columns = {c["name"]: c for c in sa.inspect(engine).get_columns("topics")}
        assert columns["retired_at"]["nullable"] is True
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT key, default_opt_in, retired_at FROM topics ORDER BY key")
            ).all()
        assert [(k, bool(d), r) for k, d, r in rows] == [("news", True, None), ("vip", False, None)]
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE topics SET retired_at = created_at WHERE key = 'vip'"))
        _migrate(engine, "0006", down=True)
        with engine.connect() as conn:
            keys = conn.execute(sa.text("SELECT key FROM topics ORDER BY key")).scalars().all()
        assert keys == ["news", "vip"], "a downgrade deletes no topic"
        assert "retired_at" not in {c["name"] for c in sa.inspect(engine).get_columns("topics")}
    finally:
        engine.dispose()
