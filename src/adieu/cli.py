"""The ``adieu`` command. Each command turns flags into one call on ``Adieu``."""

from __future__ import annotations

import gc
import io
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.markup import escape

from adieu import __version__, bulk, keys
from adieu.addresses import canonical
from adieu.errors import AdieuError, InvalidSettings
from adieu.i18n import _
from adieu.ledger import Channel, ContactStatus, Reason
from adieu.ledger.database import describe, upgrade
from adieu.policy import Category
from adieu.secret import Secret
from adieu.service import Adieu
from adieu.settings import load_settings
from adieu.tokens import ALL

if TYPE_CHECKING:
    from rich.table import Table

DEMO_ADDRESS = "demo@example.com"


def _table(*columns: str) -> Table:
    from rich.table import Table

    return Table(*columns)


err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False)


class AdieuGroup(click.Group):
    """Maps Adieu's errors to one clear sentence and an exit status, in one place."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AdieuError as exc:
            lines = exc.problems if isinstance(exc, InvalidSettings) else [str(exc)]
            for line in lines:
                err.print(f"[bold red]{_('Error')}:[/] {escape(line)}", markup=True)
            ctx.exit(exc.exit_code)
        except BrokenPipeError:  # `adieu export | head`
            sys.stderr.close()
            ctx.exit(0)


@click.group(cls=AdieuGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="adieu")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Adieu: make leaving a mailing list easy, respectful and final."""
    ctx.obj = _Lazy()
    ctx.call_on_close(ctx.obj.close)


class _Lazy:
    """Builds ``Adieu`` on first use, so ``--help`` needs no database."""

    _app: Adieu | None = None

    @property
    def app(self) -> Adieu:
        if self._app is None:
            self._app = Adieu(load_settings())
        return self._app

    def close(self) -> None:
        if self._app is not None:
            self._app.close()


pass_app = click.make_pass_decorator(_Lazy)


def category_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--category",
        type=click.Choice([c.value for c in Category]),
        default=Category.MARKETING.value,
        show_default=True,
        help=help,
    )


def workers_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--workers", type=click.IntRange(1, 64), default=1, show_default=True, help=help
    )


output_option = click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help=_("Write here instead of standard output."),
)


