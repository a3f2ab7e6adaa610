"""Group commit for unsubscribes arriving together (RFC 8058 one-click bursts).

Each request still gets its answer only after its unsubscribe is durably
committed; requests that arrive while a commit is under way wait for the next
one and share it, so a burst costs a few fsyncs instead of one per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from starlette.concurrency import run_in_threadpool

from adieu.ledger import Channel, Ledger, Outcome, UnsubscribeRequest
from adieu.times import iso
from adieu.tokens import TokenPayload

MAX_BATCH = 256


class GroupCommit:
    def __init__(self, ledger: Ledger, max_batch: int = MAX_BATCH) -> None:
        self._ledger = ledger
        self._max = max_batch
        self._pending: list[tuple[UnsubscribeRequest, asyncio.Future[Outcome | BaseException]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def unsubscribe(self, request: UnsubscribeRequest) -> Outcome:
        future: asyncio.Future[Outcome | BaseException] = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        result = await future
        if isinstance(result, BaseException):
            raise result
        return result

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self._max], self._pending[self._max :]
            try:
                results: Sequence[Outcome | BaseException] = await run_in_threadpool(
                    self._ledger.unsubscribe_many, [request for request, _ in batch]
                )
            except Exception as exc:  # the whole transaction failed: nobody is acknowledged
                results = [exc] * len(batch)
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)


def from_link(
    payload: TokenPayload, scope: str, channel: Channel, shown: str
) -> UnsubscribeRequest:
    """An unsubscribe through a link, with what proves it (GDPR: when, how,
    what was shown)."""
    return UnsubscribeRequest(
        payload.address,
        scope,
        channel=channel,
        campaign=payload.campaign,
        details=link_details(payload, shown),
    )


def link_details(payload: TokenPayload, shown: str) -> dict[str, str | int]:
    """What a change made through a link records: that it came through a
    link, when that link was minted and with which key, and what was shown,
    so a reviewer tells a person's click from an operator's act."""
    return {
        "via": "link",
        "token_issued_at": iso(payload.issued_at),
        "key_id": payload.key_id,
        "shown": shown,
    }
