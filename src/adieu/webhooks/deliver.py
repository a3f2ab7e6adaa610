"""The webhook deliverer: posts outbox rows to their receivers.

At least once: a row leaves the outbox only when its receiver answered 2xx.
A failure is retried with exponential backoff and jitter, up to the configured
number of attempts, then kept as a dead letter (visible, replayable). Only the
oldest waiting row of each (webhook, address) is handed out, so a receiver sees
one person's events in order. Several deliverers may run at once (``adieu serve``
workers, ``adieu webhooks run``): rows are leased, never shared.

Each delivery is signed: ``Adieu-Signature: t=<unix time>,v1=<hex HMAC-SHA256
of "<t>.<body>" with the webhook's secret>``, so a receiver can check that the
body came from us and is fresh (reject old ``t`` against replays).

One webhook's trouble stays its own. Whatever goes wrong with a delivery (a
stored URL that is no longer valid, DNS, TLS, a receiver that times out or
answers garbage, any exception at all) fails that attempt with its error, and
retries, backoff and dead letters follow as for any failure; the other
webhooks' deliveries in the round go on. Once a receiver has failed in a round
(anything but an HTTP status), its rows not yet started in that round fail at
once with the same error instead of each waiting for their own timeout, so a
round lasts at most about one timeout whatever the backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from adieu import __version__, metrics
from adieu.errors import InvalidInput, storage_trouble
from adieu.ledger.outbox import Delivery, Outbox, check_url
from adieu.service import Adieu
from adieu.webhooks.http import Poster, PostError

log = logging.getLogger("adieu.webhooks")
MAX_DELAY_S = 3600.0


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def backoff(attempt: int, first: float, rng: Callable[[], float] = random.random) -> float:
    """Seconds before try ``attempt + 1``: doubling from ``first``, at most an
    hour, spread ±50 % so that receivers coming back are not hit all at once."""
    base = min(MAX_DELAY_S, first * 2.0 ** max(0, attempt - 1))
    return float(base * (0.5 + rng()))


#: While the ledger stays unavailable, a line at most this often.
OUTAGE_LOG_S = 60.0


class _Outage:
    """The ledger unavailable to the deliverer: one warning line when it
    starts (no traceback: it is not a bug, and it repeats every poll), one a
    minute while it lasts, and one when delivery resumes."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.said = 0.0
        self.rounds = 0

    def met(self, exc: BaseException) -> None:
        now = time.monotonic()
        self.rounds += 1
        if self.since is None:
            self.since = self.said = now
            log.warning("webhook delivery paused, the ledger is unavailable: %s", _brief(exc))
        elif now - self.said >= OUTAGE_LOG_S:
            self.said = now
            log.warning(
                "webhook delivery still paused after %d rounds: %s", self.rounds, _brief(exc)
            )

    def over(self) -> None:
        if self.since is not None:
            log.warning(
                "webhook delivery resumed after %.0f s without the ledger",
                time.monotonic() - self.since,
            )
            self.since, self.rounds = None, 0