@contextmanager
def _progress(label: str, total: int | None) -> Iterator[Callable[[int], None] | None]:
    """A rich progress bar on a terminal; nothing otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    columns = (label, BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


@contextmanager
def _output(path: Path | None) -> Iterator[IO[bytes]]:
    """stdout, or a file that appears only when complete (no partial writes)."""
    if path is None or str(path) == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    directory = path.resolve().parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as exc:
        raise click.FileError(str(path), hint=exc.strerror) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


@contextmanager
def _text_output(path: Path | None) -> Iterator[IO[str]]:
    with _output(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="")
        yield text
        text.flush()
        text.detach()


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "-"


# -- serve --------------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help=_("Interface to listen on."))
@click.option("--port", default=8000, show_default=True, type=int, help=_("Port to listen on."))
@workers_option(_("Processes sharing the port (one core each)."))
@pass_app
def serve(lazy: _Lazy, host: str, port: int, workers: int) -> None:
    """Run the web service (landing page, one-click, preferences)."""
    import uvicorn

    from adieu.processes import check_free, listening_socket, run_workers
    from adieu.web.app import create_app

    app = lazy.app
    if "base_url" not in app.settings.model_fields_set:
        # Links point at this server unless ADIEU_BASE_URL names a public origin.
        app.settings = app.settings.model_copy(update={"base_url": f"http://{host}:{port}"})
    link = app.link(DEMO_ADDRESS)  # creates the data dir, keys and database on first start
    where = describe(app.settings.sqlalchemy_url)
    click.echo(_("Adieu is running at http://{host}:{port}/").format(host=host, port=port))
    click.echo(_("Ledger: {where}").format(where=where))
    click.echo(
        _("Try the flow with a sample unsubscribe link for {address}:").format(address=DEMO_ADDRESS)
    )
    click.echo(f"  {link.url}")
    click.echo(
        _(
            "Dashboard: http://{host}:{port}/admin (sign in with a key from: adieu apikey create)"
        ).format(host=host, port=port)
    )
    check_free(host, port)
    if workers > 1:
        # Each worker builds its own app (nothing opened here crosses a fork)
        # and listens on its own socket of the shared port.
        settings = app.settings
        app.close()

        def run_one(index: int) -> None:
            sock = listening_socket(host, port, shared=True)
            web = create_app(Adieu(settings))
            gc.collect()
            gc.freeze()
            config = uvicorn.Config(web, log_level="warning", access_log=False)
            uvicorn.Server(config).run(sockets=[sock])

        run_workers(workers, run_one)
        return
    web = create_app(app)
    # Everything built so far lives as long as the process: keep it out of the
    # cyclic garbage collector's full passes, which otherwise show as latency
    # spikes under load.
    gc.collect()
    gc.freeze()
    uvicorn.run(web, host=host, port=port, log_level="warning", access_log=False)


# -- topics -------------------------------------------------------------------


@main.group()
def topic() -> None:
    """Manage topics (what people can choose to receive)."""


@topic.command("add")
@click.argument("key")
@click.option("--name", required=True, help=_("Name shown to subscribers."))
@click.option("--description", default="", help=_("One sentence shown under the name."))
@click.option(
    "--opt-in/--opt-out",
    "default_opt_in",
    default=True,
    show_default=True,
    help=_("Whether people receive it until they say otherwise (--opt-out: only after they ask)."),
)
@pass_app
def topic_add(lazy: _Lazy, key: str, name: str, description: str, default_opt_in: bool) -> None:
    """Add a topic."""
    created = lazy.app.ledger.add_topic(key, name, description, default_opt_in)
    click.echo(_("Added topic {key}.").format(key=created.key))


@topic.command("list")
@click.option("--json", "as_json", is_flag=True, help=_("Print JSON."))
@pass_app
def topic_list(lazy: _Lazy, as_json: bool) -> None:
    """List the topics."""
    topics = lazy.app.ledger.topics()
    if as_json:
        click.echo(json.dumps([_topic_json(t) for t in topics]))
        return
    if not topics:
        click.echo(_("No topics yet. Add one with: adieu topic add KEY --name NAME"))
        return
    table = _table(_("key"), _("name"), _("default"), _("description"))
    for t in topics:
        table.add_row(
            t.key, t.name, _("opt-in") if t.default_opt_in else _("opt-out"), t.description
        )
    out.print(table)


def _topic_json(t: Any) -> dict[str, Any]:
    return {
        "key": t.key,
        "name": t.name,
        "description": t.description,
        "default_opt_in": t.default_opt_in,
    }


# -- links --------------------------------------------------------------------


@main.command()
@click.argument("address")
@click.option("--topic", default=None, help=_("Leave only this topic (default: all marketing)."))
@click.option("--campaign", default=None, help=_("Campaign id carried in the link."))
@click.option("--locale", default=None, help=_("Language of the pages, e.g. sv or pt-BR."))
@click.option("--json", "as_json", is_flag=True, help=_("Print JSON."))
@pass_app
def link(
    lazy: _Lazy,
    address: str,
    topic: str | None,
    campaign: str | None,
    locale: str | None,
    as_json: bool,
) -> None:
    """Print an unsubscribe link and its List-Unsubscribe headers."""
    made = lazy.app.link(address, topic=topic, campaign=campaign, locale=locale)
    if as_json:
        click.echo(
            json.dumps(
                {"url": made.url, "preferences_url": made.preferences_url, "headers": made.headers}
            )
        )
        return
    click.echo(made.url)
    for name, value in made.headers.items():
        click.echo(f"{name}: {value}")


# -- consent ------------------------------------------------------------------


@main.command()
@click.argument("address")
@click.option("--topic", default=None, help=_("Only this topic (default: all marketing)."))
@click.option("--reason", default=None, help=_("A note kept with the event."))
@pass_app
def unsubscribe(lazy: _Lazy, address: str, topic: str | None, reason: str | None) -> None:
    """Unsubscribe an address (from all marketing, or one topic)."""
    outcome = lazy.app.ledger.unsubscribe(address, topic, channel=Channel.CLI, reason=reason)
    scope = outcome.scope
    if outcome.changed:
        click.echo(_("Unsubscribed from {scope}.").format(scope=_scope_name(scope)))
    else:
        click.echo(
            _("Already unsubscribed from {scope}, since {since}.").format(
                scope=_scope_name(scope), since=_when(outcome.since)
            )
        )


@main.command()
@click.argument("address")
@click.option("--topic", default=None, help=_("Only this topic (default: all marketing)."))
@pass_app
def resubscribe(lazy: _Lazy, address: str, topic: str | None) -> None:
    """Undo an unsubscribe (a hard bounce stays)."""
    outcome = lazy.app.ledger.resubscribe(address, topic, channel=Channel.CLI)
    if outcome.changed:
        click.echo(_("Resubscribed to {scope}.").format(scope=_scope_name(outcome.scope)))
    else:
        click.echo(_("Nothing to undo for {scope}.").format(scope=_scope_name(outcome.scope)))
    if outcome.detail == "hard_bounce":
        click.echo(_("Note: this address hard-bounced, so no mail will be sent to it."))


def _scope_name(scope: str) -> str:
    return _("all marketing email") if scope == ALL else _("topic {key}").format(key=scope)


@main.command()
@click.argument("address")
@click.option("--json", "as_json", is_flag=True, help=_("Print JSON."))
@pass_app
def status(lazy: _Lazy, address: str, as_json: bool) -> None:
    """Show an address's current state and full history."""
    app = lazy.app
    found = app.ledger.status(address)
    decisions = app.policy.sendable_by_topic(found.state)
    if as_json:
        click.echo(json.dumps(_status_json(found, decisions, canonical(address))))
        return
    shown = found.address or _("(erased)")
    out.print(f"[bold]{shown}[/]  {app.hasher.display(canonical(address), 'hash')}")
    if not found.known:
        out.print(_("Not in the ledger: marketing may be sent (no consent change recorded)."))
    table = _table(_("scope"), _("sendable"), _("why not"), _("since"))
    for scope, decision in decisions.items():
        table.add_row(
            _scope_name(scope),
            _("yes") if decision else _("no"),
            "" if decision else decision.reason,
            _when(decision.since),
        )
    out.print(table)
    if found.events:
        history = _table(_("when"), _("event"), _("channel"), _("scope"), _("campaign"), _("note"))
        for e in found.events:
            history.add_row(
                _when(e.at),
                e.type.value,
                e.channel.value,
                e.scope,
                e.campaign or "",
                e.reason or "",
            )
        out.print(history)


