"""``/api/v1``: The event feed (cursor paging) and the report."""

# No ``from __future__ import annotations`` here: FastAPI reads these
# signatures at run time, and they name objects local to ``routes``.

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from adieu import report
from adieu.service import Adieu
from adieu.web.admin import schemas as s
from adieu.web.admin.api.common import (
    Access,
    _cursor,
    parse_since,
)


def routes(api: APIRouter, adieu: Adieu, access: Access) -> None:
    read = access.read
    ledger = adieu.ledger

    @api.get("/events", dependencies=read, tags=["events"])
    async def events(
        after: Annotated[
            str | None,
            Query(pattern=r"^[0-9]{0,18}$", description="The last page's next (empty: start)."),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        type: Annotated[list[s.Line] | None, Query(max_length=20)] = None,
    ) -> s.EventPage:
        """Every ledger event in order, a page at a time, for syncing elsewhere."""
        start = _cursor(after)
        found = await run_in_threadpool(adieu.stats.events, start, limit, type)
        nxt = str(found[-1]["id"]) if len(found) == limit else None
        return s.EventPage(events=[s.EventOut(**e) for e in found], next=nxt)

    @api.get("/stats", dependencies=read, tags=["events"])
    async def stats(
        since: Annotated[
            str | None,
            Query(
                pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
                description="YYYY-MM-DD (default: 30 days ago)",
            ),
        ] = None,
    ) -> dict[str, Any]:
        """The report: sends, unsubscribes by channel, complaint and bounce
        rates with their verdicts, reasons, and time to honour."""
        start = parse_since(since, ledger.now())
        built = await run_in_threadpool(report.build, adieu.stats, start, ledger.now())
        return built.as_dict()
