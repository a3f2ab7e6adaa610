"""The one way Adieu writes a point in time: ISO 8601 in UTC with a ``Z``
(RFC 3339 §5.6), the same in the API, webhooks, exports, event details and the
CLI's JSON. The ledger stores UTC; a time read back without a zone is UTC."""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from functools import lru_cache


def iso(value: datetime, timespec: str = "auto") -> str:
    """``timespec`` as for ``datetime.isoformat`` ("seconds" for people to read)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def iso_or_none(value: datetime | None) -> str | None:
    return iso(value) if value is not None else None


# -- for people to read, in their language ----------------------------------------------

#: English pages are written in British English; their dates follow.
_DATE_LOCALES = {"en": "en_GB"}


def _date_locale(locale: str) -> str:
    return _DATE_LOCALES.get(locale, locale)


@lru_cache(maxsize=64)
def _moment_pattern(locale: str) -> str:
    """The locale's long date and short time (hours and minutes), then the
    zone's localized long name, joined as the locale joins a date and a time."""
    from babel.dates import get_date_format, get_datetime_format, get_time_format

    time = re.sub(r"[^Hhkm]*s+", "", get_time_format("long", locale).pattern, count=1)
    zone = "'（'zzzz'）'" if locale.startswith("ja") else " '('zzzz')'"
    time = re.sub(r"\s*(z+|v+|V+|O+)\s*", "", time).strip() + zone
    joined = str(get_datetime_format("long", locale))
    return joined.replace("{0}", time).replace("{1}", get_date_format("long", locale).pattern)


def local_moment(value: datetime, locale: str, zone: tzinfo) -> str:
    """A point in time for a person: date, hours and minutes, and the name of
    the time zone in their language ("4 December 2026, 15:07 (Central European
    Standard Time)"; no seconds, no "+0100")."""
    from babel.dates import format_datetime

    where = _date_locale(locale)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return format_datetime(value, _moment_pattern(where), tzinfo=zone, locale=where)


def local_day(value: datetime, locale: str, zone: tzinfo) -> str:
    """A day for a person ("4 December 2026"): what a pause ends on."""
    from babel.dates import format_date

    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return format_date(value.astimezone(zone).date(), "long", locale=_date_locale(locale))
