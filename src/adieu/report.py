"""The operator's report: what was sent, who left and how, complaints and
bounces against the mailbox providers' limits, and how fast requests were honoured.

Complaint rate is complaints per marketing send of the same day, campaign and
topic, judged against Gmail's sender guidelines: below 0.1 % is the goal
("ok"), up to 0.3 % is "watch", at or above 0.3 % is "breach". Time to honour
is measured from the request to the ledger commit and to the last webhook
delivery, against Gmail/Yahoo's two days (48 hours) and CAN-SPAM's ten business
days (docs/REQUIREMENTS.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from adieu.ledger.stats import DayRow, Honour, Stats
from adieu.times import iso

COMPLAINT_GOAL = 0.001
COMPLAINT_LIMIT = 0.003
DEADLINE_HOURS = 48
DEADLINE_BUSINESS_DAYS = 10
#: Channels listed first, in this order (the doors a recipient uses).
CHANNELS = ("one_click", "landing_page", "preferences", "mailto", "api", "cli", "import")


def complaint_status(complaints: int, sends: int) -> str:
    if sends == 0:
        return "unknown" if complaints else "ok"
    rate = complaints / sends
    if rate >= COMPLAINT_LIMIT:
        return "breach"
    if rate >= COMPLAINT_GOAL:
        return "watch"
    return "ok"


def _rate(n: int, sends: int) -> float | None:
    return n / sends if sends else None


def add_business_days(start: datetime, days: int) -> datetime:
    """``start`` plus ``days`` working days (Monday to Friday; holidays vary by
    country and are not counted, so this errs on the strict side only by them)."""
    moment = start
    left = days
    while left > 0:
        moment += timedelta(days=1)
        if moment.weekday() < 5:
            left -= 1
    return moment


@dataclass(frozen=True, slots=True)
class Line:
    """Figures for one day/campaign/topic, or a total."""

    day: date | None
    campaign: str | None
    topic: str | None
    sends: int
    unsubscribes: dict[str, int]
    complaints: int
    hard_bounces: int
    soft_bounces: int
    unverified: int = 0  # returned reports not trusted (ADIEU_INBOUND_TRUST): no rate

    @property
    def unsubscribe_total(self) -> int:
        return sum(self.unsubscribes.values())

    @property
    def complaint_rate(self) -> float | None:
        return _rate(self.complaints, self.sends)

    @property
    def complaint_status(self) -> str:
        return complaint_status(self.complaints, self.sends)

    @property
    def hard_bounce_rate(self) -> float | None:
        return _rate(self.hard_bounces, self.sends)

    @property
    def soft_bounce_rate(self) -> float | None:
        return _rate(self.soft_bounces, self.sends)

    @property
    def unsubscribe_rate(self) -> float | None:
        return _rate(self.unsubscribe_total, self.sends)

    def as_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat() if self.day else None,
            "campaign": self.campaign,
            "topic": self.topic,
            "sends": self.sends,
            "unsubscribes": self.unsubscribe_total,
            "unsubscribes_by_channel": dict(self.unsubscribes),
            "unsubscribe_rate": self.unsubscribe_rate,
            "complaints": self.complaints,
            "complaint_rate": self.complaint_rate,
            "complaint_status": self.complaint_status,
            "hard_bounces": self.hard_bounces,
            "hard_bounce_rate": self.hard_bounce_rate,
            "soft_bounces": self.soft_bounces,
            "soft_bounce_rate": self.soft_bounce_rate,
            "unverified": self.unverified,
        }


def _line(
    day: date | None, campaign: str | None, topic: str | None, rows: Iterable[DayRow]
) -> Line:
    sends = complaints = hard = soft = unverified = 0
    channels: dict[str, int] = {}
    for r in rows:
        sends += r.sends
        complaints += r.complaints
        hard += r.hard_bounces
        soft += r.soft_bounces
        unverified += r.unverified
        for channel, n in r.unsubscribes.items():
            channels[channel] = channels.get(channel, 0) + n
    return Line(day, campaign, topic, sends, _ordered(channels), complaints, hard, soft, unverified)


def _ordered(channels: dict[str, int]) -> dict[str, int]:
    known = [c for c in CHANNELS if c in channels]
    return {c: channels[c] for c in [*known, *sorted(set(channels) - set(known))]}


def format_duration(seconds: float | None) -> str:
    """A duration as a person reads it: ms, s, min or h."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted ``values``."""
    rank = max(1, math.ceil(q * len(values)))
    return values[rank - 1]