def _brief(exc: BaseException) -> str:
    """The class and first line of an exception, for a log line."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300] if lines else ''}"


class Deliverer:
    def __init__(
        self,
        outbox: Outbox,
        *,
        max_attempts: int = 12,
        timeout: float = 10.0,
        first_delay: float = 5.0,
        batch: int = 200,
        concurrency: int = 32,
        poll: float = 0.5,
        lease: timedelta = timedelta(seconds=60),
        keep: timedelta | None = None,
        clock: Callable[[], datetime] | None = None,
        private_networks: bool = True,
    ) -> None:
        self.outbox = outbox
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.first_delay = first_delay
        self.batch = batch
        self.poll = poll
        self.lease = lease
        self.keep = keep
        self.private_networks = private_networks
        self._pruned_at = 0.0
        self._clock = clock or outbox._clock
        self._limit = asyncio.Semaphore(concurrency)
        self.delivered = 0
        self.failed = 0

    def poster(self) -> Poster:
        return Poster(
            timeout=self.timeout,
            user_agent=f"Adieu/{__version__} (webhooks)",
            private_networks=self.private_networks,
        )

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Deliver until ``stop`` is set (or forever)."""
        stop = stop or asyncio.Event()
        client = self.poster()
        outage = _Outage()
        try:
            while not stop.is_set():
                try:
                    done = await self.run_once(client)
                    await self._prune_now_and_then()
                    outage.over()
                except Exception as exc:  # the database went away: keep going, slowly
                    if storage_trouble(exc):
                        outage.met(exc)
                    else:
                        log.exception("webhook delivery round failed")
                    done = 0
                if done == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.poll)
        finally:
            client.close()

    async def run_once(self, client: Poster | None = None) -> int:
        """Claim one batch and try each of it; the number tried. Without a
        client (a one-off round), one is made and closed here."""
        if client is None:
            client = self.poster()
            try:
                return await self.run_once(client)
            finally:
                client.close()
        claimed = await asyncio.to_thread(self.outbox.claim, self.batch, self.lease)
        if not claimed:
            return 0
        results: dict[int, str | None] = {}
        failing: dict[int, str] = {}  # webhook id → how its receiver failed this round
        try:
            await asyncio.gather(*(self._post(client, d, results, failing) for d in claimed))
        finally:
            ok = [d.id for d in claimed if d.id in results and results[d.id] is None]
            failures: list[tuple[int, str, datetime | None]] = []
            for d in claimed:
                error = results.get(d.id)
                if d.id not in results or error is None:
                    continue
                attempt = d.attempts + 1
                if attempt >= self.max_attempts:
                    failures.append((d.id, error, None))
                else:
                    delay = backoff(attempt, self.first_delay)
                    failures.append((d.id, error, self._clock() + timedelta(seconds=delay)))
            untried = [d.id for d in claimed if d.id not in results]
            await asyncio.to_thread(self._record, ok, failures, untried)
        return len(claimed)

    async def _prune_now_and_then(self) -> None:
        if self.keep is None or time.monotonic() - self._pruned_at < 3600:
            return
        self._pruned_at = time.monotonic()
        await asyncio.to_thread(self.outbox.prune, self.keep)

    def _record(
        self,
        ok: list[int],
        failures: list[tuple[int, str, datetime | None]],
        untried: list[int],
    ) -> None:
        self.outbox.delivered(ok)
        self.outbox.failed(failures)
        self.outbox.release(untried)
        self.delivered += len(ok)
        self.failed += len(failures)
        metrics.WEBHOOK_DELIVERIES.labels("delivered").inc(len(ok))
        metrics.WEBHOOK_DELIVERIES.labels("failed").inc(
            sum(1 for f in failures if f[2] is not None)
        )
        metrics.WEBHOOK_DELIVERIES.labels("dead").inc(sum(1 for f in failures if f[2] is None))

    async def _post(
        self,
        client: Poster,
        delivery: Delivery,
        results: dict[int, str | None],
        failing: dict[int, str],
    ) -> None:
        """Try one delivery; its outcome in ``results`` (None: delivered, else
        the error). Never raises: whatever goes wrong is this delivery's error."""
        async with self._limit:
            if delivery.webhook_id in failing:
                results[delivery.id] = (
                    f"not tried: the receiver failed just before ({failing[delivery.webhook_id]})"
                )[:500]
                return
            try:
                status = await self._send(client, delivery)
            except TimeoutError:
                error = "timed out"
            except PostError as exc:
                error = str(exc)
            except InvalidInput as exc:
                error = f"the webhook's URL is not valid: {exc}"
            except Exception as exc:  # anything else is this receiver's trouble too
                error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "webhook %s: delivery %s failed: %s", delivery.webhook_id, delivery.id, error
                )
            else:
                results[delivery.id] = None if 200 <= status < 300 else f"HTTP {status}"
                return
            failing.setdefault(delivery.webhook_id, error[:200])
            results[delivery.id] = error[:500]

    async def _send(self, client: Poster, delivery: Delivery) -> int:
        url = check_url(delivery.url)  # a URL stored before the checks were this strict
        body = json.dumps(
            {**delivery.event, "webhook_id": delivery.webhook_id, "delivery_id": delivery.id},
            separators=(",", ":"),
        ).encode()
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "Adieu-Event-Id": str(delivery.event["id"]),
            "Adieu-Delivery-Id": str(delivery.id),
            "Adieu-Timestamp": str(stamp),
            "Adieu-Signature": sign(delivery.secret, stamp, body),
        }
        return await client.post(url, body, headers)


def deliverer_for(adieu: Adieu) -> Deliverer:
    settings = adieu.settings
    return Deliverer(
        adieu.outbox,
        max_attempts=settings.webhook_max_attempts,
        timeout=settings.webhook_timeout,
        first_delay=settings.webhook_backoff,
        # Long enough for a slow receiver; short enough that deliveries held by
        # a deliverer that died are taken up again soon.
        lease=timedelta(seconds=3 * settings.webhook_timeout + 1),
        keep=timedelta(days=settings.webhook_keep_days),
        private_networks=settings.webhook_private_networks,
    )
