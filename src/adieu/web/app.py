"""The web service: landing page, RFC 8058 one-click unsubscribe, health.

A GET never changes anything (link scanners fetch every URL in a message); the
unsubscribe happens on POST, and the ledger commits before the response.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from adieu import __version__
from adieu.errors import AdieuError, InvalidToken
from adieu.i18n import gettext, negotiate
from adieu.ledger import Channel
from adieu.service import Adieu
from adieu.tokens import ALL, TokenPayload

MAX_BODY = 64 * 1024

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


def create_app(adieu: Adieu) -> FastAPI:
    app = FastAPI(title="Adieu", version=__version__, docs_url=None, redoc_url=None)
    templates = Environment(
        loader=FileSystemLoader(str(resources.files("adieu") / "web" / "templates")),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    app.mount("/static", StaticFiles(directory=str(resources.files("adieu") / "web" / "static")))

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    def locale_for(request: Request, payload: TokenPayload | None = None) -> str:
        accept = request.headers.get("accept-language", "")
        tags = [part.split(";")[0].strip() for part in accept.split(",") if part.strip()]
        return negotiate(
            payload.locale if payload else None, *tags, default=adieu.settings.default_locale
        )

    def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        locale = context.pop("locale", None) or locale_for(request)
        html = templates.get_template(name).render(
            _=lambda message: gettext(message, locale),
            lang=locale,
            sender=adieu.settings.sender_name,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def open_token(token: str) -> TokenPayload:
        return adieu.codec.open(token)

    @app.exception_handler(InvalidToken)
    async def invalid_token(request: Request, exc: InvalidToken) -> Response:
        if request.method == "POST" and not _is_page_form(request):
            return PlainTextResponse(
                gettext("This link is not valid.", locale_for(request)), status_code=400
            )
        return render(request, "invalid.html", status=400)

    @app.exception_handler(AdieuError)
    async def adieu_error(request: Request, exc: AdieuError) -> Response:
        return render(request, "error.html", status=exc.http_status)

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> Response:
        return render(request, "home.html")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.api_route("/u/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse)
    async def landing(request: Request, token: str) -> Response:
        payload = open_token(token)
        shown = adieu.hasher.display(payload.address, adieu.settings.address_display)
        return render(
            request,
            "landing.html",
            locale=locale_for(request, payload),
            address=shown,
            token=token,
            topic=payload.scope if payload.scope != ALL else None,
        )

    @app.post("/u/{token}")
    async def unsubscribe(request: Request, token: str) -> Response:
        body = await _read_body(request)
        from_page = _is_page_form(request) and "adieu-page" in parse_qs(body.decode("latin-1"))
        payload = open_token(token)
        # RFC 8058 §3.2: the POST alone (any of its body forms) unsubscribes
        # what the URI names. The page's own button always means all (R3).
        scope = ALL if from_page else payload.scope
        outcome = await run_in_threadpool(
            adieu.ledger.unsubscribe,
            payload.address,
            scope,
            channel=Channel.LANDING_PAGE if from_page else Channel.ONE_CLICK,
            campaign=payload.campaign,
            details={"token_issued_at": payload.issued_at.isoformat(), "key_id": payload.key_id},
        )
        locale = locale_for(request, payload)
        if not from_page:
            # RFC 8058 §3.2: a plain 200, never a redirect, no cookies.
            return PlainTextResponse(gettext("You are unsubscribed.", locale))
        return render(
            request,
            "confirmed.html",
            locale=locale,
            changed=outcome.changed,
            since=outcome.since.isoformat(timespec="minutes") if outcome.since else "",
        )

    return app


def _is_page_form(request: Request) -> bool:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind == "application/x-www-form-urlencoded"


async def _read_body(request: Request) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            break
    return body[:MAX_BODY]
