"""What every part of ``/api/v1`` shares: who may call (``Access``: each route
needs a key of one scope), the documented error answers, the contact-key URL
converter and small readers.

Addresses travel only in request and response bodies, never in URLs (they end
up in access logs and proxies): a contact is named in a URL by its keyed hash,
which ``POST /contacts/lookup`` gives for an address.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the
# dependencies' signatures at run time.

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from json.encoder import encode_basestring_ascii as _quote
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor

from adieu.i18n import admin_text as _
from adieu.ledger.apikeys import ApiKey
from adieu.ledger.vocabulary import Scope
from adieu.policy import Decision
from adieu.times import iso
from adieu.web.admin import schemas as s
from adieu.web.admin.auth import Authenticator, client_of
from adieu.web.errors import ApiError
from adieu.web.limits import IMPORT_LIMIT

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": s.ErrorBody, "description": text}
    for status, text in {
        400: "The request cannot be used as it is.",
        401: "No API key, or not a valid one.",
        403: "The key's scope does not allow this (read < send < admin; the message names"
        " the scope needed).",
        404: "No such thing.",
        409: "It conflicts with what is there (a topic in use, an erased contact).",
        413: "The request body is over its limit: 10 MiB a call, 512 MiB for an import.",
        422: "The request body or parameters do not match the schema.",
        429: "Too many attempts with a wrong key.",
    }.items()
}
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
MAX_IMPORT_BYTES = IMPORT_LIMIT


class Access:
    """Bearer API keys and their scopes. Every route declares the scope it needs
    with one of ``read``, ``send`` or ``admin`` (``dependencies=access.send``); a
    handler that needs the key itself takes a parameter of type
    ``Annotated[ApiKey, Depends(access.caller)]`` (the same verified key,
    looked up once per request). Batch work runs one call at a time per
    process."""

    def __init__(self, auth: Authenticator) -> None:
        scheme = HTTPBearer(
            auto_error=False,
            bearerFormat="adieu_…",
            description=(
                "An API key from `adieu apikey create --scope read|send|admin`. A `read` key"
                " reads reports, events and contacts; a `send` key also makes links, checks"
                " addresses and records sends; only an `admin` key changes consent, topics,"
                " suppression lists and webhooks."
            ),
        )

        async def caller(
            request: Request,
            credentials: Annotated[HTTPAuthorizationCredentials | None, Security(scheme)],
        ) -> ApiKey:
            secret = credentials.credentials if credentials else None
            return await auth.verify(secret, client_of(request))

        self.caller = caller
        #: The dependency of each scope: a route lists exactly one of them.
        self.needs = {needed: _needs(needed, caller) for needed in Scope}
        self.read = [Depends(self.needs[Scope.READ])]
        self.send = [Depends(self.needs[Scope.SEND])]
        self.admin = [Depends(self.needs[Scope.ADMIN])]
        # Batch work runs one call at a time per process: several threads each
        # stepping through SQLite (which gives up the GIL at every row) convoy
        # on the GIL and all run several times slower than one after the other.
        self._batch_lock = asyncio.Lock()

    async def one_batch_at_a_time(self, fn: Callable[..., T], *args: Any) -> T:
        async with self._batch_lock:
            return await run_in_threadpool(fn, *args)


def _needs(needed: Scope, caller: Callable[..., Any]) -> Callable[..., Any]:
    """A dependency that lets a key through when its scope allows ``needed``."""

    async def check(key: Annotated[ApiKey, Depends(caller)]) -> ApiKey:
        if not key.scope.allows(needed):
            message = _(
                "This needs an API key with the {needed} scope; this key's scope is {scope}."
            )
            raise ApiError(
                403,
                "insufficient_scope",
                message.format(needed=needed.value, scope=key.scope.value),
                headers={
                    "WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{needed.value}"'
                },
            )
        return key

    check.scope = needed  # type: ignore[attr-defined]
    return check


class ContactKey(Convertor[str]):
    regex = "[0-9a-f]{64}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


def by(key: ApiKey) -> dict[str, str]:
    """Who made a change through the API, for the event's details: the key's
    id (never its name, which an operator may have written anything into)."""
    return {"by": f"key:{key.id}"}


def _out(model: type[M], thing: object) -> M:
    """A ledger object (dataclass) as its API model: the fields they share."""
    return model.model_validate(thing, from_attributes=True)


def _cursor(after: str | None) -> int:
    if after is None or after == "":
        return 0
    if not after.isdigit() or len(after) > 18:
        raise ApiError(400, "bad_cursor", _("The cursor must be the 'next' of an earlier page."))
    return int(after)


def parse_since(value: str | None, now: datetime, default_days: int = 30) -> datetime:
    if not value:
        return now - timedelta(days=default_days)
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise ApiError(400, "bad_date", _("Give the date as YYYY-MM-DD.")) from None
    return datetime.combine(day, time.min, tzinfo=UTC)


def _check_json(addresses: list[str], decisions: list[Decision]) -> bytes:
    """The /check answer, written directly: at 1,000 results per call this is
    several times faster than building dictionaries for the JSON encoder."""
    allowed = 0
    parts = []
    for address, d in zip(addresses, decisions, strict=True):
        quoted = _quote(address)
        if d.allowed:
            allowed += 1
            parts.append(f'{{"address":{quoted},"allowed":true,"reason":"ok"}}')
            continue
        extra = ""
        if d.since is not None:
            extra += f',"since":"{iso(d.since)}"'
        if d.until is not None:
            extra += f',"until":"{iso(d.until)}"'
        parts.append(f'{{"address":{quoted},"allowed":false,"reason":"{d.reason}"{extra}}}')
    head = f'{{"allowed":{allowed},"refused":{len(decisions) - allowed},"results":['
    return (head + ",".join(parts) + "]}").encode("ascii")
