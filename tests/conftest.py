"""Shared fixtures. Every ledger test runs on SQLite and, when
``ADIEU_TEST_DATABASE_URL`` names a PostgreSQL server, on PostgreSQL too, each
test in a schema of its own."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text

from adieu.service import Adieu
from adieu.settings import Settings

PG_URL = os.environ.get("ADIEU_TEST_DATABASE_URL")
if os.environ.get("ADIEU_REQUIRE_POSTGRES") and not PG_URL:
    raise RuntimeError("ADIEU_REQUIRE_POSTGRES is set but ADIEU_TEST_DATABASE_URL is not")
_KEEP = {
    "ADIEU_TEST_DATABASE_URL",
    "ADIEU_REQUIRE_POSTGRES",
    "ADIEU_REQUIRE_BROWSER",
    "ADIEU_REQUIRE_POSTFIX",
}

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgresql",
        id="postgresql",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not PG_URL, reason="ADIEU_TEST_DATABASE_URL is not set"),
        ],
    ),
]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never read the developer's own settings or adieu.toml."""
    for name in list(os.environ):
        if name.startswith("ADIEU_") and name not in _KEEP:
            monkeypatch.delenv(name)
    monkeypatch.setenv("ADIEU_CONFIG", str(tmp_path / "no-such-adieu.toml"))


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh, private schema."""
    assert PG_URL
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{separator}options={quote(f'-csearch_path={schema}')}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'adieu.db'}"
    return str(request.getfixturevalue("pg_schema_url"))


MakeSettings = Callable[..., Settings]


@pytest.fixture
def make_settings(tmp_path: Path, database_url: str) -> MakeSettings:
    """Settings on this test's database (SQLite, then PostgreSQL), with overrides:
    every door's tests run on both, as the ledger's do."""

    def make(**overrides: object) -> Settings:
        return Settings(
            data_dir=tmp_path / "data",
            database_url=database_url,
            base_url="https://mail.example.net",
            **overrides,
        )

    return make


@pytest.fixture
def settings(make_settings: MakeSettings) -> Settings:
    return make_settings()


@pytest.fixture
def adieu(settings: Settings) -> Iterator[Adieu]:
    app = Adieu(settings)
    yield app
    app.close()


@pytest.fixture
def sqlite_adieu(tmp_path: Path) -> Iterator[Adieu]:
    """An Adieu on SQLite only, for tests about things other than storage."""
    app = Adieu(Settings(data_dir=tmp_path / "data", base_url="https://mail.example.net"))
    yield app
    app.close()
