"""``/api/v1``: the operator's JSON API (bearer API keys; each route needs the
scope ``read``, ``send`` or ``admin``), one module per resource, in the order
their routes are matched."""

from __future__ import annotations

from fastapi import APIRouter

from adieu.service import Adieu
from adieu.web.admin.api import contacts, events, sending, suppressions, topics, webhooks
from adieu.web.admin.api.common import ERRORS, Access, parse_since
from adieu.web.admin.auth import Authenticator

__all__ = ["build_router", "parse_since"]


def build_router(adieu: Adieu, auth: Authenticator) -> APIRouter:
    api = APIRouter(prefix="/api/v1", responses=ERRORS)
    access = Access(auth)
    for resource in (sending, contacts, topics, suppressions, events, webhooks):
        resource.routes(api, adieu, access)
    return api
