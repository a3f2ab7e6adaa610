"""Whole lists: ``filter``, ``import``, ``export``."""

from __future__ import annotations

from pathlib import Path

import click

from adieu.cli.options import (
    _open_binary,
    _open_input,
    _output,
    _progress,
    _report_invalid,
    _size,
    _text_output,
    category_option,
    output_option,
    say,
)
from adieu.cli.root import _Lazy, pass_app
from adieu.errors import InvalidInput
from adieu.i18n import _
from adieu.ledger.vocabulary import Reason
from adieu.scopes import ALL


@click.command("filter")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True))
@click.option("--topic", default=None, help=_("Topic of the send (default: any marketing)."))
@click.option("--column", default=None, help=_("CSV column that holds the address."))
@category_option(_("Category of the send."))
@output_option
@pass_app
def filter_(
    lazy: _Lazy,
    file: Path,
    topic: str | None,
    column: str | None,
    category: str,
    output: Path | None,
) -> None:
    """Keep only the rows that may be mailed now; say on stderr what was removed and why."""
    from adieu import lists

    app = lazy.app
    app.ledger.send_scope(topic)
    with (
        _open_binary(file) as source,
        _progress(_("Filtering"), _size(file)) as tick,
        _output(output) as sink,
    ):
        report = lists.filter_file(
            app.policy, source, sink, column=column, topic=topic, category=category, progress=tick
        )
    total = report.kept + report.removed_total + report.invalid_count
    say(_("Kept {kept} of {total} rows.").format(kept=report.kept, total=total))
    if report.removed:
        parts = ", ".join(f"{why} {n}" for why, n in sorted(report.removed.items()))
        say(_("Removed {count}: {parts}.").format(count=report.removed_total, parts=parts))
    _report_invalid(report.invalid_count, report.invalid)


@click.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["generic", "mailchimp", "sendgrid", "ses"]),
    default="generic",
    show_default=True,
    help=_("Whose export this is."),
)
@click.option("--topic", default=None, help=_("Suppress only this topic (default: all marketing)."))
@click.option(
    "--reason",
    type=click.Choice([r.value for r in Reason]),
    default=None,
    help=_("Reason for every row (default: read from the file)."),
)
@pass_app
def import_(lazy: _Lazy, file: Path, fmt: str, topic: str | None, reason: str | None) -> None:
    """Import a suppression list (generic, Mailchimp, SendGrid or SES export).

    A row that cannot be imported is listed with its line number and why, and
    the others are imported. Exit 0: every row imported (or already there);
    1: some rows refused; 2: nothing could be read.
    """
    from adieu import lists

    app = lazy.app
    if topic and reason == Reason.HARD_BOUNCE.value:
        say(_("A hard bounce is about the mailbox, not a topic: it stops all mail to it."))
    with _open_input(file) as source, _progress(_("Importing"), _size(file)) as tick:
        result, bad = lists.import_file(
            app.ledger,
            source,
            fmt,  # type: ignore[arg-type]
            scope=topic or ALL,
            reason=Reason(reason) if reason else None,
            progress=tick,
        )
    say(
        _("Imported {added} suppressions; {already} were already suppressed.").format(
            added=result.added, already=result.already
        )
    )
    if bad:
        say(_("Refused {count} rows, not imported:").format(count=bad))
        for number, what in result.invalid:
            say(_("  line {number}: {what}").format(number=number, what=what))
        if bad > len(result.invalid):
            say(_("  … and {more} more").format(more=bad - len(result.invalid)))
    if result.added + result.already == 0:
        raise InvalidInput(_("Nothing was imported: no row of the file could be read."))
    if bad:
        click.get_current_context().exit(1)


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl"]),
    default="csv",
    show_default=True,
    help=_("Output format."),
)
@output_option
@pass_app
def export(lazy: _Lazy, fmt: str, output: Path | None) -> None:
    """Export every suppression (erased addresses by keyed hash only)."""
    from adieu import lists

    app = lazy.app
    with _text_output(output) as sink:
        count = lists.write_export(app.ledger.export_suppressions(), sink, fmt)  # type: ignore[arg-type]
    if output is not None:
        say(_("Exported {count} suppressions.").format(count=count))
