"""``/api/v1``: Topics: list, add, rename, remove (when unused)."""

# No ``from __future__ import annotations`` here: FastAPI reads these
# signatures at run time, and they name objects local to ``routes``.

from typing import Annotated

from fastapi import APIRouter, Path, Response
from starlette.concurrency import run_in_threadpool

from adieu.service import Adieu
from adieu.web.admin import schemas as s
from adieu.web.admin.api.common import (
    Access,
    _out,
)


def routes(api: APIRouter, adieu: Adieu, access: Access) -> None:
    read = access.read
    write = access.write
    ledger = adieu.ledger

    topic_key = Annotated[str, Path(max_length=64, examples=["news"])]

    @api.get("/topics", dependencies=read, tags=["topics"])
    async def topics() -> list[s.TopicOut]:
        return [_out(s.TopicOut, x) for x in await run_in_threadpool(ledger.topics)]

    @api.post("/topics", dependencies=write, tags=["topics"], status_code=201)
    async def add_topic(body: s.TopicIn) -> s.TopicOut:
        made = await run_in_threadpool(
            ledger.add_topic, body.key, body.name, body.description, body.default_opt_in
        )
        return _out(s.TopicOut, made)

    @api.get("/topics/{key}", dependencies=read, tags=["topics"])
    async def get_topic(key: topic_key) -> s.TopicOut:
        return _out(s.TopicOut, await run_in_threadpool(ledger.topic, key))

    @api.patch("/topics/{key}", dependencies=write, tags=["topics"])
    async def patch_topic(key: topic_key, body: s.TopicPatch) -> s.TopicOut:
        made = await run_in_threadpool(
            lambda: ledger.update_topic(key, name=body.name, description=body.description)
        )
        return _out(s.TopicOut, made)

    @api.delete("/topics/{key}", dependencies=write, tags=["topics"], status_code=204)
    async def delete_topic(key: topic_key) -> Response:
        """Only a topic nobody has made a choice about or been sent (409 otherwise)."""
        await run_in_threadpool(ledger.delete_topic, key)
        return Response(status_code=204)
