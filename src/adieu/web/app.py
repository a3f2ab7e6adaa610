"""The web service: landing page, RFC 8058 one-click, confirmation, preferences.

A GET never changes anything (link scanners fetch every URL in a message); the
unsubscribe happens on POST, and the ledger commits before the response. No
page needs JavaScript, a login or an address typed in (R11, R12); none sends
an email about what was done (R13).
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adieu import __version__
from adieu.errors import InvalidToken
from adieu.i18n import gettext
from adieu.ledger import Channel, ContactStatus, Frequency, Outcome
from adieu.metrics import Exposition, LedgerCollector, Timed
from adieu.service import Adieu
from adieu.tokens import ALL, TokenPayload
from adieu.web import errors
from adieu.web.admin import dashboard
from adieu.web.admin.api import build_router
from adieu.web.admin.auth import Authenticator, bearer, client_of
from adieu.web.commit import GroupCommit, from_link
from adieu.web.errors import Failure, FormRefused
from adieu.web.hooks import deliverer_for
from adieu.web.oneclick import OneClick
from adieu.web.support import Pages, Palette, parse_form, read_body

PageHandler = Callable[[Request, str], Awaitable[Response]]

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
(`adieu apikey create`); errors share one shape, `{"error": {"status", "code",
"message"}}`. Addresses never go in URLs: a contact is named by its key."""

REASONS = ("too_many", "not_relevant", "never_signed_up", "other")
PAUSES = (30, 60, 90)
REASON_TEXT_MAX = 500
LOGO_TYPES = {".png", ".svg", ".jpg", ".jpeg", ".webp"}