def _status_json(found: ContactStatus, decisions: dict[str, Any], address: str) -> dict[str, Any]:
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
        "suppressed_since": _iso(found.suppressed_since),
        "suppressions": [
            {"scope": s.scope, "reason": s.reason.value, "since": _iso(s.since)}
            for s in state.suppressions
        ],
        "frequency": state.frequency.value,
        "paused_until": _iso(state.paused_until),
        "events": [
            {
                "type": e.type.value,
                "channel": e.channel.value,
                "scope": e.scope,
                "campaign": e.campaign,
                "at": _iso(e.at),
                "reason": e.reason,
            }
            for e in found.events
        ],
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@main.command()
@click.argument("address")
@pass_app
def erase(lazy: _Lazy, address: str) -> None:
    """Forget an address (GDPR); it stays suppressed by its keyed hash."""
    outcome = lazy.app.ledger.erase(address, channel=Channel.CLI)
    if outcome.changed:
        click.echo(_("Erased. Only a keyed hash is kept, so this address is never mailed again."))
    else:
        click.echo(_("Already erased on {since}.").format(since=_when(outcome.since)))


# -- lists --------------------------------------------------------------------


@main.command("filter")
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
    app = lazy.app
    app.ledger.check_scope(topic)
    with (
        _open_binary(file) as source,
        _progress(_("Filtering"), _size(file)) as tick,
        _output(output) as sink,
    ):
        report = bulk.filter_file(
            app.policy, source, sink, column=column, topic=topic, category=category, progress=tick
        )
    total = report.kept + report.removed_total + report.invalid_count
    err.print(_("Kept {kept} of {total} rows.").format(kept=report.kept, total=total))
    if report.removed:
        parts = ", ".join(f"{why} {n}" for why, n in sorted(report.removed.items()))
        err.print(_("Removed {count}: {parts}.").format(count=report.removed_total, parts=parts))
    _report_invalid(report.invalid_count, report.invalid)


