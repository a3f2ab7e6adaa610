"""The web door: one app, one route table, one error map.

``create_app`` wires the recipient's pages (``pages``), RFC 8058 one-click
(``oneclick``, in front), the operator's API and dashboard (``admin``), health
and metrics, and the error map (``errors``) that answers every failure.
"""

from __future__ import annotations

import asyncio
import inspect
import mimetypes
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from adieu import __version__
from adieu.errors import InvalidToken
from adieu.esp.hooks import HookDoor
from adieu.esp.push import configured
from adieu.metrics import Exposition, LedgerCollector, Timed
from adieu.service import Adieu
from adieu.web import errors
from adieu.web.admin import dashboard
from adieu.web.admin.api import build_router
from adieu.web.admin.auth import Authenticator, bearer, client_of
from adieu.web.commit import GroupCommit
from adieu.web.errors import Failure, FormRefused
from adieu.web.limits import BodyLimit
from adieu.web.oneclick import OneClick
from adieu.web.pages import PublicPages
from adieu.web.render import Pages, Palette
from adieu.webhooks.deliver import deliverer_for

SECURITY_HEADERS = {
    # The token is in the URL: it must not leak to other sites.
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

API_DESCRIPTION = """The operator's API: links and send checks for senders, contacts and
their consent history, topics, suppression lists, the event feed, the report
and webhooks. Every call needs `Authorization: Bearer <API key>`
(`adieu apikey create --scope read|send|admin`) whose scope allows it: `read`
reads, `send` also makes links, checks and records sends, only `admin` changes
consent, topics, suppression lists and webhooks (403 `insufficient_scope`
otherwise). Errors share one shape, `{"error": {"status", "code",
"message"}}`. Addresses never go in URLs: a contact is named by its key."""

LOGO_TYPES = {".png", ".svg", ".jpg", ".jpeg", ".webp"}
#: Where the links in messages point (an error under them is about a link).
LINK_PATHS = ("/u/", "/p/")

#: FastAPI's own OpenTelemetry hooks, off: Adieu's metrics are its own
#: (``/metrics``, no addresses), the hooks would hand request bodies and
#: exception messages (addresses) to whatever exporter the environment sets
#: up, and asking the environment about them cost a tenth of each one-click.
_NO_TELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)


