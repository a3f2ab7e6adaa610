"""One person's consent: ``unsubscribe``, ``resubscribe``, ``status``, ``erase``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from adieu.cli.options import _scope_name, _table, _when, show
from adieu.cli.root import _Lazy, pass_app
from adieu.i18n import _
from adieu.ledger.vocabulary import Channel, EventType
from adieu.scopes import ALL
from adieu.times import iso_or_none

#: What every consent change made here records about who made it.
BY_CLI = {"by": "cli"}

if TYPE_CHECKING:
    from adieu.ledger.records import ContactStatus, Event


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
    else:
        for line in _state_lines(found, app.ledger.now()):
            click.echo(line)
    table = _table(_("scope"), _("sendable"), _("why not"), _("since (UTC)"))
    for scope, decision in decisions.items():
        table.add_row(
            _scope_name(scope),
            _("yes") if decision else _("no"),
            "" if decision else decision.reason,
            _at(decision.since),
        )
    show(table)
    if found.events:
        click.echo(_("History (UTC):"))
        for e in found.events:
            for line in _event_lines(e):
                click.echo(line)


#: ``adieu status`` fits a terminal this wide (longer free text wraps).
STATUS_WIDTH = 80


def _at(value: datetime | None) -> str:
    """A time as people read it in a table: ``2026-12-01 14:05:09`` (UTC)."""
    if value is None:
        return "-"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _frequency_name(frequency: str) -> str:
    names = {
        "every": _("every email"),
        "weekly": _("at most one a week"),
        "monthly": _("at most one a month"),
    }
    return names.get(frequency, frequency)


def _choice_name(choice: str) -> str:
    """The reason a person picked on the page, in the words it offered."""
    names = {
        "too_many": _("too many emails"),
        "not_relevant": _("not relevant to them"),
        "never_signed_up": _("never signed up"),
        "other": _("another reason"),
    }
    return names.get(choice, choice)


def _wrapped(label: str, text: str, indent: str) -> list[str]:
    import textwrap

    return textwrap.wrap(
        f"{label}: {text}",
        STATUS_WIDTH,
        initial_indent=indent,
        subsequent_indent=indent + "  ",
        break_long_words=False,
        break_on_hyphens=False,
    )


def _state_lines(found: ContactStatus, now: datetime) -> list[str]:
    """Frequency, pause and the last reason given, one line each."""
    state = found.state
    lines = [_("Frequency: {how}").format(how=_frequency_name(state.frequency.value))]
    until = state.paused_until
    if until is not None and until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    if until is not None and until > now:
        lines.append(_("Pause: until {until} UTC").format(until=_at(until)))
    else:
        lines.append(_("Pause: none"))
    given = [e for e in found.events if e.type == EventType.REASON]
    if given:
        last = given[-1]
        said = [_choice_name(str(c)) for c in [(last.details or {}).get("choice")] if c]
        said += [f"\u201c{last.reason}\u201d"] if last.reason else []
        text = _("{reason} (on {when} UTC)").format(
            reason=", ".join(said) or "-", when=_at(last.at)
        )
        lines += _wrapped(_("Reason given"), text, "")
    return lines


def _changes(details: dict[str, Any] | None) -> str:
    """What a preferences event changed (its ``changes``: setting, old, new)."""
    said = []
    for change in (details or {}).get("changes") or []:
        if not isinstance(change, list | tuple) or len(change) != 3:
            continue
        setting, _old, new = change
        setting = str(setting)
        if setting.startswith("topic:"):
            words = _("topic {key} on") if new else _("topic {key} off")
            said.append(words.format(key=setting.removeprefix("topic:")))
        elif setting == "frequency":
            said.append(_("frequency: {how}").format(how=_frequency_name(str(new))))
        elif setting == "paused_until" and new:
            try:
                until = _at(datetime.fromisoformat(str(new)))
            except ValueError:
                until = str(new)
            said.append(_("paused until {until}").format(until=until))
        elif setting == "paused_until":
            said.append(_("pause ended"))
    return "; ".join(said)


def _event_lines(e: Event) -> list[str]:
    """One event of the history: when, what, where and through which door on
    a line, then what was said with it, one thing a line."""
    from adieu.feedback.why import summary

    head = f"  {_at(e.at)}  {e.type.value} · {_scope_name(e.scope)} · {e.channel.value}"
    lines = [head]
    indent = " " * 6
    if e.campaign:
        lines += _wrapped(_("campaign"), e.campaign, indent)
    choice = (e.details or {}).get("choice") if e.type == EventType.REASON else None
    if choice:
        lines += _wrapped(_("reason chosen"), _choice_name(str(choice)), indent)
    changed = _changes(e.details) if e.type == EventType.PREFERENCES else ""
    if changed:
        lines += _wrapped(_("changed"), changed, indent)
    if e.reason:
        lines += _wrapped(_("note"), e.reason, indent)
    why = summary(e.details)
    if why:
        lines.append(f"{indent}{_('why')}: {why}")
    return lines


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