@contextmanager
def _open_binary(file: Path) -> Iterator[IO[bytes]]:
    if str(file) == "-":
        yield sys.stdin.buffer
        return
    try:
        fh = file.open("rb")
    except OSError as exc:
        raise AdieuError(f"Cannot read {file}: {exc.strerror or exc}.") from None
    with fh:
        yield fh


@contextmanager
def _open_input(file: Path) -> Iterator[IO[str]]:
    if str(file) == "-":
        yield sys.stdin
        return
    with bulk.open_text(file) as fh:
        yield fh


def _report_invalid(count: int, listed: list[tuple[int, str]]) -> None:
    if not count:
        return
    err.print(_("Skipped {count} rows without a valid address:").format(count=count))
    for number, what in listed:
        err.print(_("  line {number}: {what}").format(number=number, what=what), markup=False)
    if count > len(listed):
        err.print(_("  … and {more} more").format(more=count - len(listed)))


@main.command("import")
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
    """Import a suppression list (generic, Mailchimp, SendGrid or SES export)."""
    app = lazy.app
    if topic and reason == Reason.HARD_BOUNCE.value:
        err.print(_("A hard bounce is about the mailbox, not a topic: it stops all mail to it."))
    with _open_input(file) as source, _progress(_("Importing"), _size(file)) as tick:
        result, bad = bulk.import_file(
            app.ledger,
            source,
            fmt,  # type: ignore[arg-type]
            scope=topic or ALL,
            reason=Reason(reason) if reason else None,
            progress=tick,
        )
    err.print(
        _("Imported {added} suppressions; {already} were already suppressed.").format(
            added=result.added, already=result.already
        )
    )
    _report_invalid(bad, result.invalid)


@main.command()
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
    app = lazy.app
    with _text_output(output) as sink:
        count = bulk.write_export(app.ledger.export_suppressions(), sink, fmt)  # type: ignore[arg-type]
    if output is not None:
        err.print(_("Exported {count} suppressions.").format(count=count))


# -- mail -------------------------------------------------------------------------


def _read_message(path: Path) -> bytes:
    if str(path) == "-":
        return sys.stdin.buffer.read()
    try:
        return path.read_bytes()
    except OSError as exc:
        raise AdieuError(f"Cannot read {path}: {exc.strerror or exc}.") from None


@main.command()
@click.argument("message", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True))
@click.option("--to", "to", required=True, help=_("The recipient of this copy."))
@click.option("--topic", default=None, help=_("The topic of the message (default: none)."))
@click.option("--campaign", default=None, help=_("Campaign id for the link and Feedback-ID."))
@click.option("--locale", default=None, help=_("Language of the link text and pages."))
@pass_app
def stamp(
    lazy: _Lazy, message: Path, to: str, topic: str | None, campaign: str | None, locale: str | None
) -> None:
    """Write MESSAGE for one recipient: unsubscribe headers, visible link, DKIM."""
    from adieu.mail.stamper import Stamper

    data = _read_message(message)
    stamped = Stamper(lazy.app).stamp(data, to, topic=topic, campaign=campaign, locale=locale)
    sys.stdout.buffer.write(stamped)
    sys.stdout.buffer.flush()


@main.command()
@click.argument("message", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help=_("Print JSON."))
def lint(message: Path, as_json: bool) -> None:
    """Check a message or template against R1, R8, R9 and RFC 8058 (exit 1 on errors)."""
    from adieu.mail.lint import ERROR, report
    from adieu.mail.lint import lint as check

    findings = check(_read_message(message))
    if as_json:
        click.echo(json.dumps(report(findings)))
    elif not findings:
        click.echo(_("No findings: the unsubscribe headers and links are in order."))
    for f in [] if as_json else findings:
        click.echo(f"{f.severity}: [{f.rule}] {f.message}")
    if any(f.severity == ERROR for f in findings):
        sys.exit(1)


