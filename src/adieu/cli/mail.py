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
from adieu.errors import EX_DATAERR, EX_TEMPFAIL, AdieuError
from adieu.i18n import _


@click.command()
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
    # Said only once the ports are known to be free: a busy port is one error,
    # never a banner and then an error.
    check_free(host, port)
    if metrics_where is not None:
        for index in range(max(workers, 1)):
            check_free(metrics_where[0], metrics_where[1] + index)
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
@click.option("--listen", default=None, help=_("HOST:PORT to receive reports on (SMTP)."))
@click.option("--lmtp", is_flag=True, help=_("Speak LMTP instead of SMTP on --listen."))
@click.option(
    "--recipient",
    default=None,
    help=_(
        "The envelope recipient, for a pipe transport (finds VERP addresses, return-path"
        " and mailto tokens)."
    ),
)
@pass_app
def inbound(
    lazy: _Lazy, source: str | None, listen: str | None, lmtp: bool, recipient: str | None
) -> None:
    """Record mailto unsubscribes, complaints and bounces sent back by mail.

    `adieu inbound -` reads one message on stdin (a Postfix or Exim pipe:
    exit 0 done, 75 try later, 65 unusable); `--listen HOST:PORT` runs an SMTP
    listener; `adieu inbound list-unknown` lists what could not be classified
    and the reports that were not trusted (ADIEU_INBOUND_TRUST), with why.
    """
    from adieu.feedback.intake import Intake
    from adieu.service import Adieu

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
        from adieu.processes import check_free
        from adieu.smtp.inbound import run_inbound
        from adieu.smtp.server import parse_hostport

        host, port = parse_hostport(listen, 2526)
        check_free(host, port)  # before saying so: a busy port is one error
        click.echo(_("Receiving reports on {host}:{port}.").format(host=host, port=port))
        settings = app.settings
        app.close()  # nothing opened here may cross into the listener
        serving()
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
        say(_("Cannot record this now ({what}); try again later.").format(what=type(exc).__name__))
        sys.exit(EX_TEMPFAIL)
    kind = result.classification.kind
    for what, who in result.applied:
        click.echo(f"{what}\t{who}")
    for what, who in result.unverified:
        click.echo(f"unverified\t{what}\t{who}")
    if result.review_id is not None:
        click.echo(
            _("Kept for review as #{id}: {note}").format(
                id=result.review_id, note=result.review_note
            )
        )
    if kind == "unusable":
        sys.exit(EX_DATAERR)
