"""The web service: landing page, RFC 8058 one-click, confirmation, preferences.

A GET never changes anything (link scanners fetch every URL in a message); the
unsubscribe happens on POST, and the ledger commits before the response. No
page needs JavaScript, a login or an address typed in (R11, R12); none sends
an email about what was done (R13).
"""

from __future__ import annotations

import mimetypes
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adieu import __version__
from adieu.errors import AdieuError, InvalidToken
from adieu.i18n import gettext
from adieu.ledger import Channel, ContactStatus, Frequency, Outcome
from adieu.service import Adieu
from adieu.tokens import ALL, TokenPayload
from adieu.web.commit import GroupCommit, from_link
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

REASONS = ("too_many", "not_relevant", "never_signed_up", "other")
PAUSES = (30, 60, 90)
REASON_TEXT_MAX = 500
LOGO_TYPES = {".png", ".svg", ".jpg", ".jpeg", ".webp"}


def create_app(adieu: Adieu) -> FastAPI:
    app = FastAPI(title="Adieu", version=__version__, docs_url=None, redoc_url=None)
    pages = Pages(adieu)
    palette = Palette.from_brand(adieu.settings.brand_colour)
    app.mount("/static", StaticFiles(directory=str(resources.files("adieu") / "web" / "static")))

    committer = GroupCommit(adieu.ledger)
    app.add_middleware(OneClick, adieu=adieu, committer=committer, pages=pages)
    app.add_middleware(SecurityHeaders)  # added last: outermost, so it covers OneClick too

    @app.exception_handler(InvalidToken)
    async def invalid_token(request: Request, exc: InvalidToken) -> Response:
        return pages.render("invalid.html", pages.locale(request), status=400)

    @app.exception_handler(AdieuError)
    async def adieu_error(request: Request, exc: AdieuError) -> Response:
        return pages.render("error.html", pages.locale(request), status=exc.http_status)

    # -- plumbing -------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    async def home(request: Request) -> Response:
        return pages.render("home.html", pages.locale(request))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

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

    @app.exception_handler(FormRefused)
    async def form_refused(request: Request, exc: FormRefused) -> Response:
        return pages.render("expired.html", exc.locale, status=403, **exc.context)

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

    return app


class FormRefused(Exception):
    """A state-changing form that did not come from our own page."""

    def __init__(self, locale: str, context: dict[str, Any]) -> None:
        super().__init__("form refused")
        self.locale = locale
        self.context = context


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
    """The app with settings from the environment (``uvicorn --factory``, workers)."""
    return create_app(Adieu())