@main.command()
@click.option(
    "--listen", default="127.0.0.1:2525", show_default=True, help=_("HOST:PORT to accept mail on.")
)
@click.option(
    "--upstream", required=True, help=_("HOST:PORT of the MTA or ESP that sends the mail on.")
)
@category_option(_("Category when the message has no X-Adieu-Category header."))
@click.option(
    "--topic", default=None, help=_("Topic when the message has no X-Adieu-Topic header.")
)
@click.option(
    "--drop-refused",
    is_flag=True,
    help=_("Accept recipients who may not get the mail, and drop them silently."),
)
@click.option(
    "--tls-cert",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help=_("Certificate for STARTTLS (AUTH is offered only over TLS)."),
)
@click.option(
    "--tls-key",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help=_("Private key for STARTTLS."),
)
@workers_option(_("Processes sharing the port (stamping and signing use one core each)."))
@click.option(
    "--size-limit",
    type=int,
    default=25 * 1024 * 1024,
    show_default=True,
    help=_("Largest message accepted, in bytes."),
)
@click.option(
    "--metrics",
    "metrics_at",
    default=None,
    help=_("HOST:PORT for Prometheus metrics (worker N uses PORT + N)."),
)
@pass_app
def relay(
    lazy: _Lazy,
    listen: str,
    upstream: str,
    category: str,
    topic: str | None,
    drop_refused: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
    workers: int,
    size_limit: int,
    metrics_at: str | None,
) -> None:
    """Relay mail to UPSTREAM: refuse who has left, stamp and sign every copy."""
    import ssl

    from adieu.smtp.relay import (
        RelayConfig,
        RelayHandler,
        parse_hostport,
        parse_networks,
        run_relay,
    )

    app = lazy.app
    settings = app.settings
    app.ledger.check_scope(topic)
    host, port = parse_hostport(listen, 2525)
    tls = None
    if tls_cert is not None:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(str(tls_cert), str(tls_key) if tls_key else None)
    config = RelayConfig(
        upstream=parse_hostport(upstream, 25),
        allow=parse_networks(settings.relay_allow.split(",")),
        category=category,
        topic=topic,
        drop_refused=drop_refused,
        user=settings.relay_user,
        password=_secret(settings.relay_password),
        upstream_user=settings.upstream_user,
        upstream_password=_secret(settings.upstream_password),
        upstream_tls=settings.upstream_tls,
        upstream_ca_file=str(settings.upstream_ca_file) if settings.upstream_ca_file else None,
    )
    click.echo(
        _("Relaying from {host}:{port} to {upstream}.").format(
            host=host, port=port, upstream=upstream
        )
    )
    settings_for_workers = app.settings
    app.close()  # nothing opened here may cross into the worker processes

    def make_handler() -> RelayHandler:
        return RelayHandler(Adieu(settings_for_workers), config)

    run_relay(
        make_handler,
        host,
        port,
        tls=tls,
        size_limit=size_limit,
        workers=workers,
        metrics_at=parse_hostport(metrics_at, 9125) if metrics_at else None,
    )


def _secret(value: Any) -> Secret | None:
    """A pydantic secret setting as Adieu's own wrapper (neither ever prints)."""
    return Secret(value.get_secret_value()) if value is not None else None


EX_DATAERR, EX_TEMPFAIL = 65, 75  # sysexits.h: what a pipe transport understands


