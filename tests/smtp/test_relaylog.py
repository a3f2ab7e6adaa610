"""The relay's memory of delivered copies (``adieu.ledger.relaylog``) and the
list of messages under way that its workers share (``InFlight``)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from importlib import resources

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from adieu.ledger import schema
from adieu.ledger.database import WRITE, make_engine
from adieu.ledger.relaylog import DELIVERED, REFUSED, RelayLog, Sends, Settle
from adieu.service import Adieu
from adieu.smtp.relay import InFlight

MESSAGE, OTHER = b"m" * 32, b"o" * 32
ANN, BOB, CAT = (bytes([n]) * 32 for n in (1, 2, 3))


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_what_an_attempt_did_is_known_to_the_next(adieu: Adieu) -> None:
    log = RelayLog(adieu.engine, adieu.hasher, Clock())
    try:
        assert log.known(MESSAGE, [ANN, BOB]) == {}
        log.settle(
            [Settle(MESSAGE, {ANN: DELIVERED, BOB: REFUSED}), Settle(OTHER, {CAT: DELIVERED})]
        )
        assert log.known(MESSAGE, [ANN, BOB]) == {ANN: DELIVERED, BOB: REFUSED}
        assert log.known(OTHER, [CAT]) == {CAT: DELIVERED}
    finally:
        log.close()


def test_copies_are_forgotten_after_a_week(adieu: Adieu) -> None:
    clock = Clock()
    log = RelayLog(adieu.engine, adieu.hasher, clock)
    try:
        log.settle([Settle(MESSAGE, {ANN: DELIVERED, BOB: DELIVERED})])
        clock.now += timedelta(days=6)
        assert log.prune() == 0
        assert len(log.known(MESSAGE, [ANN, BOB])) == 2
        clock.now += timedelta(days=2)
        assert log.prune() == 2
        assert log.known(MESSAGE, [ANN, BOB]) == {}
    finally:
        log.close()


def test_sends_are_recorded_as_the_ledger_records_them(adieu: Adieu) -> None:
    """The relay writes its send rows from its own writer: the same rows
    ``Ledger.record_sends`` writes."""
    adieu.ledger.add_topic("news", "News")
    at = adieu.ledger.now()
    log = RelayLog(adieu.engine, adieu.hasher, lambda: at)
    try:
        log.record_sends(
            [
                Sends(["Ann@Example.org", "bob@example.org"], "marketing", "news", "nov"),
                Sends(["cat@example.org"], "transactional"),
            ]
        )
    finally:
        log.close()
    adieu.ledger.record_sends(
        ["dan@example.org", "eve@example.org"], topic="news", campaign="nov", at=at
    )
    adieu.ledger.record_sends(["fay@example.org"], category="transactional", at=at)

    def rows(*addresses: str) -> list[tuple[object, ...]]:
        query = (
            sa.select(
                schema.sends.c.category,
                schema.sends.c.topic,
                schema.sends.c.campaign,
                schema.sends.c.at,
                schema.contacts.c.last_marketing_send_at,
                schema.contacts.c.frequency,
            )
            .join(schema.contacts, schema.contacts.c.id == schema.sends.c.contact_id)
            .where(schema.contacts.c.address.in_(addresses))
            .order_by(schema.contacts.c.address)
        )
        with adieu.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(query)]

    assert rows("ann@example.org", "bob@example.org") == rows("dan@example.org", "eve@example.org")
    assert rows("cat@example.org") == rows("fay@example.org")
    assert adieu.ledger.status("ann@example.org").state.last_marketing_send_at == at


def test_a_message_under_way_is_seen_by_every_worker() -> None:
    in_flight = InFlight(slots=64)
    assert in_flight.enter(MESSAGE, [ANN, BOB])
    assert not in_flight.enter(MESSAGE, [BOB, CAT]), "a second attempt while the first runs"
    assert in_flight.enter(MESSAGE, [CAT]), "the same content to someone else"
    assert in_flight.enter(OTHER, [ANN])
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a worker forked after the list was made
        os.write(write, b"busy" if not in_flight.enter(MESSAGE, [ANN]) else b"free")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 4) == b"busy"
    in_flight.leave(MESSAGE, [ANN, BOB])
    assert in_flight.enter(MESSAGE, [ANN, BOB])


def test_an_entry_left_behind_expires() -> None:
    in_flight = InFlight(slots=64, hold=0.0)
    assert in_flight.enter(MESSAGE, [ANN])
    assert in_flight.enter(MESSAGE, [ANN]), "its holder is long gone"


def test_migration_0008_comes_and_goes(database_url: str) -> None:
    engine = make_engine(database_url)
    config = Config()
    config.set_main_option("script_location", str(resources.files("adieu") / "migrations"))

    def migrate(target: str, down: bool = False) -> None:
        with engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
            config.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(config, target)

    try:
        migrate("0008")
        assert "relay_deliveries" in sa.inspect(engine).get_table_names()
        migrate("0007", down=True)
        assert "relay_deliveries" not in sa.inspect(engine).get_table_names()
        migrate("0008")
        assert "relay_deliveries" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
