"""The recipient's pages: the landing page, the unsubscribe it confirms, the
optional reason, "subscribe again", and the preference center (R2–R7, R10–R15).

A GET never changes anything (link scanners fetch every URL in a message); the
unsubscribe happens on POST, and the ledger commits before the response. No
page needs JavaScript, a login or an address typed in (R11, R12); none sends
an email about what was done (R13). RFC 8058 one-click POSTs are answered in
front of these by ``adieu.web.oneclick``, which hands the page's own forms on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from adieu.errors import Erased, storage_trouble
from adieu.i18n import gettext
from adieu.ledger import Channel, ContactStatus, Frequency, Outcome, Reason
from adieu.ledger.records import PreferenceChange, SendState, Suppression
from adieu.ledger.vocabulary import CONSENT_REASONS, LIFTABLE_FACTS
from adieu.metrics import LANDING_VISITS
from adieu.scopes import ALL
from adieu.service import Adieu
from adieu.text import has_controls
from adieu.tokens import TokenPayload
from adieu.web.commit import GroupCommit, from_link, link_details
from adieu.web.errors import FormRefused, report
from adieu.web.forms import read_form
from adieu.web.render import Pages

REASONS = ("too_many", "not_relevant", "never_signed_up", "other")
PAUSES = (30, 60, 90)
REASON_TEXT_MAX = 500

#: A landing-page GET this soon after a recorded marketing send is most
#: likely the receiving side's link scanner, not the person.
SOON_AFTER_SEND_S = 60
#: Words in the User-Agent of security gateways and automated fetchers that
#: follow every link in a message (lower case). A person's browser names none.
SCANNER_AGENTS = (
    "barracuda",
    "mimecast",
    "proofpoint",
    "urldefense",
    "ironport",
    "ciscosecureemail",
    "safelinks",
    "ms-office",
    "microsoft office",
    "trend micro",
    "tmes",
    "fortimail",
    "fortiguard",
    "sophos",
    "symantec",
    "forcepoint",
    "bot",
    "crawler",
    "spider",
    "preview",
    "curl/",
    "wget/",
    "python-",
    "go-http-client",
    "java/",
    "libwww",
    "okhttp",
    "headlesschrome",
)
#: Request headers by which browsers mark a fetch nobody asked to see yet.
PREFETCH_HEADERS = ("sec-purpose", "purpose", "x-purpose", "x-moz")
_scanner_agent = re.compile("|".join(re.escape(word) for word in SCANNER_AGENTS), re.I).search
_WATCHED = frozenset(name.encode() for name in ("user-agent", "accept-language", *PREFETCH_HEADERS))
#: Each sign's counter, made once (and so shown at 0 from the start).
SIGNS = ("none", "head", "prefetch", "agent", "soon_after_send")
_VISITS = {
    sign: LANDING_VISITS.labels("browser" if sign == "none" else "likely_scanner", sign)
    for sign in SIGNS
}


def visit_sign(
    method: str, headers: Mapping[str, str], last_send: datetime | None, now: datetime
) -> str:
    """What gives a landing-page visit away as a scanner's (``head``,
    ``prefetch``, ``agent``, ``soon_after_send``), or ``none``: most likely
    a person's browser. Only counted; nothing is decided by it."""
    if method == "HEAD":
        return "head"
    for name in PREFETCH_HEADERS:
        value = headers.get(name, "").lower()
        if "prefetch" in value or "prerender" in value or "preview" in value:
            return "prefetch"
    agent = headers.get("user-agent", "")
    if not agent.strip() or _scanner_agent(agent):
        return "agent"
    if last_send is not None and 0 <= (now - last_send).total_seconds() <= SOON_AFTER_SEND_S:
        return "soon_after_send"
    return "none"


def left_already(state: SendState, scope: str) -> Suppression | None:
    """The "no" that already holds for a link's scope: the person's own or
    one made for them (an unsubscribe, a complaint, an operator's or an
    import); for a topic's link, the one for all marketing first."""
    held = [s for s in state.suppressions if s.reason in CONSENT_REASONS]
    for wanted in (ALL, scope):
        found = [s for s in held if s.scope == wanted]
        if found:
            return min(found, key=lambda s: s.since)
    return None


