"""The web door when storage fails: locked, read-only, or the PostgreSQL server
gone and back. Every door answers 503 with Retry-After (never a 500, never a
200 without its commit), nothing it refused is recorded, the log names no
address and carries no traceback, and service resumes by itself.

Each test runs the app under uvicorn, as ``adieu serve`` does. The SQLite
write lock is held by another connection past a short busy timeout (the
URL's ``?timeout=``). "Read-only" is made with ``PRAGMA query_only`` on
SQLite and ``default_transaction_read_only`` on PostgreSQL, on every new
connection: the tests may run as root, whom a chmod does not stop, and both
make the store refuse writes the way a read-only file or a standby does.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from live import PrivatePostgres, ThreadServer
from sqlalchemy import Engine, create_engine, event, text

from adieu.ledger import Channel
from adieu.ledger.database import make_engine
from adieu.service import Adieu
from adieu.settings import Settings
from adieu.web.app import create_app
from conftest import MakeSettings

ADDRESS = re.compile(r"[\w.+-]+@example\.(com|org)")
FORM = {"content-type": "application/x-www-form-urlencoded"}
ONE_CLICK = b"List-Unsubscribe=One-Click"


def short_waits(settings: Settings) -> Settings:
    """The same ledger, giving up on a held lock after half a second."""
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        return settings.replace(database_url=f"{url}?timeout=0.5")
    return settings.replace(database_url=url + quote(" -clock_timeout=500"))


def assert_clean_log(caplog: pytest.LogCaptureFixture) -> None:
    """No traceback, no 500 and no address in anything logged."""
    for record in caplog.records:
        text = record.getMessage()
        if record.exc_info:
            text += "".join(traceback.format_exception(*record.exc_info))
        assert "Exception in ASGI application" not in text, text
        assert not ADDRESS.search(text), f"an address in the log: {text}"
        if record.name == "adieu.web":
            assert record.exc_info is None, f"a traceback for storage trouble: {text}"


def assert_unavailable(r: httpx.Response, kind: str) -> None:
    assert r.status_code == 503, (r.status_code, r.text[:300])
    assert int(r.headers["retry-after"]) > 0
    assert r.headers["content-type"].startswith(kind), r.headers["content-type"]


class Door:
    """What each door is asked while storage fails, and afterwards."""

    def __init__(self, adieu: Adieu, base: str) -> None:
        self.adieu = adieu
        self.http = httpx.Client(base_url=base, timeout=30)
        _, key = adieu.api_keys.create("ops")
        self.api = {"Authorization": f"Bearer {key}"}
        # The page's form values and the contact's key, fetched while all is well.
        self.page_token = adieu.codec.mint("page@example.com")
        page = self.http.get(f"/p/{self.page_token}").text
        found = re.search(r'name="csrf" value="([^"]+)"', page)
        assert found is not None
        self.csrf = found.group(1)
        r = self.http.post(
            "/api/v1/contacts/lookup", json={"address": "api@example.com"}, headers=self.api
        )
        self.contact = r.json()["contact"]

    def refused_everywhere(self) -> None:
        """Every door that writes answers 503 + Retry-After in its own shape;
        the ones that only read answer or say 503, never 500."""
        one_click = self.adieu.codec.mint("one-click@example.com")
        r = self.http.post(f"/u/{one_click}", content=ONE_CLICK, headers=FORM)
        assert_unavailable(r, "text/plain")
        r = self.http.post(f"/u/{one_click}", data={"adieu-page": "1", "scope": "all"})
        assert_unavailable(r, "text/html")
        assert "Nothing was changed" in r.text
        r = self.http.post(f"/p/{self.page_token}", data={"csrf": self.csrf, "frequency": "weekly"})
        assert_unavailable(r, "text/html")
        r = self.http.post(
            f"/api/v1/contacts/{self.contact}/unsubscribe", json={}, headers=self.api
        )
        assert_unavailable(r, "application/json")
        assert r.json()["error"]["code"] == "unavailable"
        for path, body in [
            ("/api/v1/check", {"addresses": ["check@example.com"]}),
            ("/api/v1/contacts/lookup", {"address": "api@example.com"}),
        ]:
            r = self.http.post(path, json=body, headers=self.api)
            assert r.status_code in (200, 503), (path, r.status_code, r.text[:300])
            if r.status_code == 503:
                assert_unavailable(r, "application/json")
        r = self.http.get(f"/p/{self.page_token}")
        assert r.status_code in (200, 503), r.status_code
        if r.status_code == 503:
            assert_unavailable(r, "text/html")

    def working_again(self, *, stale: bool = False) -> None:
        """Nothing refused was recorded, and every door works as before.
        ``stale``: connections opened during the outage are still in the pool,
        and the first request to meet one may be a last 503 (which drops them)."""
        for address in ("one-click@example.com", "api@example.com", "page@example.com"):
            assert self.adieu.policy.is_sendable(address), f"{address} recorded without an answer"
        one_click = self.adieu.codec.mint("one-click@example.com")
        r = self.http.post(f"/u/{one_click}", content=ONE_CLICK, headers=FORM)
        if stale and r.status_code == 503:
            r = self.http.post(f"/u/{one_click}", content=ONE_CLICK, headers=FORM)
        assert r.status_code == 200 and r.text == "You are unsubscribed."
        assert not self.adieu.policy.is_sendable("one-click@example.com")
        r = self.http.post(
            f"/api/v1/contacts/{self.contact}/unsubscribe", json={}, headers=self.api
        )
        assert r.status_code == 200, r.text

    def close(self) -> None:
        self.http.close()


@contextmanager
def serving(settings: Settings) -> Iterator[Door]:
    adieu = Adieu(settings)
    try:
        with ThreadServer(create_app(adieu, deliver=False)) as server:
            door = Door(adieu, server.url)
            try:
                yield door
            finally:
                door.close()
    finally:
        adieu.close()


@contextmanager
def write_lock_held(settings: Settings) -> Iterator[None]:
    """Another process's transaction holding what every write needs."""
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        holder = sqlite3.connect(str(settings.data_dir / "adieu.db"), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    engine = create_engine(url.replace(quote(" -clock_timeout=500"), ""))
    with engine.connect() as conn:
        conn.execute(text("LOCK TABLE contacts, suppressions, events IN ACCESS EXCLUSIVE MODE"))
        try:
            yield
        finally:
            conn.rollback()
    engine.dispose()


def test_a_held_write_lock_is_a_503_with_retry_after_and_service_resumes(
    make_settings: MakeSettings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = short_waits(make_settings())
    with serving(settings) as door:
        with write_lock_held(settings):
            door.refused_everywhere()
        door.working_again()
    assert_clean_log(caplog)


def _read_only(engine: Engine, on: bool) -> Callable[..., None]:
    def hook(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if engine.dialect.name == "sqlite":
            cursor.execute(f"PRAGMA query_only={int(on)}")
        else:
            cursor.execute(f"SET default_transaction_read_only = {'on' if on else 'off'}")
            dbapi_connection.commit()
        cursor.close()

    return hook


def test_a_read_only_ledger_is_a_503_with_retry_after_and_service_resumes(
    make_settings: MakeSettings, caplog: pytest.LogCaptureFixture
) -> None:
    with serving(make_settings()) as door:
        engine = door.adieu.engine
        hook = _read_only(engine, True)
        event.listen(engine, "connect", hook)
        engine.dispose()  # every connection from now on is read-only
        door.refused_everywhere()
        # Writable again. The connections opened meanwhile are still read-only
        # (as SQLite's are when they open a file they may not write): the
        # ledger must drop them by itself, not wait for a restart.
        event.remove(engine, "connect", hook)
        door.working_again(stale=True)
    assert_clean_log(caplog)


@pytest.mark.slow
def test_postgresql_stopped_and_restarted_during_a_one_click_burst(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every 200 is in the ledger afterwards, every other answer is a 503 with
    Retry-After, and one-click works again once the server is back, without
    restarting Adieu."""
    postgres = PrivatePostgres()
    try:
        postgres.start()
        settings = Settings(
            data_dir=tmp_path / "data", database_url=postgres.url, base_url="https://x.example"
        )
        adieu = Adieu(settings)
        answers: list[tuple[str, int, str | None, float]] = []
        try:
            with ThreadServer(create_app(adieu, deliver=True)) as server:
                asyncio.run(_burst(adieu, server.url, postgres, answers))
        finally:
            adieu.close()
        statuses = {status for _, status, _, _ in answers}
        assert statuses <= {200, 503}, statuses
        assert all(retry and int(retry) > 0 for _, status, retry, _ in answers if status == 503)
        outage = [a for a in answers if a[1] == 503]
        assert outage, "no request met the outage"
        last_503 = max(at for _, _, _, at in outage)
        assert any(status == 200 and at > last_503 for _, status, _, at in answers), (
            "service did not resume by itself"
        )
        postgres_again = Adieu(settings)
        try:
            for address, status, _, _ in answers:
                if status == 200:
                    assert not postgres_again.policy.is_sendable(address), (
                        f"{address} was answered 200 but is not in the ledger"
                    )
        finally:
            postgres_again.close()
    finally:
        postgres.close()
    assert_clean_log(caplog)


async def _burst(
    adieu: Adieu,
    base: str,
    postgres: PrivatePostgres,
    answers: list[tuple[str, int, str | None, float]],
) -> None:
    start = time.monotonic()
    counter = iter(range(1_000_000))

    async def clicker(client: httpx.AsyncClient) -> None:
        while time.monotonic() - start < 9:
            address = f"burst{next(counter)}@example.com"
            token = adieu.codec.mint(address)
            r = await client.post(f"/u/{token}", content=ONE_CLICK, headers=FORM)
            answers.append((address, r.status_code, r.headers.get("retry-after"), time.monotonic()))
            if r.status_code != 200:
                await asyncio.sleep(0.05)

    async def outage() -> None:
        await asyncio.sleep(2)
        await asyncio.to_thread(postgres.stop, "immediate")
        await asyncio.sleep(2)
        await asyncio.to_thread(postgres.start)

    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        await asyncio.gather(outage(), *(clicker(client) for _ in range(16)))


def test_database_errors_never_show_values_in_messages_or_tracebacks(
    database_url: str,
) -> None:
    """PostgreSQL puts the failing row's values in its message (DETAIL lines);
    the engine keeps the first line only, and never shows parameters."""
    engine = make_engine(database_url)
    assert engine.hide_parameters
    secret = "-".join(("secret", "value"))  # not spelled out in the source lines shown
    try:
        with engine.connect() as conn:
            conn.execute(text("CREATE TEMPORARY TABLE clash (a VARCHAR(320) PRIMARY KEY)"))
            conn.execute(text("INSERT INTO clash VALUES (:a)"), {"a": secret})
            with pytest.raises(Exception) as failed:
                conn.execute(text("INSERT INTO clash VALUES (:a)"), {"a": secret})
            shown = "".join(traceback.format_exception(failed.value))
            assert "clash" in shown  # the statement is there; the values are not
            assert secret not in shown, shown
    finally:
        engine.dispose()


def test_the_ledgers_engine_hides_parameters_and_logs_no_statements(adieu: Adieu) -> None:
    assert adieu.engine.hide_parameters and not adieu.engine.echo
    adieu.ledger.unsubscribe("seen@example.com", channel=Channel.API)
