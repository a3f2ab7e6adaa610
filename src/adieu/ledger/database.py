"""Engines and migrations for the ledger's two stores, SQLite and PostgreSQL.

SQLite runs in WAL mode with ``synchronous=FULL``, so an acknowledged
unsubscribe survives ``kill -9`` and power loss. Writes start with
``BEGIN IMMEDIATE``: a writer takes the lock before it reads, so two processes
never deadlock on a lock upgrade, and waits up to the busy timeout for its turn.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alembic.config import Config

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, Connection, ExceptionContext, make_url
from sqlalchemy.pool import ConnectionPoolEntry

from adieu.keys import create_private, private_dir, private_file

WRITE = "adieu_write"
_BUSY_TIMEOUT_S = 30.0


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with Adieu's durability and locking settings."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            # Every address, reason and webhook secret is in this file: it is
            # created 0600 in a 0700 directory before SQLite opens it, and
            # SQLite gives its -wal and -shm the database's own mode. Files
            # from before that others can read are tightened here (saying so).
            database = Path(parsed.database)
            private_dir(database.parent, own=database.name)
            if not create_private(database):
                for suffix in ("", "-wal", "-shm", "-journal"):
                    private_file(database.with_name(database.name + suffix))
        busy = busy_timeout(parsed)
        engine = create_engine(
            url,
            connect_args={"timeout": busy, "check_same_thread": False},
            hide_parameters=True,
        )
        event.listen(engine, "connect", partial(_sqlite_connect, busy=busy))
        event.listen(engine, "begin", _sqlite_begin)
        event.listen(engine, "handle_error", _drop_if_unwritable)
        return engine
    # hide_parameters: a failed statement's message (logged, raised) never
    # carries its parameters, which hold addresses; nor PostgreSQL's own
    # account of the failing row (``_first_line_only``).
    engine = create_engine(url, pool_pre_ping=True, hide_parameters=True)
    event.listen(engine, "handle_error", _first_line_only)
    event.listen(engine, "handle_error", _drop_if_unwritable)
    return engine


#: SQLite's primary result codes for a connection that cannot write its file:
#: SQLITE_READONLY (opened while the file or its directory was read-only, it
#: stays so) and SQLITE_IOERR (its -wal or -shm could not be written).
_SQLITE_UNWRITABLE = {8, 10}
#: PostgreSQL's read_only_sql_transaction (a standby, or a read-only session).
_PG_READ_ONLY = "25006"


def _drop_if_unwritable(context: ExceptionContext) -> None:
    """A connection that failed because it cannot write is treated as lost:
    the pool drops it (and the others opened alongside) and the next request
    opens new ones, so service resumes by itself once the files or the server
    are writable again, without a restart. (A held lock is not this: the
    connection is fine and the next try may succeed.)"""
    orig = context.original_exception
    code = getattr(orig, "sqlite_errorcode", None)
    if (isinstance(code, int) and code & 0xFF in _SQLITE_UNWRITABLE) or (
        getattr(orig, "sqlstate", None) == _PG_READ_ONLY
    ):
        context.is_disconnect = True


def _first_line_only(context: ExceptionContext) -> None:
    """PostgreSQL's error messages go on after their first line with the values
    of the row that failed (``DETAIL: Key (address)=(…) already exists``,
    ``Failing row contains (…)``): keep only the first line, in the driver's
    exception and in SQLAlchemy's, so that no log line or traceback shows them."""
    orig = context.original_exception
    text = str(orig)
    first = text.split("\n", 1)[0]
    if first == text:
        return
    orig.args = (first,)
    wrapped = context.sqlalchemy_exception
    if wrapped is not None and wrapped.args and isinstance(wrapped.args[0], str):
        kind = type(orig)
        wrapped.args = (f"({kind.__module__}.{kind.__name__}) {first}",)


def busy_timeout(url: URL) -> float:
    """How long a SQLite writer waits for the lock before giving up ("database
    is locked", which the doors answer as "try again later"): 30 seconds, or
    the URL's ``?timeout=SECONDS`` (the driver's own parameter)."""
    given = url.query.get("timeout")
    try:
        return float(given) if isinstance(given, str) else _BUSY_TIMEOUT_S
    except ValueError:
        return _BUSY_TIMEOUT_S


