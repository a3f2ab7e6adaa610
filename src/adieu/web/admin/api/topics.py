"""``/api/v1``: Topics: list, add, rename, retire."""

# No ``from __future__ import annotations`` here: FastAPI reads these
# signatures at run time, and they name objects local to ``routes``.

from typing import Annotated

from fastapi import APIRouter, Path, Response
from starlette.concurrency import run_in_threadpool

from adieu.ledger.records import TopicText
from adieu.service import Adieu
from adieu.web.admin import schemas as s
from adieu.web.admin.api.common import (
    Access,
    _out,
)


def routes(api: APIRouter, adieu: Adieu, access: Access) -> None:
    read = access.read
    admin = access.admin
    ledger = adieu.ledger

    topic_key = Annotated[str, Path(max_length=64, examples=["news"])]

    @api.get("/topics", dependencies=read, tags=["topics"])
    async def topics() -> list[s.TopicOut]:
        """Every topic, the retired ones too (``retired: true``)."""
        found = await run_in_threadpool(lambda: ledger.topics(retired=True))
        return [_out(s.TopicOut, x) for x in found]

    @api.post("/topics", dependencies=admin, tags=["topics"], status_code=201)
    async def add_topic(body: s.TopicIn) -> s.TopicOut:
        """A new topic, or a retired one back in use (409 if it is in use)."""
        made = await run_in_threadpool(
            ledger.add_topic,
            body.key,
            body.name,
            body.description,
            body.default_opt_in,
            {k: TopicText(v.name, v.description) for k, v in body.translations.items()},
        )
        return _out(s.TopicOut, made)

    @api.get("/topics/{key}", dependencies=read, tags=["topics"])
    async def get_topic(key: topic_key) -> s.TopicOut:
        return _out(s.TopicOut, await run_in_threadpool(ledger.topic, key))

    @api.patch("/topics/{key}", dependencies=admin, tags=["topics"])
    async def patch_topic(key: topic_key, body: s.TopicPatch) -> s.TopicOut:
        translations = (
            {
                k: TopicText(v.name, v.description) if v is not None else None
                for k, v in body.translations.items()
            }
            if body.translations is not None
            else None
        )
        made = await run_in_threadpool(
            lambda: ledger.update_topic(
                key, name=body.name, description=body.description, translations=translations
            )
        )
        return _out(s.TopicOut, made)

    @api.delete("/topics/{key}", dependencies=admin, tags=["topics"], status_code=204)
    async def delete_topic(key: topic_key) -> Response:
        """Retires the topic: it leaves the preference center and takes no new
        links or sends (``topic_retired``), and every link already sent that
        names it still unsubscribes. Adding it again brings it back."""
        await run_in_threadpool(ledger.retire_topic, key)
        return Response(status_code=204)
