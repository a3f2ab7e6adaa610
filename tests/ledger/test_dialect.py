"""The times the ledger writes straight through the driver are the times
SQLAlchemy would write (so both sort and compare alike in one column)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from adieu.ledger.dialect import Dialect
from adieu.ledger.schema import as_utc

moments = st.datetimes(
    min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)
offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@given(moments, offsets)
def test_a_stored_time_is_sqlalchemys_text_on_sqlite_and_naive_utc_elsewhere(
    moment: datetime, zone: timezone
) -> None:
    given_in_zone = moment.astimezone(zone)
    write = sqlite.DATETIME().bind_processor(sqlite.dialect())  # type: ignore[no-untyped-call]
    assert write is not None
    naive = moment.replace(tzinfo=None)
    assert Dialect("sqlite").stored(given_in_zone) == write(naive)
    assert Dialect("postgresql").stored(given_in_zone) == naive
    # and read back, the same moment in UTC
    assert as_utc(Dialect("sqlite").stored(given_in_zone)) == moment
    assert as_utc(naive) == moment and as_utc(naive).tzinfo is UTC
