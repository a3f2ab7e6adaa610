"""``adieu esp``: the email service providers that get Adieu's decisions,
their backlog and dead letters, a deliverer, and ``sync``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from adieu.cli.options import _table, _when, say, serving, show
from adieu.cli.root import _Lazy, pass_app
from adieu.errors import InvalidInput
from adieu.esp.push import PROVIDERS
from adieu.i18n import _
from adieu.scopes import ALL

if TYPE_CHECKING:
    from adieu.esp.push.queue import PushQueue


@click.group()
def esp() -> None:
    """Suppressions out to your email service providers (SES, SendGrid, Mailgun, Postmark,
    Resend, SparkPost, Brevo, Mailjet)."""


def _queue(lazy: _Lazy) -> PushQueue:
    from adieu.esp.push.queue import PushQueue

    return PushQueue(lazy.app.engine, lazy.app.ledger.now)


@esp.command("list")
@pass_app
def esp_list(lazy: _Lazy) -> None:
    """Configured providers, what waits for each and what died."""
    from urllib.parse import urlsplit

    from adieu.esp.push.providers import providers

    app = lazy.app
    targets = {p.name: p for p in providers(app.settings)}
    queue = _queue(lazy)
    counts = queue.counts()
    table = _table(
        _("Provider"), _("API"), _("Waiting"), _("Oldest waiting"), _("Dead letters"), _("Sent")
    )
    for name in PROVIDERS:
        target = targets.get(name)
        numbers = counts.get(name)
        if target is None and numbers is None:
            continue
        table.add_row(
            name,
            urlsplit(target.base).netloc if target is not None else _("not configured"),
            str(numbers.pending if numbers else 0),
            _when(numbers.oldest_pending_at if numbers else None),
            str(numbers.dead if numbers else 0),
            str(numbers.delivered if numbers else 0),
        )
    if app.settings.ses_region and "ses" not in targets:
        say(_("ADIEU_SES_REGION is set, but AWS_ACCESS_KEY_ID is not: nothing goes to SES."))
    if not table.rows:
        say(
            _(
                "No email service provider is configured: set ADIEU_SES_REGION, "
                "ADIEU_SENDGRID_API_KEY, ADIEU_MAILGUN_API_KEY with ADIEU_MAILGUN_DOMAIN, "
                "or ADIEU_POSTMARK_SERVER_TOKEN."
            )
        )
        return
    show(table)
    letters = queue.letters()
    if letters:
        dead = _table(_("Id"), _("Provider"), _("Decision"), _("Attempts"), _("Last error"))
        for letter in letters:
            scope = "" if letter.scope == ALL else f" ({letter.scope})"
            dead.add_row(
                str(letter.id),
                letter.provider,
                f"{letter.action} {letter.kind}{scope}",
                str(letter.attempts),
                letter.last_error or "",
            )
        say(_("Latest dead letters (adieu esp replay queues them again):"))
        show(dead)


@esp.command("replay")
@click.argument("provider", required=False, type=click.Choice(PROVIDERS))
@pass_app
def esp_replay(lazy: _Lazy, provider: str | None) -> None:
    """Queue dead letters again (of one provider, or all)."""
    n = _queue(lazy).replay(provider)
    click.echo(_("{n} decisions queued again.").format(n=n))


@esp.command("run")
@pass_app
def esp_run(lazy: _Lazy) -> None:
    """Push decisions to the providers until stopped (SIGTERM or Ctrl-C). Safe
    beside adieu serve's own deliverer and beside other runs."""
    import asyncio
    import contextlib
    import signal

    from adieu.esp.push.deliver import push_deliverer_for

    deliverer = push_deliverer_for(lazy.app)
    if deliverer is None:
        raise InvalidInput(_("No email service provider is configured; see adieu esp list."))

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        await deliverer.run(stop)

    say(
        _("Pushing decisions to {names}. Stop with Ctrl-C.").format(
            names=", ".join(deliverer.targets)
        )
    )
    serving()
    asyncio.run(run())
    say(
        _("Stopped: {ok} pushed, {failed} failed this run.").format(
            ok=deliverer.delivered, failed=deliverer.failed
        )
    )


@esp.command("sync")
@click.argument("provider", type=click.Choice(PROVIDERS))
@pass_app
def esp_sync(lazy: _Lazy, provider: str) -> None:
    """Reconcile a provider's suppression lists with Adieu: import what Adieu
    lacks, and push what the provider lacks."""
    from adieu.esp.push.providers import Entry, providers
    from adieu.esp.sync import http_fetch, read, reconcile

    app = lazy.app
    target = next((p for p in providers(app.settings) if p.name == provider), None)
    if target is None:
        raise InvalidInput(
            _("{provider} is not configured; see adieu esp list.").format(provider=provider)
        )
    fetch, close = http_fetch(app.settings.webhook_timeout * 3)
    entries: list[Entry] = []
    try:
        with click.progressbar(
            read(target, fetch),
            label=_("Reading {provider}'s suppression lists").format(provider=provider),
            file=sys.stderr,
            show_pos=True,
            item_show_func=lambda page: (
                _("{n} entries").format(n=len(entries)) if page is not None else None
            ),
        ) as pages:
            for page in pages:
                entries.extend(page.entries)
    finally:
        close()
    report = reconcile(app, target, entries)
    click.echo(
        _(
            "{provider}: {read} entries read; {added} imported into Adieu, {already} already "
            "there, {unknown} for topics Adieu does not know."
        ).format(
            provider=provider,
            read=report.read,
            added=report.imported.added,
            already=report.imported.already,
            unknown=report.unknown_topics,
        )
    )
    click.echo(
        _("Adieu holds {missing} that {provider} lacks: {queued} queued for it{erased}.").format(
            missing=report.missing,
            provider=provider,
            queued=report.missing - report.cannot_push,
            erased=_(", {n} erased (known only by their hash) cannot be sent").format(
                n=report.cannot_push
            )
            if report.cannot_push
            else "",
        )
    )
    if report.examples:
        click.echo(_("For example: {addresses}").format(addresses=", ".join(report.examples)))
