"""Prometheus metrics. No label ever holds an address, a token or a URL path
with one in it: routes are named, not copied from the request.

Two kinds: what this process did (request latencies, relay decisions, webhook
attempts: ``REGISTRY``), and what the ledger holds, read from the database at
scrape time (``LedgerCollector``), so that every process that writes to the
ledger — pages, relay, inbound, CLI — is counted, whichever process is scraped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import lru_cache
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Receive, Scope, Send

from adieu.ledger.outbox import Outbox
from adieu.ledger.stats import Stats

REGISTRY = CollectorRegistry(auto_describe=True)

REQUEST_SECONDS = Histogram(
    "adieu_http_request_duration_seconds",
    "Time to answer an HTTP request, by route and method.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
RELAY_DECISIONS = Counter(
    "adieu_relay_decisions",
    "What the relay did with recipients and messages (delivered, refused:REASON, …).",
    ["decision"],
    registry=REGISTRY,
)
WEBHOOK_DELIVERIES = Counter(
    "adieu_webhook_deliveries",
    "Webhook delivery attempts by result (delivered, failed and to be retried, dead).",
    ["result"],
    registry=REGISTRY,
)

#: Landing-page visits (GET and HEAD of ``/u/{token}``) by who most likely
#: made them: ``visitor`` is ``browser`` or ``likely_scanner``, ``sign`` what
#: gave a scanner away (``head``, ``prefetch``, ``agent``, ``soon_after_send``;
#: ``none`` for a browser). Counted in memory, per process: a visit writes
#: nothing to the ledger.
LANDING_VISITS = Counter(
    "adieu_landing_page_visits",
    "Landing-page visits by likely visitor (browser or scanner) and the sign that told them apart.",
    ["visitor", "sign"],
    registry=REGISTRY,
)
#: When this process started counting (the dashboard says "since …").
COUNTING_SINCE = time.time()


def landing_visits() -> dict[str, int]:
    """This process's landing-page visits so far, by sign (``none`` for browsers)."""
    counts: dict[str, int] = {}
    for family in LANDING_VISITS.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                sign = sample.labels["sign"]
                counts[sign] = counts.get(sign, 0) + int(sample.value)
    return counts


def route_of(path: str) -> str:
    """A fixed name for a request path (tokens and keys stay out of labels)."""
    if path.startswith("/u/"):
        return "/u/{token}" + ("/…" if path.count("/") > 2 else "")
    if path.startswith("/p/"):
        return "/p/{token}"
    if path.startswith("/api/v1/"):
        rest = path[len("/api/v1/") :].split("/", 1)[0]
        return f"/api/v1/{rest}" if rest.isidentifier() else "/api/v1/…"
    for fixed in ("/admin", "/static", "/metrics", "/healthz", "/openapi.json"):
        if path == fixed or path.startswith(fixed + "/"):
            return fixed
    return "/" if path == "/" else "other"


class LedgerCollector(Collector):
    """Event counts and the webhook backlog, from the database.

    Counting is incremental: each scrape adds only the events written since the
    previous one, so a scrape stays cheap on a ledger of millions of events.
    """

    def __init__(self, stats: Stats, outbox: Outbox, clock: Callable[[], datetime]) -> None:
        self.stats = stats
        self.outbox = outbox
        self.clock = clock
        self._seen = 0
        self._counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        with self._lock:
            top, new = self.stats.event_counts(self._seen)
            for kind, channel, n in new:
                self._counts[(kind, channel)] = self._counts.get((kind, channel), 0) + n
            self._seen = top
            counts = dict(self._counts)
        events = CounterMetricFamily(
            "adieu_ledger_events", "Ledger events by type and channel.", labels=["type", "channel"]
        )
        unsubscribes = CounterMetricFamily(
            "adieu_unsubscribes", "Unsubscribes by channel.", labels=["channel"]
        )
        complaints = CounterMetricFamily("adieu_complaints", "Spam complaints (ARF).")
        bounces = CounterMetricFamily("adieu_bounces", "Bounces by kind.", labels=["kind"])
        unverified = CounterMetricFamily(
            "adieu_inbound_unverified",
            "Returned reports not trusted (ADIEU_INBOUND_TRUST), so nothing changed, by channel.",
            labels=["channel"],
        )
        total_complaints = 0
        bounce_kinds = {"hard": 0, "soft": 0}
        untrusted = {"complaint": 0, "bounce": 0}
        for (kind, channel), n in sorted(counts.items()):
            events.add_metric([kind, channel], n)
            if kind == "unsubscribe":
                unsubscribes.add_metric([channel], n)
            elif kind == "complaint":
                total_complaints += n
            elif kind in ("hard_bounce", "soft_bounce"):
                bounce_kinds[kind.split("_")[0]] += n
            elif kind == "unverified":
                untrusted[channel] = untrusted.get(channel, 0) + n
        complaints.add_metric([], total_complaints)
        for kind, n in bounce_kinds.items():
            bounces.add_metric([kind], n)
        for channel, n in untrusted.items():
            unverified.add_metric([channel], n)
        yield from (events, unsubscribes, complaints, bounces, unverified)
        backlog = self.outbox.backlog()
        yield GaugeMetricFamily(
            "adieu_webhook_outbox_pending", "Webhook deliveries waiting.", value=backlog.pending
        )
        yield GaugeMetricFamily(
            "adieu_webhook_outbox_dead", "Webhook dead letters.", value=backlog.dead
        )
        age = 0.0
        if backlog.oldest_pending_at is not None:
            age = max(0.0, (self.clock() - backlog.oldest_pending_at).total_seconds())
        yield GaugeMetricFamily(
            "adieu_webhook_outbox_oldest_age_seconds",
            "Age of the oldest waiting webhook delivery (0 when none waits).",
            value=age,
        )


class Exposition:
    """``GET /metrics``: this process's metrics and the ledger's, in one text."""

    def __init__(self, collector: LedgerCollector) -> None:
        self.ledger = CollectorRegistry(auto_describe=False)
        self.ledger.register(collector)

    def render(self) -> bytes:
        return generate_latest(REGISTRY) + generate_latest(self.ledger)


class Timed:
    """Plain ASGI middleware: request latency by named route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            timer(route_of(str(scope["path"])), str(scope["method"])).observe(
                time.perf_counter() - start
            )


@lru_cache(maxsize=1024)
def timer(route: str, method: str) -> Any:
    """The histogram's child for a route and method, looked up once (methods
    are few; anything odd a client sends only evicts older entries)."""
    return REQUEST_SECONDS.labels(route, method)
