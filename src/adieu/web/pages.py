"""The recipient's pages: the landing page, the unsubscribe it confirms, the
optional reason, "subscribe again", and the preference center (R2–R7, R10–R15).

A GET never changes anything (link scanners fetch every URL in a message); the
unsubscribe happens on POST, and the ledger commits before the response. No
page needs JavaScript, a login or an address typed in (R11, R12); none sends
an email about what was done (R13). RFC 8058 one-click POSTs are answered in
front of these by ``adieu.web.oneclick``, which hands the page's own forms on.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool

from adieu.errors import Erased
from adieu.i18n import gettext
from adieu.ledger import Channel, ContactStatus, Frequency, Outcome
from adieu.ledger.records import PreferenceChange
from adieu.scopes import ALL
from adieu.service import Adieu
from adieu.text import has_controls
from adieu.tokens import TokenPayload
from adieu.web.commit import GroupCommit, from_link, link_details
from adieu.web.errors import FormRefused
from adieu.web.forms import read_form
from adieu.web.render import Pages

REASONS = ("too_many", "not_relevant", "never_signed_up", "other")
PAUSES = (30, 60, 90)
REASON_TEXT_MAX = 500


class PublicPages:
    """The page handlers (plain Starlette endpoints: pages are not part of the
    API, and skipping FastAPI's parameter machinery halves their cost)."""

    def __init__(self, adieu: Adieu, pages: Pages, committer: GroupCommit) -> None:
        self.adieu = adieu
        self.pages = pages
        self.committer = committer

    async def home(self, request: Request) -> Response:
        return self.pages.render("home.html", self.pages.locale(request))

    def context(self, request: Request, token: str) -> tuple[TokenPayload, str, dict[str, Any]]:
        payload = self.adieu.codec.open(token)
        locale = self.pages.locale(request, payload)
        topic = self.adieu.ledger.topic(payload.scope) if payload.scope != ALL else None
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
        token = request.path_params["token"]
        # No database work here (the topic names are cached): render in the loop.
        payload = self.adieu.codec.open(token)
        locale = self.pages.locale(request, payload)
        topic = self.adieu.ledger.topic(payload.scope) if payload.scope != ALL else None
        shown = self.adieu.hasher.display(payload.address, self.adieu.settings.address_display)
        return self.pages.render_per_token("landing.html", locale, token, shown, topic=topic)

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
        if choice or text:

            def give() -> Outcome:
                # The reason belongs to what the person left: the link's topic
                # when they left only that, otherwise all marketing.
                ledger = self.adieu.ledger
                status = ledger.status(payload.address, with_history=False)
                held = {s.scope for s in status.state.suppressions}
                scope = payload.scope if payload.scope in held and ALL not in held else ALL
                return ledger.add_reason(
                    payload.address,
                    text or (choice or ""),
                    choice=choice,
                    channel=Channel.LANDING_PAGE,
                    scope=scope,
                )

            await run_in_threadpool(give)
        return self.pages.render("thanks.html", locale, **ctx)

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
                "name": t.name,
                "description": t.description,
                "on": t.key not in opted_out
                and (t.default_opt_in or t.key in state.subscribed_topics),
            }
            for t in self.adieu.ledger.topics()
        ]
        now = self.adieu.ledger.now()
        paused = state.paused_until if state.paused_until and state.paused_until > now else None
        return {
            "topics": topics,
            "frequency": state.frequency.value,
            "paused_until": self.pages.when(paused, locale) if paused else "",
            "suppressed_since": self.pages.when(status.suppressed_since, locale),
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
                "preferences.html", locale, changes=None, locked=True, **view, **ctx
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
    when = pages.when(datetime.fromisoformat(new), locale)
    return gettext("Paused until {date}.", locale).format(date=when)
