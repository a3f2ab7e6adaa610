"""Mail: ``link``, ``stamp``, ``lint``, and the two SMTP doors, ``relay`` and ``inbound``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from adieu.cli.options import (
    _read_message,
    _when,
    category_option,
    say,
    serving,
    workers_option,
)
from adieu.cli.root import _Lazy, pass_app
from adieu.errors import EX_TEMPFAIL, AdieuError
from adieu.i18n import _


def _page_language(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A language the pages are written in, or a region of one (``en-GB``
    reads English, ``pt-AO`` European Portuguese); anything else is refused
    rather than quietly shown in the default language."""
    if not value:
        return value
    from adieu.errors import InvalidInput
    from adieu.i18n import available, negotiate, tag
    from adieu.tokens import check_locale

    try:
        check_locale(value)
    except InvalidInput as exc:
        raise click.BadParameter(str(exc)) from None
    # With no catalog for ``value``, negotiation falls back to its default:
    # asked with two different defaults, it answers the same only if one serves it.
    have = available()
    if len({negotiate(value, default=fallback) for fallback in have[:2]}) != 1:
        raise click.BadParameter(
            _(
                "the pages are not written in {tag!r}. Choose one of {languages}"
                " (or a region of one, such as en-GB or pt-BR)."
            ).format(tag=value, languages=", ".join(tag(locale) for locale in have))
        )
    return value


@click.command()
@click.argument("address")
@click.option("--topic", default=None, help=_("Leave only this topic (default: all marketing)."))
@click.option("--campaign", default=None, help=_("Campaign id carried in the link."))
@click.option(
    "--locale",
    default=None,
    callback=_page_language,
    help=_("Language of the pages, e.g. sv or pt-BR."),
)
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


@click.command()
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


@click.command()
@click.argument("message", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help=_("Print JSON."))
def lint(message: Path, as_json: bool) -> None:
    """Check that a message or template lets people leave easily.

    It looks for a visible, readable unsubscribe link in every text and HTML
    part, and for the List-Unsubscribe and one-click headers (RFC 2369,
    RFC 8058) signed by DKIM. Exits 1 when something must be fixed.
    """
    from adieu.mail.lint import ERROR, report
    from adieu.mail.lint import lint as check

    findings = check(_read_message(message))
    if as_json:
        click.echo(json.dumps(report(findings)))
    elif not findings:
        click.echo(_("No findings: the unsubscribe headers and links are in order."))
    for f in [] if as_json else findings:
        # The standard a finding comes from, by name; Adieu's own rules need none.
        source = f"[{f.rule}] " if f.rule.startswith("RFC") else ""
        click.echo(f"{f.severity}: {source}{f.message}")
    if any(f.severity == ERROR for f in findings):
        sys.exit(1)


@click.command()
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

    from adieu.processes import check_free
    from adieu.service import Adieu
    from adieu.smtp.relay import (
        RelayConfig,
        RelayHandler,
        parse_hostport,
        parse_networks,
        run_relay,
    )
    from adieu.smtp.server import bind

    app = lazy.app
    settings = app.settings
    app.ledger.send_scope(topic)
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
        max_recipients=settings.relay_max_recipients,
        user=settings.relay_user,
        password=settings.relay_password,
        upstream_user=settings.upstream_user,
        upstream_password=settings.upstream_password,
        upstream_tls=settings.upstream_tls,
        upstream_ca_file=str(settings.upstream_ca_file) if settings.upstream_ca_file else None,
    )
    metrics_where = parse_hostport(metrics_at, 9125) if metrics_at else None
    # Said only once the ports are known to be free and the relay's own port
    # is open: a busy port is one error, never a banner and then an error, and
    # a client that connects on reading the banner is queued, not refused.
    if metrics_where is not None:
        for index in range(max(workers, 1)):
            check_free(metrics_where[0], metrics_where[1] + index)
    bind(host, port)
    click.echo(
        _("Relaying from {host}:{port} to {upstream}.").format(
            host=host, port=port, upstream=upstream
        )
    )
    settings_for_workers = app.settings
    app.close()  # nothing opened here may cross into the worker processes

    def make_handler() -> RelayHandler:
        return RelayHandler(Adieu(settings_for_workers), config)

    serving()
    run_relay(
        make_handler,
        host,
        port,
        tls=tls,
        size_limit=size_limit,
        workers=workers,
        metrics_at=metrics_where,
    )