def create_app(adieu: Adieu, *, deliver: bool | None = None) -> FastAPI:
    """The web app. ``deliver``: run the webhook deliverer while the app runs
    (default: the ``webhook_deliverer`` setting)."""
    deliver = adieu.settings.webhook_deliverer if deliver is None else deliver

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(deliverer_for(adieu).run(stop)) if deliver else None
        # Beside it, the decisions for the email service providers (adieu.esp.push).
        push_task = None
        if deliver and configured(adieu.settings):
            from adieu.esp.push.deliver import push_deliverer_for

            pusher = push_deliverer_for(adieu)
            push_task = asyncio.create_task(pusher.run(stop)) if pusher is not None else None
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                await task
            if push_task is not None:
                await push_task

    app = AdieuApp(
        title="Adieu",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        description=API_DESCRIPTION,
        lifespan=lifespan,
        **_NO_TELEMETRY,
    )
    pages = Pages(adieu)
    palette = Palette.from_brand(adieu.settings.brand_colour)
    committer = GroupCommit(adieu.ledger)
    public = PublicPages(adieu, pages, committer)
    https = adieu.settings.base_url.startswith("https://")
    # Outermost, in front of the framework's own layers: the one-click POST
    # and the landing page, which every recipient (and every scanner) hits.
    app.front = partial(
        OneClick,
        adieu=adieu,
        committer=committer,
        pages=pages,
        landing=public.landing_page,
        headers=security_headers(https),
    )
    # In front of everything that reads a body (sign-in, the API's parsing,
    # the hooks): each door's size limit, enforced as the bytes arrive.
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders, https=https)
    if adieu.settings.proxies:
        # The client's address (for the failed-attempt limit) and scheme come
        # from X-Forwarded-For/-Proto only when a trusted proxy sent them.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=adieu.settings.proxies)
    # Outermost of the app's own layers: the latency a client sees (``OneClick``
    # times what it answers itself).
    app.add_middleware(Timed)
    exposition = Exposition(LedgerCollector(adieu.stats, adieu.outbox, adieu.ledger.now))

    auth = Authenticator(adieu.api_keys)
    app.state.auth = auth
    api_router = build_router(adieu, auth)

    def allowed_methods(request: Request) -> set[str]:
        """Every method of every API route on this path (Starlette names only the first)."""
        allowed: set[str] = set()
        for route in api_router.routes:
            if isinstance(route, APIRoute) and route.matches(request.scope)[0] != Match.NONE:
                allowed |= route.methods or set()
        return allowed

    def error_page(request: Request, failure: Failure, exc: BaseException) -> Response:
        if isinstance(exc, FormRefused):
            return pages.render("expired.html", exc.locale, status=403, **exc.context)
        if isinstance(exc, InvalidToken) or (
            # A link cut short, or with something added (``/u/``,
            # ``GET /u/{token}/reason``): the kind page for links.
            failure.status in (404, 405) and (request.url.path + "/").startswith(LINK_PATHS)
        ):
            name = "invalid.html"
        elif failure.status in (404, 405):
            name = "missing.html"
        else:
            name = "error.html"
        response = pages.render(name, pages.locale(request), status=failure.status)
        response.headers.update(failure.headers)
        return response

    # Email service providers' webhooks (adieu.esp.hooks): each provider's
    # authentication, then the same ledger changes as returned mail.
    hooks = HookDoor(adieu)

    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    async def metrics(request: Request) -> Response:
        """Prometheus text format. Open by default (no addresses in it); with
        ADIEU_METRICS_PUBLIC=false it needs a bearer API key."""
        if not adieu.settings.metrics_public:
            await auth.verify(bearer(request), client_of(request))
        body = await run_in_threadpool(exposition.render)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def brand_css(request: Request) -> Response:
        return Response(palette.css(), media_type="text/css")

    async def logo(request: Request) -> Response:
        path = adieu.settings.logo_file
        if path is None or path.suffix.lower() not in LOGO_TYPES or not path.is_file():
            return Response(status_code=404)
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return Response(path.read_bytes(), media_type=kind)

    # The one route table, in the order requests are matched: the recipient's
    # pages first (every recipient hits them; measured: with the operator's
    # ~35 routes ahead of them the landing page served a third fewer requests).
    # RFC 8058 one-click POSTs to /u/{token} never reach it, nor do most
    # landing-page GETs: ``OneClick`` answers them in front of the app (a raw
    # ASGI path, for speed), hands the landing page's own forms on to
    # ``public.unsubscribe``, and a landing page that cannot be shown (a bad
    # link, storage trouble) to the routes below and their error pages.
    routes: list[tuple[str, Callable[..., Any], list[str]]] = [
        ("/u/{token}", public.landing, ["GET", "HEAD"]),
        ("/u/{token}", public.unsubscribe, ["POST"]),
        ("/u/{token}/reason", public.reason, ["POST"]),
        ("/u/{token}/resubscribe", public.resubscribe, ["POST"]),
        ("/p/{token}", public.preferences, ["GET", "HEAD"]),
        ("/p/{token}", public.save_preferences, ["POST"]),
        ("/", public.home, ["GET", "HEAD"]),
        ("/metrics", metrics, ["GET"]),
        ("/brand.css", brand_css, ["GET"]),
        ("/brand/logo", logo, ["GET"]),
        ("/hooks/{provider}", hooks.receive, ["POST"]),
    ]
    for path, endpoint, methods in routes:
        app.add_route(path, endpoint, methods=methods, include_in_schema=False)
    app.add_api_route("/healthz", healthz, methods=["GET"])  # in the OpenAPI document
    app.mount("/static", StaticFiles(directory=str(resources.files("adieu") / "web" / "static")))
    # Then the operator's: /api/v1/… (adieu.web.admin.api) and /admin/…
    # (adieu.web.admin.dashboard).
    app.include_router(api_router)
    admin_error = dashboard.install(app, adieu, auth)
    errors.install(app, page=error_page, admin=admin_error, allowed_methods=allowed_methods)
    return app


#: Sent when the base URL is https: browsers then never use plain http here.
HSTS = "max-age=31536000"


class AdieuApp(FastAPI):
    """The FastAPI app with one layer in front of all the others, the
    framework's own included: ``front``, given the rest of the stack."""

    front: Callable[[ASGIApp], ASGIApp] | None = None

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return stack if self.front is None else self.front(stack)


def security_headers(https: bool) -> list[tuple[bytes, bytes]]:
    """The headers every response carries (HSTS when the links are https)."""
    headers = {**SECURITY_HEADERS, **({"Strict-Transport-Security": HSTS} if https else {})}
    return [(k.lower().encode(), v.encode()) for k, v in headers.items()]


class SecurityHeaders:
    """Adds the security headers to every response (plain ASGI: no overhead)."""

    def __init__(self, app: ASGIApp, https: bool = False) -> None:
        self.app = app
        self.headers = security_headers(https)
        self.names = frozenset(name for name, _ in self.headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                given = message.get("headers", [])
                # A response may set its own (the dashboard's pages do): those stay.
                if any(name.lower() in self.names for name, _ in given):
                    present = {name.lower() for name, _ in given}
                    extra = [(k, v) for k, v in self.headers if k not in present]
                else:
                    extra = self.headers
                message = {**message, "headers": [*given, *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def app_from_environment() -> FastAPI:
    """The app with settings from the environment (``uvicorn --factory``; give
    uvicorn ``--no-proxy-headers``: the app believes X-Forwarded-For from
    ADIEU_TRUSTED_PROXIES itself, and uvicorn's default trusts any local client)."""
    return create_app(Adieu())