def create_app(adieu: Adieu, *, deliver: bool | None = None) -> FastAPI:
    """The web app. ``deliver``: run the webhook deliverer while the app runs
    (default: the ``webhook_deliverer`` setting)."""
    deliver = adieu.settings.webhook_deliverer if deliver is None else deliver

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(deliverer_for(adieu).run(stop)) if deliver else None
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                await task

    app = FastAPI(
        title="Adieu",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        description=API_DESCRIPTION,
        lifespan=lifespan,
    )
    pages = Pages(adieu)
    palette = Palette.from_brand(adieu.settings.brand_colour)
    app.mount("/static", StaticFiles(directory=str(resources.files("adieu") / "web" / "static")))

    committer = GroupCommit(adieu.ledger)
    app.add_middleware(OneClick, adieu=adieu, committer=committer, pages=pages)
    app.add_middleware(SecurityHeaders)  # outside OneClick, so it covers it too
    app.add_middleware(Timed)  # outermost: the latency a client sees
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
        locale = pages.locale(request)
        name = {400: "invalid.html" if isinstance(exc, InvalidToken) else "error.html"}.get(
            failure.status, "missing.html" if failure.status in (404, 405) else "error.html"
        )
        response = pages.render(name, locale, status=failure.status)
        response.headers.update(failure.headers)
        return response

    # -- plumbing -------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    async def home(request: Request) -> Response:
        return pages.render("home.html", pages.locale(request))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Prometheus text format. Open by default (no addresses in it); with
        ADIEU_METRICS_PUBLIC=false it needs a bearer API key."""
        if not adieu.settings.metrics_public:
            await auth.verify(bearer(request), client_of(request))
        body = await run_in_threadpool(exposition.render)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @app.get("/brand.css", include_in_schema=False)
    async def brand_css() -> Response:
        return Response(palette.css(), media_type="text/css")

    @app.get("/brand/logo", include_in_schema=False)
    async def logo() -> Response:
        path = adieu.settings.logo_file
        if path is None or path.suffix.lower() not in LOGO_TYPES or not path.is_file():
            return Response(status_code=404)
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return Response(path.read_bytes(), media_type=kind)

    def page(path: str, *methods: str) -> Callable[[PageHandler], PageHandler]:
        """Register a public page as a plain Starlette route: pages are not part
        of the API, and skipping FastAPI's parameter machinery halves their cost."""

        def register(handler: PageHandler) -> PageHandler:
            async def endpoint(request: Request) -> Response:
                return await handler(request, request.path_params["token"])

            app.add_route(path, endpoint, methods=list(methods), include_in_schema=False)
            return handler

        return register

    def context(request: Request, token: str) -> tuple[TokenPayload, str, dict[str, Any]]:
        payload = adieu.codec.open(token)
        locale = pages.locale(request, payload)
        topic = adieu.ledger.topic(payload.scope) if payload.scope != ALL else None
        shown = adieu.hasher.display(payload.address, adieu.settings.address_display)
        return (
            payload,
            locale,
            {
                "token": token,
                "address": shown,
                "topic": topic,
                "csrf": pages.csrf_for(token),
            },
        )

    async def protected_form(
        request: Request, token: str
    ) -> tuple[dict[str, str], TokenPayload, str, dict[str, Any]]:
        """A page form that changes something: its fields, once the CSRF token
        and the browser's origin show it was posted from our own page."""
        form = parse_form(request, await read_body(request))
        payload, locale, ctx = context(request, token)
        if not pages.csrf_ok(request, token, form):
            raise FormRefused(locale, ctx)
        return form, payload, locale, ctx

    # -- landing page and unsubscribe ---------------------------------------------

    @page("/u/{token}", "GET", "HEAD")
    async def landing(request: Request, token: str) -> Response:
        # No database work here (the topic names are cached): render in the loop.
        payload = adieu.codec.open(token)
        locale = pages.locale(request, payload)
        topic = adieu.ledger.topic(payload.scope) if payload.scope != ALL else None
        shown = adieu.hasher.display(payload.address, adieu.settings.address_display)
        return pages.render_per_token("landing.html", locale, token, shown, topic=topic)

    @page("/u/{token}", "POST")
    async def unsubscribe(request: Request, token: str) -> Response:
        """The landing page's own buttons (one-click POSTs are answered by
        ``OneClick`` in front, which hands page forms on to here)."""
        form = parse_form(request, await read_body(request))
        payload, locale, ctx = context(request, token)
        # The first button always means all marketing (R3); the topic button
        # leaves only the topic the link names.
        scope = payload.scope if form.get("scope") == "topic" else ALL
        outcome = await committer.unsubscribe(
            from_link(payload, scope, Channel.LANDING_PAGE, "landing_page")
        )
        return confirmation(locale, ctx, outcome)

    def confirmation(locale: str, ctx: dict[str, Any], outcome: Outcome) -> Response:
        return pages.render(
            "confirmed.html",
            locale,
            changed=outcome.changed,
            scope=outcome.scope,
            since=pages.when(outcome.since, locale),
            hours=adieu.settings.honour_hours,
            reasons=REASONS,
            reason_max=REASON_TEXT_MAX,
            **ctx,
        )

    @page("/u/{token}/reason", "POST")
    async def reason(request: Request, token: str) -> Response:
        form, payload, locale, ctx = await protected_form(request, token)
        choice = form.get("choice") if form.get("choice") in REASONS else None
        text = form.get("text", "").strip()[:REASON_TEXT_MAX]
        if choice or text:
            await run_in_threadpool(
                adieu.ledger.add_reason,
                payload.address,
                text or (choice or ""),
                choice=choice,
                channel=Channel.LANDING_PAGE,
            )
        return pages.render("thanks.html", locale, **ctx)

    @page("/u/{token}/resubscribe", "POST")
    async def resubscribe(request: Request, token: str) -> Response:
        form, payload, locale, ctx = await protected_form(request, token)
        scope = payload.scope if form.get("scope") == "topic" else ALL
        await run_in_threadpool(
            adieu.ledger.resubscribe,
            payload.address,
            scope,
            channel=Channel.LANDING_PAGE,
            campaign=payload.campaign,
            details={"shown": "confirmation_page"},
        )
        return pages.render("resubscribed.html", locale, scope=scope, **ctx)

    # -- preference center --------------------------------------------------------

    def preferences_view(payload: TokenPayload, locale: str) -> dict[str, Any]:
        status: ContactStatus = adieu.ledger.status(payload.address, with_history=False)
        state = status.state
        opted_out = {s.scope for s in state.suppressions if s.scope != ALL}
        topics = [
            {
                "key": t.key,
                "name": t.name,
                "description": t.description,
                "on": t.key not in opted_out
                and (t.default_opt_in or t.key in state.subscribed_topics),
            }
            for t in adieu.ledger.topics()
        ]
        now = adieu.ledger.now()
        paused = state.paused_until if state.paused_until and state.paused_until > now else None
        return {
            "topics": topics,
            "frequency": state.frequency.value,
            "paused_until": pages.when(paused, locale) if paused else "",
            "suppressed_since": pages.when(status.suppressed_since, locale),
            "pauses": PAUSES,
        }

    @page("/p/{token}", "GET", "HEAD")
    async def preferences(request: Request, token: str) -> Response:
        payload, locale, ctx = context(request, token)
        view = await run_in_threadpool(preferences_view, payload, locale)
        return pages.render("preferences.html", locale, changes=None, **view, **ctx)

    @page("/p/{token}", "POST")
    async def save_preferences(request: Request, token: str) -> Response:
        form, payload, locale, ctx = await protected_form(request, token)

        def save() -> list[tuple[str, Any, Any]]:
            ledger = adieu.ledger
            wanted = {t.key: f"topic-{t.key}" in form for t in ledger.topics()}
            frequency = form.get("frequency")
            pause = form.get("pause", "keep")
            now = ledger.now()
            return ledger.set_preferences(
                payload.address,
                channel=Channel.PREFERENCES,
                topics=wanted,
                frequency=Frequency(frequency)
                if frequency in {f.value for f in Frequency}
                else None,
                paused_until=(
                    now + timedelta(days=int(pause)) if pause in {str(d) for d in PAUSES} else None
                ),
                clear_pause=pause == "none",
                details={"campaign": payload.campaign, "shown": "preference_center"},
            )

        changes = await run_in_threadpool(save)
        view = await run_in_threadpool(preferences_view, payload, locale)
        names = {t["key"]: t["name"] for t in view["topics"]}
        described = [_describe(change, names, locale, pages) for change in changes]
        return pages.render("preferences.html", locale, changes=described, **view, **ctx)

    # The operator's routes go after the public pages: a request is matched
    # against routes in order, and the pages are what every recipient hits.
    app.include_router(api_router)
    admin_error = dashboard.install(app, adieu, auth)
    errors.install(app, page=error_page, admin=admin_error, allowed_methods=allowed_methods)
    return app


class SecurityHeaders:
    """Adds the security headers to every response (plain ASGI: no overhead)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.headers if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _describe(
    change: tuple[str, Any, Any], names: dict[str, str], locale: str, pages: Pages
) -> str:
    """One saved change, as the preference center lists it."""
    what, _, new = change
    if what.startswith("topic:"):
        key = what.removeprefix("topic:")
        text = gettext("{topic}: on", locale) if new else gettext("{topic}: off", locale)
        return text.format(topic=names.get(key, key))
    if what == "frequency":
        labels = {
            "every": gettext("Every email we send", locale),
            "weekly": gettext("At most one email a week", locale),
            "monthly": gettext("At most one email a month", locale),
        }
        return gettext("How often: {choice}", locale).format(choice=labels[new])
    if new is None:
        return gettext("The pause has ended.", locale)
    when = pages.when(datetime.fromisoformat(new), locale)
    return gettext("Paused until {date}.", locale).format(date=when)


def app_from_environment() -> FastAPI:
    """The app with settings from the environment (``uvicorn --factory``)."""
    return create_app(Adieu())