@click.command()
@click.argument("source", required=False)
@click.argument("recipients", nargs=-1)
@click.option("--listen", default=None, help=_("HOST:PORT to receive reports on (SMTP)."))
@click.option("--lmtp", is_flag=True, help=_("Speak LMTP instead of SMTP on --listen."))
@click.option(
    "--recipient",
    "recipient",
    multiple=True,
    help=_(
        "The envelope recipient, for a pipe transport (finds VERP addresses, return-path"
        " and mailto tokens)."
    ),
)
@pass_app
def inbound(
    lazy: _Lazy,
    source: str | None,
    recipients: tuple[str, ...],
    listen: str | None,
    lmtp: bool,
    recipient: tuple[str, ...],
) -> None:
    """Record mailto unsubscribes, complaints and bounces sent back by mail.

    `adieu inbound - [RECIPIENT]...` reads one message on stdin, for each
    envelope recipient given (a Postfix or Exim pipe: exit 0 done or kept
    for review, 75 try later); `--listen HOST:PORT` runs an SMTP listener;
    `adieu inbound list-unknown` lists what could not be classified and the
    reports that were not trusted (ADIEU_INBOUND_TRUST), with why.
    """
    from adieu.service import Adieu

    if source == "-":
        _inbound_pipe(lazy, [*recipient, *recipients])
        return
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
        from adieu.smtp.server import bind, parse_hostport

        host, port = parse_hostport(listen, 2526)
        bind(host, port)  # open before saying so: a busy port is one error
        click.echo(_("Receiving reports on {host}:{port}.").format(host=host, port=port))
        settings = app.settings
        app.close()  # nothing opened here may cross into the listener
        serving()
        run_inbound(lambda: Adieu(settings), host, port, lmtp=lmtp)
        return
    raise click.UsageError(_("Give - (a message on stdin), --listen HOST:PORT or list-unknown."))


def _inbound_pipe(lazy: _Lazy, recipients: list[str]) -> None:
    """`adieu inbound -`: one message on stdin, run by an MTA's pipe transport.

    The exit status is what the MTA acts on (sysexits.h): 0 recorded or kept
    for review (a message that cannot even be parsed is kept), and 75 for
    everything else it may run into (settings, permissions, the key file, the
    ledger, nowhere to keep it, an error of Adieu's own), so the MTA keeps the
    message and tries again: nothing here makes it bounce a message back to
    the person who sent it.
    """
    from adieu.errors import storage_trouble
    from adieu.feedback.intake import Intake

    results = []
    try:
        raw = sys.stdin.buffer.read()
        intake = Intake(lazy.app)
        if recipients:
            results = intake.process_each(raw, list(dict.fromkeys(recipients)))
        else:
            results = [intake.process(raw)]
    except OSError as exc:  # a file Adieu needs: say which
        where = exc.filename or ""
        why = f"{exc.strerror or type(exc).__name__}: {where}" if where else str(exc)
        say(_("Cannot record this now ({what}); try again later.").format(what=why))
        sys.exit(EX_TEMPFAIL)
    except AdieuError as exc:
        problems = getattr(exc, "problems", None) or [str(exc)]
        say(_("Cannot record this now ({what}); try again later.").format(what=" ".join(problems)))
        sys.exit(EX_TEMPFAIL)
    except Exception as exc:  # the ledger is unavailable, or a fault: the MTA keeps the message
        if not storage_trouble(exc):
            import traceback

            traceback.print_exc(file=sys.stderr)
        say(_("Cannot record this now ({what}); try again later.").format(what=type(exc).__name__))
        sys.exit(EX_TEMPFAIL)
    for result in results:
        for what, who in result.applied:
            click.echo(f"{what}\t{who}")
        for what, who in result.unverified:
            click.echo(f"unverified\t{what}\t{who}")
    for review_id, note in dict.fromkeys(
        (r.review_id, r.review_note) for r in results if r.review_id is not None
    ):
        # The queue's note may end by saying it was kept; this line says so already.
        why = note.removesuffix("; kept for review")
        click.echo(_("Kept for review as #{id}: {note}").format(id=review_id, note=why))
    if not any(r.applied or r.unverified or r.review_id is not None for r in results):
        # Nothing recorded and nothing kept: say so, and why, rather than nothing.
        first = results[0].classification if results else None
        if first is not None and first.kind == "auto_reply":
            click.echo(_("An automatic reply (such as out of office): nothing to record."))
        elif first is not None and first.note:
            click.echo(_("Nothing to record: {why}.").format(why=first.note))
        else:
            click.echo(_("Nothing to record."))
    if any(r.classification.kind == "unusable" and r.review_id is None for r in results):
        # Unreadable and not kept (nowhere to keep it): the MTA keeps it meanwhile.
        sys.exit(EX_TEMPFAIL)