@dataclass(frozen=True, slots=True)
class Timing:
    """Time to honour, in seconds, over the requests that have an end time."""

    count: int
    p50: float | None
    p99: float | None
    max: float | None
    waiting: int  # requests not finished yet (webhooks still to deliver)
    within_48_hours: bool
    within_10_business_days: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "p50_seconds": self.p50,
            "p99_seconds": self.p99,
            "max_seconds": self.max,
            "waiting": self.waiting,
            "within_48_hours": self.within_48_hours,
            "within_10_business_days": self.within_10_business_days,
        }


def timing(pairs: list[tuple[datetime, datetime | None]], now: datetime) -> Timing:
    """Durations of (asked, done) pairs; an unfinished one counts against the
    deadlines from ``now`` on (it is late once ``now`` is past them)."""
    done = sorted((end - start).total_seconds() for start, end in pairs if end is not None)
    waiting = [start for start, end in pairs if end is None]
    in_48 = all((end or now) - start <= timedelta(hours=DEADLINE_HOURS) for start, end in pairs)
    in_10 = all(
        (end or now) <= add_business_days(start, DEADLINE_BUSINESS_DAYS) for start, end in pairs
    )
    return Timing(
        count=len(done),
        p50=percentile(done, 0.5) if done else None,
        p99=percentile(done, 0.99) if done else None,
        max=done[-1] if done else None,
        waiting=len(waiting),
        within_48_hours=in_48,
        within_10_business_days=in_10,
    )


@dataclass(frozen=True, slots=True)
class Report:
    since: datetime
    until: datetime
    lines: list[Line]  # per day, campaign and topic
    days: list[Line]  # per day, all campaigns and topics
    total: Line
    reasons: list[dict[str, Any]]
    to_commit: Timing
    to_webhooks: Timing

    @property
    def channels(self) -> list[str]:
        """The unsubscribe channels seen, known ones first."""
        return list(self.total.unsubscribes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": iso(self.since),
            "until": iso(self.until),
            "thresholds": {
                "complaint_goal": COMPLAINT_GOAL,
                "complaint_limit": COMPLAINT_LIMIT,
                "deadline_hours": DEADLINE_HOURS,
                "deadline_business_days": DEADLINE_BUSINESS_DAYS,
            },
            "total": self.total.as_dict(),
            "days": [d.as_dict() for d in self.days],
            "lines": [line.as_dict() for line in self.lines],
            "reasons": self.reasons,
            "time_to_honour": {
                "commit": self.to_commit.as_dict(),
                "webhooks": self.to_webhooks.as_dict(),
            },
        }


def build(stats: Stats, since: datetime, now: datetime) -> Report:
    rows = stats.daily(since)
    lines = [
        _line(r.day, r.campaign, r.topic, [r])
        for r in rows
        if r.sends
        or r.unsubscribes
        or r.complaints
        or r.hard_bounces
        or r.soft_bounces
        or r.unverified
    ]
    by_day: dict[date, list[DayRow]] = {}
    for r in rows:
        by_day.setdefault(r.day, []).append(r)
    days = [_line(day, None, None, by_day[day]) for day in sorted(by_day)]
    total = _line(None, None, None, rows)
    reasons = [
        {"choice": choice, "text": text, "count": n} for choice, text, n in stats.reasons(since)
    ]
    honours: list[Honour] = stats.honour(since)
    to_commit = timing([(h.at, h.recorded_at or h.at) for h in honours], now)
    to_webhooks = timing(
        [
            (h.at, h.last_delivered_at if h.undelivered == 0 else None)
            for h in honours
            if h.webhooks
        ],
        now,
    )
    return Report(since, now, lines, days, total, reasons, to_commit, to_webhooks)
