"""``/api/v1``: Webhook receivers, their deliveries and replays."""

# No ``from __future__ import annotations`` here: FastAPI reads these
# signatures at run time, and they name objects local to ``routes``.

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response
from starlette.concurrency import run_in_threadpool

from adieu.ledger.outbox import Letter
from adieu.service import Adieu
from adieu.web.admin import schemas as s
from adieu.web.admin.api.common import (
    Access,
    _out,
)


def routes(api: APIRouter, adieu: Adieu, access: Access) -> None:
    # Receivers, their deliveries (with addresses) and secrets: admin only.
    admin = access.admin

    hook_id = Annotated[int, Path(ge=1, le=2**53)]

    @api.get("/webhooks", dependencies=admin, tags=["webhooks"])
    async def webhooks() -> list[s.WebhookOut]:
        return [_out(s.WebhookOut, h) for h in await run_in_threadpool(adieu.outbox.webhooks)]

    @api.post("/webhooks", dependencies=admin, tags=["webhooks"], status_code=201)
    async def add_webhook(body: s.WebhookIn) -> s.WebhookCreated:
        """Register a receiver. Deliveries carry Adieu-Signature:
        t=TIMESTAMP,v1=HMAC-SHA256(secret, "TIMESTAMP.BODY") in hex."""
        hook = await run_in_threadpool(
            adieu.outbox.create_webhook, body.url, body.event_types, body.description
        )
        return _out(s.WebhookCreated, hook)

    @api.get("/webhooks/{webhook_id}", dependencies=admin, tags=["webhooks"])
    async def get_webhook(webhook_id: hook_id) -> s.WebhookOut:
        return _out(s.WebhookOut, await run_in_threadpool(adieu.outbox.webhook, webhook_id))

    @api.patch("/webhooks/{webhook_id}", dependencies=admin, tags=["webhooks"])
    async def patch_webhook(webhook_id: hook_id, body: s.WebhookPatch) -> s.WebhookOut:
        hook = await run_in_threadpool(
            lambda: adieu.outbox.update_webhook(
                webhook_id,
                url=body.url,
                event_types=body.event_types,
                description=body.description,
                active=body.active,
            )
        )
        return _out(s.WebhookOut, hook)

    @api.delete("/webhooks/{webhook_id}", dependencies=admin, tags=["webhooks"], status_code=204)
    async def delete_webhook(webhook_id: hook_id) -> Response:
        await run_in_threadpool(adieu.outbox.delete_webhook, webhook_id)
        return Response(status_code=204)

    @api.get("/webhooks/{webhook_id}/deliveries", dependencies=admin, tags=["webhooks"])
    async def deliveries(
        webhook_id: hook_id,
        state: Literal["pending", "delivered", "dead"] | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[s.DeliveryOut]:
        """The newest deliveries (``state=dead``: the dead letters)."""

        def run() -> list[Letter]:
            adieu.outbox.webhook(webhook_id)
            return adieu.outbox.letters(state, webhook_id=webhook_id, limit=limit)

        return [_out(s.DeliveryOut, x) for x in await run_in_threadpool(run)]

    @api.post("/webhooks/{webhook_id}/replay", dependencies=admin, tags=["webhooks"])
    async def replay(webhook_id: hook_id, body: s.ReplayRequest | None = None) -> s.ReplayOut:
        """Send dead letters again (all of this webhook's, or the ids given)."""

        def run() -> int:
            adieu.outbox.webhook(webhook_id)
            ids = body.ids if body is not None else None
            return adieu.outbox.replay(ids, webhook_id=webhook_id)

        return s.ReplayOut(replayed=await run_in_threadpool(run))
