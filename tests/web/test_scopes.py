"""API key scopes: every ``/api/v1`` route declares the one scope it needs,
and a key of each scope gets exactly what its scope allows.

The table below is the contract (the README's scope list says the same): a
new route fails here until it is given a scope and a row.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from adieu.ledger import Channel
from adieu.ledger.vocabulary import Scope
from adieu.service import Adieu
from adieu.web.app import create_app
from support import Client

JANE = "jane@example.com"
#: Stands for the contact key of JANE in the table's URLs.
KEY = "{key}"


#: (method, route path) -> (scope needed, URL to call, JSON body or raw content).
ROUTES: dict[tuple[str, str], tuple[Scope, str, Any]] = {
    # For senders.
    ("POST", "/api/v1/links"): (Scope.SEND, "/api/v1/links", {"recipients": [{"address": JANE}]}),
    ("POST", "/api/v1/check"): (Scope.SEND, "/api/v1/check", {"addresses": [JANE]}),
    ("POST", "/api/v1/sends"): (Scope.SEND, "/api/v1/sends", {"addresses": [JANE]}),
    # Looking contacts up is reading; changing their consent is admin.
    ("POST", "/api/v1/contacts/lookup"): (
        Scope.READ,
        "/api/v1/contacts/lookup",
        {"address": JANE},
    ),
    ("GET", "/api/v1/contacts/{contact:contact}"): (Scope.READ, f"/api/v1/contacts/{KEY}", None),
    ("POST", "/api/v1/contacts/{contact:contact}/unsubscribe"): (
        Scope.ADMIN,
        f"/api/v1/contacts/{KEY}/unsubscribe",
        {"topic": "news"},
    ),
    ("POST", "/api/v1/contacts/{contact:contact}/resubscribe"): (
        Scope.ADMIN,
        f"/api/v1/contacts/{KEY}/resubscribe",
        {},
    ),
    ("DELETE", "/api/v1/contacts/{contact:contact}"): (
        Scope.ADMIN,
        f"/api/v1/contacts/{KEY}",
        None,
    ),
    # Topics: reading them is reading; changing them is admin.
    ("GET", "/api/v1/topics"): (Scope.READ, "/api/v1/topics", None),
    ("GET", "/api/v1/topics/{key}"): (Scope.READ, "/api/v1/topics/news", None),
    ("POST", "/api/v1/topics"): (Scope.ADMIN, "/api/v1/topics", {"key": "offers", "name": "O"}),
    ("PATCH", "/api/v1/topics/{key}"): (Scope.ADMIN, "/api/v1/topics/news", {"name": "News!"}),
    ("DELETE", "/api/v1/topics/{key}"): (Scope.ADMIN, "/api/v1/topics/unused", None),
    # Whole lists of addresses, in and out.
    ("POST", "/api/v1/suppressions/import"): (
        Scope.ADMIN,
        "/api/v1/suppressions/import",
        b"ann@example.org\n",
    ),
    ("GET", "/api/v1/suppressions/export"): (Scope.ADMIN, "/api/v1/suppressions/export", None),
    # The feed and the report.
    ("GET", "/api/v1/events"): (Scope.READ, "/api/v1/events", None),
    ("GET", "/api/v1/stats"): (Scope.READ, "/api/v1/stats", None),
    # Webhooks (receivers, secrets, deliveries with addresses): admin, listings too.
    ("GET", "/api/v1/webhooks"): (Scope.ADMIN, "/api/v1/webhooks", None),
    ("POST", "/api/v1/webhooks"): (
        Scope.ADMIN,
        "/api/v1/webhooks",
        {"url": "https://crm.example/x"},
    ),
    ("GET", "/api/v1/webhooks/{webhook_id}"): (Scope.ADMIN, "/api/v1/webhooks/1", None),
    ("PATCH", "/api/v1/webhooks/{webhook_id}"): (
        Scope.ADMIN,
        "/api/v1/webhooks/1",
        {"description": "CRM"},
    ),
    ("DELETE", "/api/v1/webhooks/{webhook_id}"): (Scope.ADMIN, "/api/v1/webhooks/1", None),
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"): (
        Scope.ADMIN,
        "/api/v1/webhooks/1/deliveries",
        None,
    ),
    ("POST", "/api/v1/webhooks/{webhook_id}/replay"): (
        Scope.ADMIN,
        "/api/v1/webhooks/1/replay",
        None,
    ),
}


def api_routes(routes: list[BaseRoute]) -> Iterator[APIRoute]:
    """Every API route of the app, included routers walked into."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner = getattr(route, "original_router", None) or getattr(route, "app", None)
        if inner is not None and hasattr(inner, "routes"):
            yield from api_routes(inner.routes)


def declared_scopes(route: APIRoute) -> list[Scope]:
    """The scopes a route's dependencies declare (``access.read/send/admin``)."""
    found = [getattr(d.dependency, "scope", None) for d in route.dependencies]
    return [scope for scope in found if isinstance(scope, Scope)]


@pytest.fixture
def app(sqlite_adieu: Adieu) -> FastAPI:
    return create_app(sqlite_adieu, deliver=False)


