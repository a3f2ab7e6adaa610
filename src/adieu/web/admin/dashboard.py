"""``/admin``: the operator's dashboard.

Sign-in is with an API key of any scope (the same failed-attempt limit as
the API); what changes anything (replaying dead letters) needs ``admin``. The
session cookie holds the key's id, an expiry and an HMAC: it is HttpOnly,
SameSite=Strict, limited to ``/admin``, and Secure whenever the service is
reached over HTTPS. Signing out ends the session on the server (the ledger
remembers it, by a digest, until it would have expired), not only in this
browser. The sign-in form, like every other form, is refused when the
browser says it was posted from another site; every form after it carries a
CSRF token bound to the session.
Pages need no JavaScript; charts are SVG drawn here. Addresses are typed into
forms (POST), never put in URLs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from adieu import report
from adieu.addresses import mask
from adieu.errors import AdieuError
from adieu.esp.push.queue import backlogs as esp_backlogs
from adieu.feedback.why import decisive
from adieu.i18n import ADMIN, SOURCE_LOCALE, ngettext
from adieu.i18n import admin_text as _
from adieu.ledger import ContactStatus
from adieu.ledger.apikeys import ApiKey
from adieu.ledger.vocabulary import Scope
from adieu.metrics import COUNTING_SINCE, landing_visits
from adieu.service import Adieu
from adieu.web import forms
from adieu.web.admin import charts
from adieu.web.admin.auth import Authenticator, client_of
from adieu.web.errors import ApiError, Failure

COOKIE = "adieu_admin"
SESSION_S = 12 * 3600
MAX_FORM = 16 * 1024


class Sessions:
    """Signed session values: ``<key id>.<expiry>.<nonce>.<mac>`` (the nonce
    makes each sign-in its own session, to be signed out alone)."""

    def __init__(self, secret: bytes) -> None:
        self._key = hmac.digest(secret, b"adieu admin session v2", "sha256")

    def _mac(self, text: str) -> str:
        digest = hmac.digest(self._key, text.encode(), "sha256")
        return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")

    def issue(self, key_id: int, now: float | None = None) -> str:
        expiry = int((now or time.time()) + SESSION_S)
        text = f"{key_id}.{expiry}.{secrets.token_urlsafe(12)}"
        return f"{text}.{self._mac(text)}"

    def key_id(self, value: str | None, now: float | None = None) -> int | None:
        if not value or value.count(".") != 3:
            return None
        key_id, expiry, nonce, mac = value.split(".")
        if not hmac.compare_digest(mac, self._mac(f"{key_id}.{expiry}.{nonce}")):
            return None
        if not (key_id.isdigit() and expiry.isdigit()) or int(expiry) < (now or time.time()):
            return None
        return int(key_id)

    @staticmethod
    def expiry(value: str) -> datetime:
        """When a valid session value stops working."""
        return datetime.fromtimestamp(int(value.split(".")[1]), UTC)

    @staticmethod
    def digest(value: str) -> bytes:
        """What a signed-out session is remembered by (not the cookie itself)."""
        return hashlib.sha256(value.encode()).digest()

    def csrf(self, value: str) -> str:
        return self._mac("csrf:" + value)


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"


#: The doors by the names an operator knows them by.
CHANNEL_LABELS = {
    "one_click": _("One-click button"),
    "landing_page": _("Landing page"),
    "preferences": _("Preference center"),
    "mailto": _("Reply by email"),
    "complaint": _("Spam complaint"),
    "bounce": _("Bounce"),
    "api": _("API"),
    "cli": _("Command line"),
    "import": _("Import"),
    "esp": _("Email service provider"),
}
#: The reasons people choose on the page after leaving.
REASON_LABELS = {
    "too_many": _("Too many emails"),
    "not_relevant": _("Not relevant"),
    "never_signed_up": _("Never signed up"),
    "other": _("Another reason"),
}
#: What gave a landing-page visit away (``adieu.web.pages.visit_sign``).
VISIT_LABELS = {
    "none": _("Browsers"),
    "head": _("Scanners: HEAD requests"),
    "prefetch": _("Scanners: prefetches"),
    "agent": _("Scanners: security gateways and robots"),
    "soon_after_send": _("Scanners: within a minute of a send"),
}


def channel_label(channel: str | None) -> str:
    return CHANNEL_LABELS.get(channel or "", channel or "-")


def _shown(value: Any) -> str:
    """A recorded value as a person reads it (never a Python repr)."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return _("on") if value else _("off")
    if isinstance(value, list | tuple):
        return ", ".join(_shown(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {_shown(v)}" for k, v in value.items())
    return str(value)


def details_text(details: Any) -> str:
    """An event's details on one line: ``shown: landing_page; frequency:
    every → weekly``; empty values left out."""
    if not isinstance(details, dict):
        return _shown(details) if details else ""
    parts = []
    for key, value in details.items():
        if value is None or value == "" or value == []:
            continue
        if key == "changes" and isinstance(value, list):
            for change in value:
                if isinstance(change, list | tuple) and len(change) == 3:
                    name = str(change[0]).replace("topic:", _("topic") + " ").replace("_", " ")
                    parts.append(f"{name}: {_shown(change[1])} → {_shown(change[2])}")
                else:
                    parts.append(_shown(change))
            continue
        parts.append(f"{str(key).replace('_', ' ')}: {_shown(value)}")
    return "; ".join(parts)


def install(
    app: FastAPI, adieu: Adieu, auth: Authenticator
) -> Callable[[Request, Failure, BaseException], Response]:
    """Add the dashboard's routes; returns how its errors are shown (for the
    web door's error map)."""
    sessions = Sessions(adieu.keyring.hash_key)
    root = resources.files("adieu") / "web" / "admin" / "templates"
    env = Environment(loader=FileSystemLoader(str(root)), autoescape=select_autoescape(["html"]))
    secure_site = adieu.settings.base_url.startswith("https://")

    def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        def translate(message: str, **values: Any) -> str:
            text = _(message)
            return text.format(**values) if values else text

        def translate_plural(singular: str, plural: str, n: int, **values: Any) -> str:
            return ngettext(singular, plural, n, SOURCE_LOCALE, ADMIN).format(n=n, **values)

        html = env.get_template(name).render(
            _=translate,
            ngettext=translate_plural,
            sender=adieu.settings.sender_name,
            channel=channel_label,
            details=details_text,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def session_key(request: Request) -> ApiKey | None:
        """The key of this request's session, while the key is active and the
        session was not signed out."""
        value = request.cookies.get(COOKIE)
        key_id = sessions.key_id(value)
        if value is None or key_id is None:
            return None
        try:
            key = adieu.api_keys.get(key_id)
        except AdieuError:
            return None
        if not key.active or adieu.api_keys.session_ended(sessions.digest(value)):
            return None
        return key

    async def form_of(request: Request) -> dict[str, str]:
        return await forms.read_form(request, limit=MAX_FORM, max_fields=50)

    def checked(request: Request, form: dict[str, str]) -> bool:
        """The form came from our own page, in this session."""
        value = request.cookies.get(COOKIE, "")
        expected = sessions.csrf(value) if value else ""
        return forms.csrf_ok(request, form, expected, [adieu.settings.base_url])

    def to_login() -> Response:
        return RedirectResponse("/admin/login", status_code=303)

    # -- sign in and out -------------------------------------------------------------

    @app.get("/admin/login", include_in_schema=False)
    async def login_page(request: Request) -> Response:
        return render(request, "login.html", error=None)

    @app.post("/admin/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await form_of(request)
        if not forms.from_own_site(request, [adieu.settings.base_url]):
            message = _("This sign-in came from another site, so it was refused. Sign in here.")
            return render(request, "login.html", status=403, error=message)
        try:
            key = await auth.verify(form.get("key", "").strip(), client_of(request))
        except ApiError as exc:
            message = (
                _("Too many attempts with a wrong key. Please wait a minute and try again.")
                if exc.http_status == 429
                else _("That key is not valid (or was revoked). Please check it and try again.")
            )
            return render(request, "login.html", status=exc.http_status, error=message)
        response = RedirectResponse("/admin", status_code=303)
        response.set_cookie(
            COOKIE,
            sessions.issue(key.id),
            max_age=SESSION_S,
            path="/admin",
            httponly=True,
            secure=secure_site or request.url.scheme == "https",
            samesite="strict",
        )
        return response

    @app.post("/admin/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        form = await form_of(request)
        if not checked(request, form):
            return render(request, "expired.html", status=403)
        value = request.cookies.get(COOKIE)
        if value is not None and sessions.key_id(value) is not None:
            # Ended on the server: a copy of the cookie kept anywhere stops working.
            await run_in_threadpool(
                adieu.api_keys.end_session, sessions.digest(value), sessions.expiry(value)
            )
        response = RedirectResponse("/admin/login", status_code=303)
        response.delete_cookie(COOKIE, path="/admin")
        return response

    # -- the dashboard ------------------------------------------------------------------

    def overview(since_days: int = 30) -> dict[str, Any]:
        now = adieu.ledger.now()
        built = report.build(adieu.stats, now - timedelta(days=since_days), now)
        days = [d.day.isoformat()[5:] if d.day else "" for d in built.days]
        channels = built.channels or ["one_click"]
        unsubscribes = charts.stacked_bars(
            _("Unsubscribes per day, by channel"),
            days,
            {channel_label(c): [d.unsubscribes.get(c, 0) for d in built.days] for c in channels},
            _("Stacked bars: one per day, one colour per channel."),
        )
        complaint = charts.lines(
            _("Complaint rate per day"),
            days,
            {_("Complaint rate"): [d.complaint_rate for d in built.days]},
            _("A line of complaints per send, over bands for the 0.1 % goal and 0.3 % limit."),
            bands=[
                charts.Band(0, report.COMPLAINT_GOAL, _("Goal: below 0.1 %"), "#238636"),
                charts.Band(
                    report.COMPLAINT_GOAL, report.COMPLAINT_LIMIT, _("Watch: 0.1–0.3 %"), "#9a6700"
                ),
                charts.Band(
                    report.COMPLAINT_LIMIT, 1.0, _("Over the limit: 0.3 % and above"), "#cf222e"
                ),
            ],
            highest=_("highest {value}"),
        )
        bounces = charts.lines(
            _("Bounce rate per day"),
            days,
            {
                _("Hard bounces"): [d.hard_bounce_rate for d in built.days],
                _("Soft bounces"): [d.soft_bounce_rate for d in built.days],
            },
            _("Two lines: hard and soft bounces per send."),
            highest=_("highest {value}"),
        )
        # Reasons: counted by the choice people made; what they wrote is
        # listed apart (every text is its own).
        chosen: dict[str | None, int] = {}
        written: list[tuple[str, int]] = []
        for r in built.reasons:
            known = r["choice"] if r["choice"] in REASON_LABELS else None
            chosen[known] = chosen.get(known, 0) + r["count"]
            if r["text"]:
                written.append((r["text"], r["count"]))
        reason_items = sorted(
            (
                (REASON_LABELS[c] if c else _("No reason chosen (text only)"), n)
                for c, n in chosen.items()
            ),
            key=lambda item: -item[1],
        )
        reasons = charts.horizontal_bars(
            _("Reasons chosen"),
            reason_items,
            _("Bars: how often each reason was chosen."),
        )
        seen = landing_visits()
        visits = charts.horizontal_bars(
            _("Landing-page visits"),
            [(label, seen.get(sign, 0)) for sign, label in VISIT_LABELS.items()],
            _("Bars: landing-page visits by browsers and by likely scanners, by sign."),
            colour=charts.COLOURS[3],
        )
        counts = adieu.outbox.counts()
        backlog = [{"hook": h, "counts": counts.get(h.id, {})} for h in adieu.outbox.webhooks()]
        return {
            "report": built,
            "charts": {
                "unsubscribes": unsubscribes,
                "complaints": complaint,
                "bounces": bounces,
                "reasons": reasons,
                "visits": visits,
            },
            "written": written[:20],
            "visits_since": _when(datetime.fromtimestamp(COUNTING_SINCE, UTC)),
            "scanner_visits": sum(n for sign, n in seen.items() if sign != "none"),
            "events": [
                {
                    **e,
                    "shown": mask(e["address"]) if e["address"] else _("(erased)"),
                    "why": decisive(e["details"]),
                }
                for e in adieu.stats.latest_events(20)
            ],
            "backlog": backlog,
            "dead": adieu.outbox.letters("dead", limit=50),
            "esp": esp_backlogs(adieu),
            "inbound": adieu.ledger.review_items(20),
            "when": _when,
            "duration": report.format_duration,
        }

    @app.get("/admin", include_in_schema=False)
    async def dashboard(request: Request) -> Response:
        key = await run_in_threadpool(session_key, request)
        if key is None:
            return to_login()
        view = await run_in_threadpool(overview)
        csrf = sessions.csrf(request.cookies.get(COOKIE, ""))
        return render(
            request,
            "dashboard.html",
            key=key,
            csrf=csrf,
            may_change=key.scope.allows(Scope.ADMIN),
            **view,
        )

    @app.post("/admin/contact", include_in_schema=False)
    async def contact(request: Request) -> Response:
        key = await run_in_threadpool(session_key, request)
        if key is None:
            return to_login()
        form = await form_of(request)
        csrf = sessions.csrf(request.cookies.get(COOKIE, ""))
        if not checked(request, form):
            return render(request, "expired.html", status=403)
        address = form.get("address", "").strip()
        status: ContactStatus | None = None
        error = None
        try:
            status = await run_in_threadpool(adieu.ledger.status, address)
        except AdieuError:
            error = _("That is not a valid email address.")
        return render(
            request,
            "contact.html",
            status=400 if error else 200,
            key=key,
            csrf=csrf,
            address=address,
            status_=status,
            decisions=adieu.policy.sendable_by_topic(status.state) if status else {},
            error=error,
            when=_when,
        )

    @app.post("/admin/webhooks/{webhook_id:int}/replay", include_in_schema=False)
    async def replay(request: Request) -> Response:
        key = await run_in_threadpool(session_key, request)
        if key is None:
            return to_login()
        form = await form_of(request)
        if not checked(request, form):
            return render(request, "expired.html", status=403)
        if not key.scope.allows(Scope.ADMIN):
            return render(
                request, "forbidden.html", status=403, scope=key.scope.value, needed="admin"
            )
        webhook_id = int(request.path_params["webhook_id"])
        await run_in_threadpool(lambda: adieu.outbox.replay(webhook_id=webhook_id))
        return RedirectResponse("/admin#webhooks", status_code=303)

    def error_page(request: Request, failure: Failure, exc: BaseException) -> Response:
        response = render(request, "error.html", status=failure.status, message=failure.message)
        response.headers.update(failure.headers)
        return response

    return error_page
