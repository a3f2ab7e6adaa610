"""Engines and migrations for the ledger's two stores, SQLite and PostgreSQL.

SQLite runs in WAL mode with ``synchronous=FULL``, so an acknowledged
unsubscribe survives ``kill -9`` and power loss. Writes start with
``BEGIN IMMEDIATE``: a writer takes the lock before it reads, so two processes
never deadlock on a lock upgrade, and waits up to the busy timeout for its turn.
"""

from __future__ import annotations

import sqlite3
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.pool import ConnectionPoolEntry

WRITE = "adieu_write"
_BUSY_TIMEOUT_S = 30.0


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with Adieu's durability and locking settings."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": _BUSY_TIMEOUT_S, "check_same_thread": False}
        )
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_connect(dbapi_connection: sqlite3.Connection, record: ConnectionPoolEntry) -> None:
    # The driver's own transaction handling is switched off; SQLAlchemy's
    # "begin" event below decides between BEGIN and BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT_S * 1000)}")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    if conn.get_execution_options().get(WRITE):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("adieu") / "migrations"))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> bool:
    """Bring the schema to the newest revision; ``True`` when anything ran.

    Safe when several processes start at once: the migration runs under the
    database's write lock (SQLite) or an advisory lock (PostgreSQL), and a
    process that waited finds the work done.
    """
    head = head_revision()
    if current_revision(engine) == head:
        return False
    with engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7366431)"))
        if MigrationContext.configure(conn).get_current_revision() == head:
            return False
        config = _alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    return True


def describe(url: str) -> dict[str, Any]:
    """Where the ledger lives, without a password (safe to print)."""
    parsed = make_url(url)
    return {"backend": parsed.get_backend_name(), "url": parsed.render_as_string(True)}
