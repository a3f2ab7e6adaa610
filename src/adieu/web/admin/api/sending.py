"""``/api/v1``: For senders: links, send checks, recorded sends."""

# No ``from __future__ import annotations`` here: FastAPI reads these
# signatures at run time, and they name objects local to ``routes``.

from datetime import UTC

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from adieu.addresses import canonical
from adieu.errors import AdieuError
from adieu.policy import Category
from adieu.service import Adieu
from adieu.web.admin import schemas as s
from adieu.web.admin.api.common import (
    Access,
    _check_json,
)


def routes(api: APIRouter, adieu: Adieu, access: Access) -> None:
    send = access.send
    one_batch_at_a_time = access.one_batch_at_a_time
    ledger = adieu.ledger

    @api.post("/links", dependencies=send, tags=["sending"])
    async def links(body: s.LinksRequest) -> s.LinksResponse:
        """Tokens, URLs and List-Unsubscribe header values for a batch of
        recipients, for senders that build their own messages. Writes nothing."""

        def mint() -> s.LinksResponse:
            made: list[s.LinkOut] = []
            errors: list[s.ItemError] = []
            for i, r in enumerate(body.recipients):
                try:
                    link = adieu.link(
                        r.address,
                        r.topic if r.topic is not None else body.topic,
                        r.campaign if r.campaign is not None else body.campaign,
                        r.locale if r.locale is not None else body.locale,
                    )
                except AdieuError as exc:
                    errors.append(s.ItemError(index=i, message=str(exc)))
                    continue
                made.append(
                    s.LinkOut(
                        index=i,
                        address=canonical(r.address),
                        token=link.token,
                        url=link.url,
                        preferences_url=link.preferences_url,
                        headers=link.headers,
                    )
                )
            return s.LinksResponse(links=made, errors=errors)

        return await one_batch_at_a_time(mint)

    @api.post(
        "/check",
        dependencies=send,
        tags=["sending"],
        response_model=s.CheckResponse,
        responses={200: {"model": s.CheckResponse}},
    )
    async def check(body: s.CheckRequest) -> Response:
        """Which addresses may get a message of this category and topic now, and
        why not for the others. One database query per 1,000 addresses."""
        decisions = await one_batch_at_a_time(
            adieu.policy.check_many, body.addresses, body.topic, Category(body.category)
        )
        return Response(_check_json(body.addresses, decisions), media_type="application/json")

    @api.post("/sends", dependencies=send, tags=["sending"])
    async def sends(body: s.SendsRequest) -> s.SendsResponse:
        """Record sends (the frequency caps and the report's rates count them)."""
        good: list[str] = []
        invalid: list[s.ItemError] = []
        for i, raw in enumerate(body.addresses):
            try:
                good.append(canonical(raw))
            except AdieuError as exc:
                invalid.append(s.ItemError(index=i, message=str(exc)))
        at = body.at
        if at is not None and at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        recorded = 0
        if good:
            recorded = await run_in_threadpool(
                lambda: ledger.record_sends(
                    good, category=body.category, topic=body.topic, campaign=body.campaign, at=at
                )
            )
        return s.SendsResponse(recorded=recorded, invalid=invalid)
