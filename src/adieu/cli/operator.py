"""The operator's commands: ``apikey``, ``report`` and ``webhooks``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from typing import Any

import click

from adieu.cli.options import _table, _when, say, serving, show
from adieu.cli.root import _Lazy, pass_app
from adieu.errors import InvalidInput
from adieu.i18n import _
from adieu.ledger.vocabulary import DEAD, EVENT_TYPES, PENDING, Scope


@click.group()
def apikey() -> None:
    """Manage API keys for /api/v1, the dashboard and /metrics."""


@apikey.command("create")
@click.option("--name", required=True, help=_("What the key is for (shown in lists)."))
@click.option(
    "--scope",
    type=click.Choice([s.value for s in Scope]),
    default=None,
    help=_(
        "What the key may do: read (reports, events, looking contacts up), send (read,"
        " and links, send checks and recorded sends: what a sending application needs)"
        " or admin (everything: changing consent, topics, suppression lists, webhooks)."
        " Default: admin."
    ),
)
@click.option("--read-only", is_flag=True, help=_("The same as --scope read."))
@pass_app
def apikey_create(lazy: _Lazy, name: str, scope: str | None, read_only: bool) -> None:
    """Create a key and print it (the only time it is shown)."""
    if read_only and scope not in (None, Scope.READ):
        raise click.UsageError(
            _("--read-only means --scope read: give one or the other, not --scope {scope}.").format(
                scope=scope
            )
        )
    chosen = Scope.READ if read_only else Scope(scope or Scope.ADMIN)
    key, secret = lazy.app.api_keys.create(name, scope=chosen)
    click.echo(secret)
    say(
        _("Key {id} (scope {scope}) created. Keep it now: only its hash is stored.").format(
            id=key.id, scope=key.scope.value
        )
    )


@apikey.command("list")
@pass_app
def apikey_list(lazy: _Lazy) -> None:
    """List keys (never the keys themselves)."""
    table = _table(
        _("Id"), _("Name"), _("Prefix"), _("Scope"), _("Created"), _("Last used"), _("Revoked")
    )
    for key in lazy.app.api_keys.list():
        table.add_row(
            str(key.id),
            key.name,
            key.prefix + "…",
            key.scope.value,
            _when(key.created_at),
            _when(key.last_used_at),
            _when(key.revoked_at),
        )
    show(table)


@apikey.command("revoke")
@click.argument("key")
@pass_app
def apikey_revoke(lazy: _Lazy, key: str) -> None:
    """Revoke a key by id or prefix. It stops working within seconds."""
    revoked = lazy.app.api_keys.revoke(key)
    click.echo(_("Key {id} ({name}) is revoked.").format(id=revoked.id, name=revoked.name))


def _since(value: str | None, now: datetime) -> datetime:
    if not value:
        return now - timedelta(days=30)
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise InvalidInput(_("Give --since as YYYY-MM-DD.")) from None
    return datetime.combine(day, time.min, tzinfo=UTC)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f} %"


_STATUS_STYLE: dict[str, dict[str, Any]] = {
    "ok": {"fg": "green"},
    "watch": {"fg": "yellow"},
    "breach": {"fg": "red", "bold": True},
    "unknown": {"dim": True},
}


@click.command()
@click.option("--since", default=None, help=_("First day, YYYY-MM-DD (default: 30 days ago)."))
@click.option("--json", "as_json", is_flag=True, help=_("Print JSON."))
@pass_app
def report(lazy: _Lazy, since: str | None, as_json: bool) -> None:
    """Sends, unsubscribes by channel, complaint and bounce rates, reasons, and
    time to honour, per day, campaign and topic."""
    from adieu import report as reports

    app = lazy.app
    now = app.ledger.now()
    built = reports.build(app.stats, _since(since, now), now)
    if as_json:
        click.echo(json.dumps(built.as_dict(), indent=2))
        return
    channels = built.channels or ["one_click", "landing_page"]

    def status(line: reports.Line) -> str:
        return click.style(line.complaint_status, **_STATUS_STYLE[line.complaint_status])

    days = _table(
        _("Day"),
        _("Sends"),
        *channels,
        _("Complaints"),
        _("Rate"),
        _("Status"),
        _("Hard"),
        _("Soft"),
        _("Unverified"),
    )
    for line in [*built.days, built.total]:
        days.add_row(
            line.day.isoformat() if line.day else _("Total"),
            str(line.sends),
            *(str(line.unsubscribes.get(c, 0)) for c in channels),
            str(line.complaints),
            _pct(line.complaint_rate),
            status(line),
            _pct(line.hard_bounce_rate),
            _pct(line.soft_bounce_rate),
            str(line.unverified),
        )
    days.title = _("Per day (complaint rate: goal below 0.1 %, limit 0.3 %)")
    show(days)
    detail = _table(
        _("Day"),
        _("Campaign"),
        _("Topic"),
        _("Sends"),
        _("Unsubscribes"),
        _("Complaints"),
        _("Rate"),
        _("Status"),
    )
    detail.title = _("Per campaign and topic")
    for line in built.lines:
        detail.add_row(
            line.day.isoformat() if line.day else "",
            line.campaign or "-",
            line.topic or _("all"),
            str(line.sends),
            str(line.unsubscribe_total),
            str(line.complaints),
            _pct(line.complaint_rate),
            status(line),
        )
    show(detail)
    reasons = _table(_("Reason"), _("Count"))
    reasons.title = _("Reasons given")
    for item in built.reasons[:20]:
        reasons.add_row(item["text"] or item["choice"] or "-", str(item["count"]))
    show(reasons)
    honour = _table(
        _("From the request to"),
        _("Count"),
        "p50",
        "p99",
        _("Max"),
        _("Waiting"),
        _("48 hours"),
        _("10 business days"),
    )
    honour.title = _("Time to honour")
    for label, timing in (
        (_("ledger commit"), built.to_commit),
        (_("last webhook delivery"), built.to_webhooks),
    ):
        missed = click.style(_("missed"), fg="red", bold=True)
        honour.add_row(
            label,
            str(timing.count),
            reports.format_duration(timing.p50),
            reports.format_duration(timing.p99),
            reports.format_duration(timing.max),
            str(timing.waiting),
            _("met") if timing.within_48_hours else missed,
            _("met") if timing.within_10_business_days else missed,
        )
    show(honour)


@click.group()
def webhooks() -> None:
    """Webhook receivers, their dead letters, and the deliverer."""


@webhooks.command("add")
@click.argument("url")
@click.option(
    "--event",
    "events",
    multiple=True,
    help=_("An event type to send (repeatable; default: all). One of: {types}.").format(
        types=", ".join(EVENT_TYPES)
    ),
)
@click.option("--description", default="", help=_("What the receiver is."))
@pass_app
def webhooks_add(lazy: _Lazy, url: str, events: tuple[str, ...], description: str) -> None:
    """Register a receiver and print its signing secret (shown only now)."""
    hook = lazy.app.outbox.create_webhook(url, events or ("*",), description)
    click.echo(hook.secret)
    say(_("Webhook {id} added for {url}.").format(id=hook.id, url=hook.url))


@webhooks.command("list")
@pass_app
def webhooks_list(lazy: _Lazy) -> None:
    """Receivers, with what waits and what died."""
    app = lazy.app
    table = _table(_("Id"), "URL", _("Events"), _("Active"), _("Waiting"), _("Dead letters"))
    counts = app.outbox.counts()
    for hook in app.outbox.webhooks():
        states = counts.get(hook.id, {})
        table.add_row(
            str(hook.id),
            hook.url,
            ", ".join(hook.event_types),
            _("yes") if hook.active else _("no"),
            str(states.get(PENDING, 0)),
            str(states.get(DEAD, 0)),
        )
    show(table)


@webhooks.command("replay")
@click.argument("webhook_id", type=int)
@pass_app
def webhooks_replay(lazy: _Lazy, webhook_id: int) -> None:
    """Queue a receiver's dead letters again."""
    lazy.app.outbox.webhook(webhook_id)
    n = lazy.app.outbox.replay(webhook_id=webhook_id)
    click.echo(_("{n} deliveries queued again.").format(n=n))


@webhooks.command("run")
@pass_app
def webhooks_run(lazy: _Lazy) -> None:
    """Deliver webhooks until stopped (SIGTERM or Ctrl-C). Safe beside adieu
    serve's own deliverer and beside other runs: each delivery is leased."""
    import asyncio
    import contextlib
    import signal

    from adieu.webhooks.deliver import deliverer_for

    deliverer = deliverer_for(lazy.app)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        await deliverer.run(stop)

    say(_("Delivering webhooks. Stop with Ctrl-C."))
    serving()
    asyncio.run(run())
    say(
        _("Stopped: {ok} delivered, {failed} failed this run.").format(
            ok=deliverer.delivered, failed=deliverer.failed
        )
    )