class ReadPool:
    """Plain DB-API connections for the hot read path (``send_state``).

    One indexed query per decision: going straight to the driver with a fixed
    SQL string costs a few microseconds instead of SQLAlchemy's tens, which is
    what lets a single thread answer tens of thousands of send decisions a
    second. Connections are in autocommit mode, so every read sees the newest
    committed state; a connection that failed is dropped, not reused.
    """

    def __init__(self, engine: Engine, keep: int = 8) -> None:
        self._engine = engine
        self._keep = keep
        self._idle: list[Any] = []

    def _connect(self) -> Any:
        engine = self._engine
        if engine.dialect.name == "sqlite":
            busy = busy_timeout(engine.url)
            conn = sqlite3.connect(
                engine.url.database or ":memory:", timeout=busy, check_same_thread=False
            )
            _sqlite_connect(conn, None, busy=busy)
            return conn
        cargs, cparams = engine.dialect.create_connect_args(engine.url)
        return engine.dialect.loaded_dbapi.connect(*cargs, **cparams, autocommit=True)

    def _take(self) -> Any:
        """An idle connection, or a new one."""
        try:
            return self._idle.pop()
        except IndexError:
            return self._connect()

    def _give_back(self, conn: Any) -> None:
        if len(self._idle) < self._keep:
            self._idle.append(conn)
        else:
            conn.close()

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        """A cursor on an idle connection, which goes back to the pool after
        use; a failed or abandoned read drops the connection instead."""
        conn = self._take()
        try:
            cursor = conn.cursor()
            yield cursor
            cursor.close()
        except BaseException:
            conn.close()
            raise
        self._give_back(conn)

    def rows(self, sql: str, params: tuple[Any, ...]) -> Iterator[Any]:
        """Stream the rows of a result (one connection held meanwhile)."""
        with self._cursor() as cursor:
            cursor.execute(sql, params)
            yield from cursor

    def fetchall(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        # As ``_cursor``, without the generator's context manager: this is the
        # send decision's one read (the manager cost as much as a short query).
        conn = self._take()
        try:
            cursor = conn.cursor()
            cursor.execute(sql, params)
            rows: list[Any] = cursor.fetchall()
            cursor.close()
        except BaseException:
            conn.close()
            raise
        self._give_back(conn)
        return rows

    def mapping(self, sql: str, params: tuple[Any, ...]) -> dict[Any, Any]:
        """A two-column result as a dict, built by the driver's own loop
        (for hundreds of thousands of rows, no Python step per row)."""
        with self._cursor() as cursor:
            cursor.execute(sql, params)
            found: dict[Any, Any] = dict(cursor)
        return found

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


def _sqlite_connect(
    dbapi_connection: sqlite3.Connection,
    record: ConnectionPoolEntry | None,
    *,
    busy: float = _BUSY_TIMEOUT_S,
) -> None:
    # The driver's own transaction handling is switched off; SQLAlchemy's
    # "begin" event below decides between BEGIN and BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Deleted and overwritten content is zeroed in the file, so an erased
    # address leaves no trace in free pages (GDPR erasure, docs/REQUIREMENTS.md).
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(busy * 1000)}")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    if conn.get_execution_options().get(WRITE):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


#: The newest migration. Kept here so that a start-up check needs one query
#: and no Alembic import; a test checks it against the migrations directory.
HEAD = "0012"


def _alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(resources.files("adieu") / "migrations"))
    return config


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def _revision(conn: Connection) -> str | None:
    # Asked of the catalog directly: SQLAlchemy's inspector costs more than
    # the rest of a command's start-up check.
    if conn.dialect.name == "sqlite":
        exists = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
    else:
        exists = "SELECT 1 WHERE to_regclass('alembic_version') IS NOT NULL"
    if conn.execute(text(exists)).first() is None:
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return _revision(conn)


def upgrade(engine: Engine) -> bool:
    """Bring the schema to the newest revision; ``True`` when anything ran.

    Safe when several processes start at once: the migration runs under the
    database's write lock (SQLite) or an advisory lock (PostgreSQL), and a
    process that waited finds the work done.
    """
    if current_revision(engine) == HEAD:
        return False
    from alembic import command

    with engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7366431)"))
        if _revision(conn) == HEAD:
            return False
        config = _alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    return True


def describe(url: str) -> str:
    """Where the ledger lives, without a password (safe to print)."""
    return make_url(url).render_as_string(hide_password=True)
