"""The push deliverer: makes each queued decision's API calls.

Like the webhook deliverer (whose backoff it shares): rows are leased, so
any number of deliverers may run (``adieu serve`` workers, ``adieu esp
run``) and one that dies leaves its rows to the others once the lease runs
out; a row leaves the queue only when the provider said yes, so nothing is
lost, and a decision may reach a provider twice (every call is idempotent).
Only the oldest waiting row of each (provider, address) is handed out, so a
provider sees one person's decisions in order.

Per answer (``providers.verdict``): done; 429, the row and the provider's other
rows of the round wait for its ``Retry-After`` (no attempt counted for
those not tried); 5xx, a timeout, a refused connection: retried with
backoff, and the provider's rows not yet tried in the round wait as long;
any other 4xx: a dead letter at once (``adieu esp list`` shows it, ``adieu
esp replay`` queues it again). Addresses are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import httpx

from adieu import __version__
from adieu.esp.push.providers import Provider, Unreadable, Verdict, providers, verdict
from adieu.esp.push.queue import Push, PushQueue
from adieu.webhooks.deliver import backoff

if TYPE_CHECKING:
    from adieu.service import Adieu

log = logging.getLogger("adieu.esp.push")


@dataclass
class _Round:
    """What happened to one provider in one round."""

    done: list[int] = field(default_factory=list)
    failed: list[tuple[int, str, datetime | None]] = field(default_factory=list)
    #: Rows not tried: due again at ``wait_until``.
    waiting: list[int] = field(default_factory=list)
    wait_until: datetime | None = None
    wait_error: str | None = None


class PushDeliverer:
    def __init__(
        self,
        queue: PushQueue,
        targets: list[Provider],
        *,
        max_attempts: int = 12,
        timeout: float = 10.0,
        first_delay: float = 5.0,
        batch: int = 200,
        concurrency: int = 16,
        poll: float = 0.5,
        lease: timedelta | None = None,
        keep: timedelta | None = None,
        clock: Callable[[], datetime] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.queue = queue
        self.targets = {p.name: p for p in targets}
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.first_delay = first_delay
        self.batch = batch
        self.concurrency = concurrency
        self.poll = poll
        # Long enough for a slow provider (a push may take three calls).
        self.lease = lease or timedelta(seconds=4 * timeout + 1)
        self.keep = keep
        self._clock = clock or (lambda: datetime.now(UTC))
        self._transport = transport
        self._pruned_at = 0.0
        self.delivered = 0
        self.failed = 0

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=self.timeout,
            headers={"User-Agent": f"Adieu/{__version__} (suppressions)"},
            follow_redirects=False,
            transport=self._transport,
        )

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Deliver until ``stop`` is set (or forever)."""
        stop = stop or asyncio.Event()
        async with self.client() as client:
            while not stop.is_set():
                try:
                    done = await self.run_once(client)
                    await self._prune_now_and_then()
                except Exception:  # the database went away: keep going, slowly
                    log.exception("push round failed")
                    done = 0
                if done == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.poll)

    async def run_once(self, client: httpx.AsyncClient | None = None) -> int:
        """Claim one batch and try each of it; the number claimed."""
        if client is None:
            async with self.client() as own:
                return await self.run_once(own)
        claimed = await asyncio.to_thread(self.queue.claim, self.batch, self.lease)
        if not claimed:
            return 0
        by_provider: dict[str, list[Push]] = {}
        for push in claimed:
            by_provider.setdefault(push.provider, []).append(push)
        rounds = await asyncio.gather(
            *(self._provider_round(client, name, rows) for name, rows in by_provider.items())
        )
        await asyncio.to_thread(self._record, rounds)
        return len(claimed)

    async def _provider_round(
        self, client: httpx.AsyncClient, name: str, rows: list[Push]
    ) -> _Round:
        result = _Round()
        provider = self.targets.get(name)
        if provider is None:  # its settings were removed: keep the rows for later
            result.waiting = [r.id for r in rows]
            result.wait_until = self._clock() + timedelta(seconds=300)
            result.wait_error = f"{name} is not configured"
            return result
        limit = asyncio.Semaphore(self.concurrency)
        stopped = asyncio.Event()  # the provider failed or asked to wait

        async def one(push: Push) -> None:
            async with limit:
                if stopped.is_set():
                    result.waiting.append(push.id)
                    return
                answer = await self._push(client, provider, push)
                if answer.outcome == "done":
                    result.done.append(push.id)
                    return
                error = answer.error or "failed"
                attempt = push.attempts + 1
                if answer.outcome == "dead" or (
                    answer.delay is None and attempt >= self.max_attempts
                ):
                    result.failed.append((push.id, error, None))
                    return
                delay = (
                    answer.delay if answer.delay is not None else backoff(attempt, self.first_delay)
                )
                until = self._clock() + timedelta(seconds=delay)
                result.failed.append((push.id, error, until))
                stopped.set()
                if result.wait_until is None or until > result.wait_until:
                    result.wait_until, result.wait_error = until, error

        await asyncio.gather(*(one(r) for r in rows))
        return result

    async def _push(self, client: httpx.AsyncClient, provider: Provider, push: Push) -> Verdict:
        """Every call of one decision; the first that is not done decides."""
        try:
            calls = provider.calls(push.action, push.kind, push.scope, push.address)
        except (Unreadable, KeyError) as exc:
            return Verdict("dead", f"cannot be sent to {provider.name}: {exc}")
        for call in calls:
            try:
                response = await client.request(
                    call.method, call.url, headers=call.headers, content=call.body or None
                )
            except httpx.TimeoutException:
                return Verdict("retry", "timed out")
            except httpx.HTTPError as exc:
                return Verdict("retry", f"{type(exc).__name__}: {_without_url(exc)}")
            answer = verdict(call, response.status_code, response.headers, response.content)
            if answer.outcome != "done":
                return answer
        return Verdict("done")

    def _record(self, rounds: list[_Round]) -> None:
        for r in rounds:
            self.queue.delivered(r.done)
            self.queue.failed(r.failed)
            if r.waiting:
                self.queue.defer(r.waiting, r.wait_until or self._clock(), r.wait_error)
            self.delivered += len(r.done)
            self.failed += len(r.failed)

    async def _prune_now_and_then(self) -> None:
        if self.keep is None or time.monotonic() - self._pruned_at < 3600:
            return
        self._pruned_at = time.monotonic()
        await asyncio.to_thread(self.queue.prune, self.keep)


def _without_url(exc: Exception) -> str:
    """An httpx error's text without the URL (it may hold an address)."""
    text = str(exc)
    return text.split(" for url ", 1)[0][:200] if text else type(exc).__name__


def push_deliverer_for(adieu: Adieu) -> PushDeliverer | None:
    """The deliverer for ``adieu``'s configured providers; None without any."""
    targets = providers(adieu.settings)
    if not targets:
        return None
    settings = adieu.settings
    return PushDeliverer(
        PushQueue(adieu.engine, adieu.ledger.now),
        targets,
        max_attempts=settings.webhook_max_attempts,
        timeout=settings.webhook_timeout,
        first_delay=settings.webhook_backoff,
        keep=timedelta(days=settings.webhook_keep_days),
    )