class PublicPages:
    """The page handlers (plain Starlette endpoints: pages are not part of the
    API, and skipping FastAPI's parameter machinery halves their cost)."""

    def __init__(self, adieu: Adieu, pages: Pages, committer: GroupCommit) -> None:
        self.adieu = adieu
        self.pages = pages
        self.committer = committer
        self._local_reads = adieu.engine.dialect.name == "sqlite"
        self._dates: dict[tuple[int, str], str] = {}

    async def home(self, request: Request) -> Response:
        return self.pages.render("home.html", self.pages.locale(request))

    def context(self, request: Request, token: str) -> tuple[TokenPayload, str, dict[str, Any]]:
        payload = self.adieu.codec.open(token)
        locale = self.pages.locale(request, payload)
        topic = (
            self.adieu.ledger.topic(payload.scope).in_language(locale)
            if payload.scope != ALL
            else None
        )
        shown = self.adieu.hasher.display(payload.address, self.adieu.settings.address_display)
        return (
            payload,
            locale,
            {
                "token": token,
                "address": shown,
                "topic": topic,
                "csrf": self.pages.csrf_for(token),
            },
        )

    async def protected_form(
        self, request: Request, token: str
    ) -> tuple[dict[str, str], TokenPayload, str, dict[str, Any]]:
        """A page form that changes something: its fields, once the CSRF token
        and the browser's origin show it was posted from our own page."""
        form = await read_form(request)
        payload, locale, ctx = self.context(request, token)
        if not self.pages.csrf_ok(request, token, form):
            raise FormRefused(locale, ctx)
        return form, payload, locale, ctx

    async def landing(self, request: Request) -> Response:
        """The landing page (GET and HEAD) as a route; see ``landing_page``."""
        page = await self.landing_page(
            request.method, request.path_params["token"], request.scope["headers"]
        )
        return HTMLResponse(page)

    async def landing_page(
        self, method: str, token: str, headers: Iterable[tuple[bytes, bytes]]
    ) -> bytes:
        """The landing page's HTML: the choices, or, when the person already
        left what the link is about, since when and the way back. Nothing is
        written: a visit is only counted, in memory. (``OneClick`` serves it
        in front of the routing: every reader and every scanner opens it.)"""
        payload = self.adieu.codec.open(token)
        # Only the headers that tell, read straight from the request.
        watched = {
            name.decode(): value.decode("latin-1") for name, value in headers if name in _WATCHED
        }
        locale = self.pages.locale_from(watched.get("accept-language", ""), payload)
        topic = (
            self.adieu.ledger.topic(payload.scope).in_language(locale)
            if payload.scope != ALL
            else None
        )
        shown = self.adieu.hasher.display(payload.address, self.adieu.settings.address_display)
        state = await self.send_state(payload)
        ledger = self.adieu.ledger
        sign = visit_sign(method, watched, state.last_marketing_send_at, ledger.now())
        _VISITS[sign].inc()
        left = left_already(state, payload.scope)
        if left is None:
            return self.pages.fill_per_token("landing.html", locale, token, shown, topic=topic)
        erased = (
            any(s.reason == Reason.MANUAL for s in state.suppressions if s.scope == ALL)
            and (
                await run_in_threadpool(ledger.status, payload.address, with_history=False)
            ).erased_at
            is not None
        )
        # A link never lifts a complaint or a hard bounce (nor anything for an
        # erased address): no button that would not do what it says.
        facts = any(s.reason in LIFTABLE_FACTS for s in state.suppressions if s.scope == ALL)
        return self.pages.fill_per_token(
            "landing_left.html",
            locale,
            token,
            shown,
            topic=topic,
            scope=left.scope,
            since=self._when_minute(left.since, locale),
            by_you=left.reason == Reason.UNSUBSCRIBE,
            may_return=not (erased or facts),
            erased=erased,
        )

    async def send_state(self, payload: TokenPayload) -> SendState:
        """The link's address's state, in the one indexed query the send
        policy uses: in the event loop on SQLite (microseconds, no network),
        in a worker thread on a database server."""
        ledger = self.adieu.ledger
        topic = payload.scope if payload.scope != ALL else None
        try:
            if self._local_reads:
                return ledger.send_state(payload.address, topic)
            return await run_in_threadpool(ledger.send_state, payload.address, topic)
        except Exception as exc:
            if not storage_trouble(exc):
                raise
            # The ledger cannot be read just now: the page with the choices
            # still opens (it changes nothing; a choice made on it waits for
            # the ledger and says so).
            report(exc)
            return SendState(known=False)

    def _when_minute(self, moment: datetime, locale: str) -> str:
        """``Pages.when`` (shown to the minute), remembered per minute and
        language: a burst of visits formats each date once."""
        key = (int(moment.timestamp()) // 60, locale)
        text = self._dates.get(key)
        if text is None:
            if len(self._dates) > 4096:
                self._dates.clear()
            minute = moment.replace(second=0, microsecond=0)
            text = self._dates[key] = self.pages.when(minute, locale)
        return text

    async def unsubscribe(self, request: Request) -> Response:
        """The landing page's own buttons (one-click POSTs are answered by
        ``OneClick`` in front, which hands page forms on to here)."""
        token = request.path_params["token"]
        form = await read_form(request)
        payload, locale, ctx = self.context(request, token)
        # The first button always means all marketing (R3); the topic button
        # leaves only the topic the link names.
        scope = payload.scope if form.get("scope") == "topic" else ALL
        outcome = await self.committer.unsubscribe(
            from_link(payload, scope, Channel.LANDING_PAGE, "landing_page")
        )
        return self.confirmation(locale, ctx, outcome)

    def confirmation(self, locale: str, ctx: dict[str, Any], outcome: Outcome) -> Response:
        return self.pages.render(
            "confirmed.html",
            locale,
            changed=outcome.changed,
            scope=outcome.scope,
            since=self.pages.when(outcome.since, locale),
            # "You unsubscribed on …" only when the person did it (not a
            # complaint, a bounce, an import or an operator).
            by_you=outcome.reason == Reason.UNSUBSCRIBE,
            hours=self.adieu.settings.honour_hours,
            reasons=REASONS,
            reason_max=REASON_TEXT_MAX,
            **ctx,
        )

    async def reason(self, request: Request) -> Response:
        token = request.path_params["token"]
        form, payload, locale, ctx = await self.protected_form(request, token)
        choice = form.get("choice") if form.get("choice") in REASONS else None
        text = form.get("text", "")
        if has_controls(text, lines=True):
            # NUL and its kin are not text (and cannot be stored everywhere):
            # asked again, kindly, with nothing recorded.
            return self.pages.render(
                "reason_again.html",
                locale,
                status=400,
                reasons=REASONS,
                reason_max=REASON_TEXT_MAX,
                **ctx,
            )
        text = text.strip()[:REASON_TEXT_MAX]

        def give() -> tuple[str, bool]:
            # The reason belongs to what the person left: the link's topic
            # when they left only that, otherwise all marketing.
            ledger = self.adieu.ledger
            status = ledger.status(payload.address, with_history=False)
            held = {s.scope for s in status.state.suppressions}
            scope = payload.scope if payload.scope in held and ALL not in held else ALL
            if choice or text:
                ledger.add_reason(
                    payload.address,
                    text or (choice or ""),
                    choice=choice,
                    channel=Channel.LANDING_PAGE,
                    scope=scope,
                )
            # The way back stays on offer, as on the page before, where a
            # link can take it (not after a complaint, a hard bounce or an
            # erasure).
            facts = any(
                s.reason in LIFTABLE_FACTS for s in status.state.suppressions if s.scope == ALL
            )
            left = left_already(status.state, payload.scope) is not None
            return scope, left and not facts and status.erased_at is None

        scope, may_return = await run_in_threadpool(give)
        return self.pages.render("thanks.html", locale, scope=scope, may_return=may_return, **ctx)

    async def resubscribe(self, request: Request) -> Response:
        token = request.path_params["token"]
        form, payload, locale, ctx = await self.protected_form(request, token)
        scope = payload.scope if form.get("scope") == "topic" else ALL
        try:
            outcome = await run_in_threadpool(
                self.adieu.ledger.resubscribe,
                payload.address,
                scope,
                channel=Channel.LANDING_PAGE,
                campaign=payload.campaign,
                details=link_details(payload, "confirmation_page"),
            )
            # A complaint or a hard bounce still holds: a link never lifts
            # those, and the page must not promise mail that will not come.
            held = outcome.detail is not None
        except Erased:
            held = True  # said the same way: the page reveals nothing more
        return self.pages.render("resubscribed.html", locale, scope=scope, held=held, **ctx)

    def preferences_view(self, payload: TokenPayload, locale: str) -> dict[str, Any]:
        status: ContactStatus = self.adieu.ledger.status(payload.address, with_history=False)
        state = status.state
        opted_out = {s.scope for s in state.suppressions if s.scope != ALL}
        topics = [
            {
                "key": t.key,
                "name": t.text(locale).name,
                "description": t.text(locale).description,
                "on": t.key not in opted_out
                and (t.default_opt_in or t.key in state.subscribed_topics),
            }
            for t in self.adieu.ledger.topics()
        ]
        now = self.adieu.ledger.now()
        paused = state.paused_until if state.paused_until and state.paused_until > now else None
        facts = any(s.reason in LIFTABLE_FACTS for s in state.suppressions if s.scope == ALL)
        return {
            "topics": topics,
            "frequency": state.frequency.value,
            "paused_until": self.pages.day(paused, locale) if paused else "",
            "suppressed_since": self.pages.when(status.suppressed_since, locale),
            # Out of all marketing: said, with the way back where a link may
            # take it; never the button to leave again.
            "out": status.suppressed_since is not None,
            "may_return": not facts and status.erased_at is None,
            "locked": status.erased_at is not None,
            "pauses": PAUSES,
        }

    async def preferences(self, request: Request) -> Response:
        token = request.path_params["token"]
        payload, locale, ctx = self.context(request, token)
        view = await run_in_threadpool(self.preferences_view, payload, locale)
        return self.pages.render("preferences.html", locale, changes=None, **view, **ctx)

    async def save_preferences(self, request: Request) -> Response:
        token = request.path_params["token"]
        form, payload, locale, ctx = await self.protected_form(request, token)

        def save() -> list[PreferenceChange]:
            ledger = self.adieu.ledger
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
                details={
                    "campaign": payload.campaign,
                    **link_details(payload, "preference_center"),
                },
            )

        try:
            changes = await run_in_threadpool(save)
        except Erased:
            view = await run_in_threadpool(self.preferences_view, payload, locale)
            return self.pages.render(
                "preferences.html", locale, changes=None, **{**view, "locked": True}, **ctx
            )
        view = await run_in_threadpool(self.preferences_view, payload, locale)
        names = {t["key"]: t["name"] for t in view["topics"]}
        described = [_describe(change, names, locale, self.pages) for change in changes]
        return self.pages.render("preferences.html", locale, changes=described, **view, **ctx)


def _describe(change: PreferenceChange, names: dict[str, str], locale: str, pages: Pages) -> str:
    """One saved change, as the preference center lists it."""
    new = change.new
    if change.topic is not None:
        text = gettext("{topic}: on", locale) if new else gettext("{topic}: off", locale)
        return text.format(topic=names.get(change.topic, change.topic))
    if change.setting == "frequency":
        labels = {
            "every": gettext("Every email we send", locale),
            "weekly": gettext("At most one email a week", locale),
            "monthly": gettext("At most one email a month", locale),
        }
        return gettext("How often: {choice}", locale).format(choice=labels[new])
    if new is None:
        return gettext("The pause has ended.", locale)
    when = pages.day(datetime.fromisoformat(new), locale)
    return gettext("Paused until {date}.", locale).format(date=when)
