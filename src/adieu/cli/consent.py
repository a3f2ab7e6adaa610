"""One person's consent: ``unsubscribe``, ``resubscribe``, ``status``, ``erase``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from adieu.cli.options import _scope_name, _table, _when, show
from adieu.cli.root import _Lazy, pass_app
from adieu.i18n import _
from adieu.ledger.vocabulary import Channel
from adieu.scopes import ALL
from adieu.times import iso_or_none

#: What every consent change made here records about who made it.
BY_CLI = {"by": "cli"}

if TYPE_CHECKING:
    from adieu.ledger.records import ContactStatus


@click.command()
@click.argument("address")
@click.option("--topic", default=None, help=_("Only this topic (default: all marketing)."))
@click.option("--reason", default=None, help=_("A note kept with the event."))
@pass_app
def unsubscribe(lazy: _Lazy, address: str, topic: str | None, reason: str | None) -> None:
    """Unsubscribe an address (from all marketing, or one topic)."""
    outcome = lazy.app.ledger.unsubscribe(
        address, topic, channel=Channel.CLI, reason=reason, details=BY_CLI
    )
    scope = outcome.scope
    if outcome.changed:
        click.echo(_("Unsubscribed from {scope}.").format(scope=_scope_name(scope)))
    else:
        click.echo(
            _("Already unsubscribed from {scope}, since {since}.").format(
                scope=_scope_name(scope), since=_when(outcome.since)
            )
        )


@click.command()
@click.argument("address")
@click.option("--topic", default=None, help=_("Only this topic (default: all marketing)."))
@click.option(
    "--lift",
    "lift",
    multiple=True,
    type=click.Choice(["hard_bounce", "complaint"]),
    help=_("Also lift this complaint or hard bounce, on purpose (needs --note)."),
)
@click.option("--note", default=None, help=_("Why, kept with the event (needed with --lift)."))
@pass_app
def resubscribe(
    lazy: _Lazy, address: str, topic: str | None, lift: tuple[str, ...], note: str | None
) -> None:
    """Undo an unsubscribe; --lift lifts a complaint or hard bounce on purpose.

    Nothing lifts an erasure.
    """
    if lift and not (note or "").strip():
        raise click.UsageError(_("Say why with --note when lifting a {what}.").format(what=lift[0]))
    outcome = lazy.app.ledger.resubscribe(
        address, topic, channel=Channel.CLI, details=BY_CLI, lift=lift, note=note
    )
    if outcome.changed:
        click.echo(_("Resubscribed to {scope}.").format(scope=_scope_name(outcome.scope)))
    else:
        click.echo(_("Nothing to undo for {scope}.").format(scope=_scope_name(outcome.scope)))
    if outcome.detail == "hard_bounce":
        click.echo(
            _(
                "Note: this address hard-bounced, so no mail will be sent to it. If the mailbox"
                " works again, lift it with --lift hard_bounce --note TEXT."
            )
        )
    elif outcome.detail == "complaint":
        click.echo(
            _(
                "Note: this address complained, so no marketing will be sent to it. Lift that"
                " only with a fresh opt-in: --lift complaint --note TEXT."
            )
        )


@click.command()
@click.argument("address")
@click.option("--json", "as_json", is_flag=True, help=_("Print JSON."))
@pass_app
def status(lazy: _Lazy, address: str, as_json: bool) -> None:
    """Show an address's current state and full history."""
    from adieu.addresses import canonical

    app = lazy.app
    found = app.ledger.status(address)
    decisions = app.policy.sendable_by_topic(found.state)
    if as_json:
        click.echo(json.dumps(_status_json(found, decisions, canonical(address))))
        return
    shown = found.address or _("(erased)")
    click.echo(f"{click.style(shown, bold=True)}  {app.hasher.display(canonical(address), 'hash')}")
    if not found.known:
        click.echo(_("Not in the ledger: marketing may be sent (no consent change recorded)."))
    table = _table(_("scope"), _("sendable"), _("why not"), _("since"))
    for scope, decision in decisions.items():
        table.add_row(
            _scope_name(scope),
            _("yes") if decision else _("no"),
            "" if decision else decision.reason,
            _when(decision.since),
        )
    show(table)
    if found.events:
        from adieu.feedback.why import summary

        history = _table(
            _("when"), _("event"), _("channel"), _("scope"), _("campaign"), _("note"), _("why")
        )
        for e in found.events:
            history.add_row(
                _when(e.at),
                e.type.value,
                e.channel.value,
                e.scope,
                e.campaign or "",
                e.reason or "",
                summary(e.details),
            )
        show(history)


def _status_json(found: ContactStatus, decisions: dict[str, Any], address: str) -> dict[str, Any]:
    from adieu.feedback.why import summary

    state = found.state
    return {
        "address": found.address if found.known else address,
        "address_hash": found.address_hash.hex(),
        "known": found.known,
        "erased": found.erased_at is not None,
        "sendable": {
            "overall": bool(decisions[ALL]),
            "topics": {k: bool(v) for k, v in decisions.items() if k != ALL},
        },
        "reasons": {k: v.reason for k, v in decisions.items() if not v},
        "suppressed_since": iso_or_none(found.suppressed_since),
        "suppressions": [
            {"scope": s.scope, "reason": s.reason.value, "since": iso_or_none(s.since)}
            for s in state.suppressions
        ],
        "frequency": state.frequency.value,
        "paused_until": iso_or_none(state.paused_until),
        "events": [
            {
                "type": e.type.value,
                "channel": e.channel.value,
                "scope": e.scope,
                "campaign": e.campaign,
                "at": iso_or_none(e.at),
                "reason": e.reason,
                "why": summary(e.details) or None,
                "details": e.details,
            }
            for e in found.events
        ],
    }


@click.command()
@click.argument("address")
@pass_app
def erase(lazy: _Lazy, address: str) -> None:
    """Forget an address (GDPR); it stays suppressed by its keyed hash."""
    outcome = lazy.app.ledger.erase(address, channel=Channel.CLI, details=BY_CLI)
    if outcome.changed and outcome.detail == "never_seen":
        click.echo(
            _(
                "This address was not in the ledger. Its keyed hash is now kept, suppressed,"
                " so it is never mailed."
            )
        )
    elif outcome.changed:
        click.echo(_("Erased. Only a keyed hash is kept, so this address is never mailed again."))
    else:
        click.echo(_("Already erased on {since}.").format(since=_when(outcome.since)))