def test_every_api_route_declares_one_scope_and_is_in_the_table(app: FastAPI) -> None:
    found: dict[tuple[str, str], Scope] = {}
    for route in api_routes(app.routes):
        if not route.path.startswith("/api/v1"):
            continue
        scopes = declared_scopes(route)
        assert len(scopes) == 1, f"{route.path} declares {scopes or 'no scope'}"
        for method in route.methods or ():
            found[method, route.path] = scopes[0]
    missing = sorted(set(found) - set(ROUTES))
    assert not missing, f"routes missing from the table: {missing}"
    gone = sorted(set(ROUTES) - set(found))
    assert not gone, f"the table names routes that do not exist: {gone}"
    assert found == {route: row[0] for route, row in ROUTES.items()}


@pytest.fixture
def world(adieu: Adieu) -> dict[Scope, str]:
    """A ledger with something for every route to find, and a key of each scope."""
    adieu.ledger.add_topic("news", "News")
    adieu.ledger.add_topic("unused", "Unused")
    adieu.ledger.unsubscribe(JANE, channel=Channel.ONE_CLICK)
    hook = adieu.outbox.create_webhook("https://crm.example/in")
    assert hook.id == 1
    return {scope: adieu.api_keys.create(f"{scope} key", scope=scope)[1] for scope in Scope}


def call(adieu: Adieu, secret: str, method: str, url: str, body: Any) -> Any:
    client = Client(adieu, headers={"Authorization": f"Bearer {secret}"})
    try:
        url = url.replace(KEY, adieu.hasher.hash(JANE).hex())
        if isinstance(body, bytes):
            return client.request(method, url, content=body, headers={"Content-Type": "text/csv"})
        return client.request(method, url, json=body)
    finally:
        client.close()


@pytest.mark.parametrize("caller", list(Scope))
@pytest.mark.parametrize("route", list(ROUTES), ids=[f"{m} {p}" for m, p in ROUTES])
def test_each_route_answers_each_scope_as_the_table_says(
    adieu: Adieu, world: dict[Scope, str], route: tuple[str, str], caller: Scope
) -> None:
    needed, url, body = ROUTES[route]
    before = adieu.stats.events(0, 1000, None)
    r = call(adieu, world[caller], route[0], url, body)
    if caller.allows(needed):
        assert r.status_code < 300, (r.status_code, r.text)
        return
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    assert error["code"] == "insufficient_scope" and error["status"] == 403
    assert f"the {needed} scope" in error["message"], "the message names the scope needed"
    assert f"this key's scope is {caller}" in error["message"]
    assert r.headers["www-authenticate"] == f'Bearer error="insufficient_scope", scope="{needed}"'
    assert adieu.stats.events(0, 1000, None) == before, "nothing was recorded"


def test_a_read_key_cannot_mint_a_link_and_so_cannot_lift_an_unsubscribe(
    adieu: Adieu, world: dict[Scope, str]
) -> None:
    r = call(adieu, world[Scope.READ], "POST", "/api/v1/links", {"recipients": [{"address": JANE}]})
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
    assert "token" not in r.text and "/u/" not in r.text, "no link, so no page to post to"
    assert adieu.ledger.status(JANE).state.suppressions, "Jane is still unsubscribed"


def test_consent_changes_through_the_api_record_which_key_made_them(
    adieu: Adieu, world: dict[Scope, str]
) -> None:
    admin = world[Scope.ADMIN]
    (key,) = [k for k in adieu.api_keys.list() if k.scope is Scope.ADMIN]
    by = f"key:{key.id}"
    contact = f"/api/v1/contacts/{KEY}"
    assert call(adieu, admin, "POST", f"{contact}/resubscribe", {}).status_code == 200
    assert call(adieu, admin, "POST", f"{contact}/unsubscribe", {}).status_code == 200
    r = call(adieu, admin, "POST", "/api/v1/suppressions/import", b"ann@example.org\n")
    assert r.status_code == 200 and r.json()["added"] == 1
    # Named only by a key (never seen): the keyed hash alone is suppressed.
    stranger = adieu.hasher.hash("zoe@example.net").hex()
    r = call(adieu, admin, "POST", f"/api/v1/contacts/{stranger}/unsubscribe", {})
    assert r.status_code == 200

    def last(address: str) -> dict[str, Any]:
        event = adieu.ledger.status(address).events[-1]
        assert event.channel in (Channel.API, Channel.IMPORT)
        return dict(event.details or {})

    assert last(JANE)["by"] == by and last(JANE)["door"] == "api"
    resubscribed = [e for e in adieu.ledger.status(JANE).events if e.type == "resubscribe"]
    assert [dict(e.details or {}).get("by") for e in resubscribed] == [by]
    assert last("ann@example.org") == {"by": by, "source": "generic", "reason": "import"}
    feed = adieu.stats.events(0, 1000, None)
    assert [e["details"] for e in feed][-1] == {"by": by}, "the hashed-only unsubscribe too"
    assert call(adieu, admin, "DELETE", contact, None).status_code == 200
    erased = adieu.stats.events(0, 1000, ["erase"])
    assert [e["details"] for e in erased] == [{"by": by}]