@main.command()
@click.argument("source", required=False)
@click.option("--listen", default=None, help=_("HOST:PORT to receive reports on (SMTP)."))
@click.option("--lmtp", is_flag=True, help=_("Speak LMTP instead of SMTP on --listen."))
@click.option(
    "--recipient",
    default=None,
    help=_("The envelope recipient, for a pipe transport (finds VERP and mailto tokens)."),
)
@pass_app
def inbound(
    lazy: _Lazy, source: str | None, listen: str | None, lmtp: bool, recipient: str | None
) -> None:
    """Record mailto unsubscribes, complaints and bounces sent back by mail.

    `adieu inbound -` reads one message on stdin (a Postfix or Exim pipe:
    exit 0 done, 75 try later, 65 unusable); `--listen HOST:PORT` runs an SMTP
    listener; `adieu inbound list-unknown` lists what could not be classified.
    """
    from adieu.feedback.intake import Intake

    app = lazy.app
    if source == "list-unknown":
        items = app.ledger.review_items()
        if not items:
            click.echo(_("Nothing is waiting for review."))
        for item_id, received, size, note, content in items:
            subject = next(
                (
                    line[8:].strip()
                    for line in content.decode("utf-8", "replace").splitlines()
                    if line.lower().startswith("subject:")
                ),
                "",
            )
            click.echo(f"{item_id}\t{_when(received)}\t{size}\t{note}\t{subject[:60]}")
        return
    if listen is not None:
        from adieu.smtp.inbound import run_inbound
        from adieu.smtp.server import parse_hostport

        host, port = parse_hostport(listen, 2526)
        click.echo(_("Receiving reports on {host}:{port}.").format(host=host, port=port))
        settings = app.settings
        app.close()  # nothing opened here may cross into the listener
        run_inbound(lambda: Adieu(settings), host, port, lmtp=lmtp)
        return
    if source != "-":
        raise click.UsageError(
            _("Give - (a message on stdin), --listen HOST:PORT or list-unknown.")
        )
    raw = sys.stdin.buffer.read()
    try:
        result = Intake(app).process(raw, [recipient] if recipient else None)
    except AdieuError:
        raise
    except Exception as exc:  # the ledger is unavailable: the MTA keeps the message
        err.print(
            _("Cannot record this now ({what}); try again later.").format(what=type(exc).__name__)
        )
        sys.exit(EX_TEMPFAIL)
    kind = result.classification.kind
    for what, who in result.applied:
        click.echo(f"{what}\t{who}")
    if result.review_id is not None:
        click.echo(
            _("Kept for review as #{id}: {note}").format(
                id=result.review_id, note=result.classification.note
            )
        )
    if kind == "unusable":
        sys.exit(EX_DATAERR)


# -- maintenance --------------------------------------------------------------


@main.group()
def db() -> None:
    """The ledger database."""


@db.command("upgrade")
@pass_app
def db_upgrade(lazy: _Lazy) -> None:
    """Create or upgrade the database schema."""
    app = Adieu(lazy.app.settings, migrate=False)
    try:
        ran = upgrade(app.engine)
    finally:
        app.close()
    where = describe(app.settings.sqlalchemy_url)
    click.echo((_("Upgraded {where}.") if ran else _("{where} is up to date.")).format(where=where))


@main.group("keys")
def keys_() -> None:
    """Token and hash keys."""


@keys_.command("dkim")
@click.option("--domain", required=True, help=_("The signing domain (d=)."))
@click.option("--selector", required=True, help=_("The selector (s=)."))
@click.option(
    "--ed25519", "ed25519_key", is_flag=True, help=_("An Ed25519 key instead of RSA-2048.")
)
@pass_app
def keys_dkim(lazy: _Lazy, domain: str, selector: str, ed25519_key: bool) -> None:
    """Create a DKIM key in the data dir and print the DNS TXT record to publish."""
    from adieu.mail import dkim

    if ed25519_key:
        path = dkim.key_path(lazy.app.settings.data_dir, selector, ed25519_key=True)
        name = f"{selector}-ed25519"
    else:
        path = dkim.key_path(lazy.app.settings.data_dir, selector)
        name = selector
    key = dkim.create_key(path, ed25519_key=ed25519_key)
    click.echo(_("Created {path}. Publish this DNS record:").format(path=path))
    click.echo(dkim.dns_record(domain, name, key))
    click.echo(
        _("Then set ADIEU_DKIM_DOMAIN={domain} and ADIEU_DKIM_SELECTOR={selector}.").format(
            domain=domain, selector=selector
        )
    )


@keys_.command("rotate")
@pass_app
def keys_rotate(lazy: _Lazy) -> None:
    """Add a token key; new links use it, old links keep working."""
    ring = keys.rotate(lazy.app.settings.key_path)
    click.echo(
        _("Added token key {kid}; {count} keys open links.").format(
            kid=ring.current_id, count=len(ring.token_keys)
        )
    )


# The operator's commands (apikey, report, webhooks) live in their own module.
from adieu import cli_operator  # noqa: E402, F401  (registers on ``main``)
