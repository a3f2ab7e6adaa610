"""``adieu serve``: the web service (landing page, one-click, preferences, API)."""

from __future__ import annotations

import gc
import ipaddress
import re
from typing import TYPE_CHECKING

import click

from adieu.cli.options import serving, workers_option
from adieu.cli.root import _Lazy, pass_app
from adieu.errors import InvalidInput
from adieu.i18n import _

if TYPE_CHECKING:
    import socket

    from starlette.types import ASGIApp

DEMO_ADDRESS = "demo@example.com"
#: A public origin, as an example of what ADIEU_BASE_URL may say.
EXAMPLE_PUBLIC_ORIGIN = "https://unsubscribe.example.com"


def origin(host: str, port: int) -> str:
    """The origin a browser on this machine reaches ``host:port`` at: an IPv6
    address in brackets (RFC 3986), and "every interface" (0.0.0.0, ::) as
    the loopback address, which a browser can open."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"http://{host}:{port}"
    if address.is_unspecified:
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    shown = f"[{address}]" if address.version == 6 else str(address)
    return f"http://{shown}:{port}"


def every_interface(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def command_here() -> str:
    """How to run ``adieu`` again from this directory, the way this process
    was started: ``adieu`` when that is what the shell finds, otherwise the
    path it was started by (``.venv/bin/adieu``) or ``PYTHON -m adieu``."""
    import os
    import shlex
    import shutil
    import sys

    def here(path: str) -> str:
        absolute = os.path.abspath(path)
        relative = os.path.relpath(absolute)
        if relative.startswith(os.pardir):
            return shlex.quote(absolute)
        return shlex.quote(relative if os.sep in relative else os.curdir + os.sep + relative)

    started = sys.argv[0] if sys.argv else ""
    if not started or os.path.basename(started) == "__main__.py":
        return f"{here(sys.executable)} -m adieu"
    found = shutil.which("adieu")
    if found is not None:
        try:
            if os.path.samefile(found, shutil.which(started) or started):
                return "adieu"
        except OSError:
            pass
    return here(started)


def banner(
    host: str,
    listening: str,
    *,
    ledger: str,
    link: str,
    base_url_given: bool,
    elsewhere: str,
) -> list[str]:
    """What ``serve`` says once it is up: where it is, a link to try, how to
    sign in to the dashboard, and where links point when that may surprise.

    ``listening`` is this server's origin (``origin``), ``elsewhere`` the one
    other ``adieu`` commands make links for (ADIEU_BASE_URL or its default)."""
    running = _("Adieu is running at {origin}/").format(origin=listening)
    if every_interface(host):
        running += " " + _("(listening on every interface)")
    lines = [
        running,
        _("Ledger: {where}").format(where=ledger),
        _("Try the flow with a sample unsubscribe link for {address}:").format(
            address=DEMO_ADDRESS
        ),
        f"  {link}",
        _("Dashboard: {origin}/admin (sign in with a key; make one with:)").format(
            origin=listening
        ),
        f"  {command_here()} apikey create --name dashboard",
    ]
    if base_url_given:
        pass  # links point where the operator said
    elif every_interface(host):
        lines.append(
            _(
                "Links point at {origin}, which opens on this machine only: for links that"
                " open anywhere, set ADIEU_BASE_URL to where people reach this server"
                " (e.g. ADIEU_BASE_URL={example}) for serve and every other adieu command."
            ).format(origin=listening, example=EXAMPLE_PUBLIC_ORIGIN)
        )
    elif listening != elsewhere:
        lines.append(
            _(
                "Other adieu commands (link, stamp, relay) make links for {elsewhere}: run"
                " them with ADIEU_BASE_URL={origin} to make links for this server."
            ).format(elsewhere=elsewhere, origin=listening)
        )
    lines.append(_("Press Ctrl+C to stop."))
    return lines


def _listen_host(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """An IP address or a host name (resolving it is left to binding)."""
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    try:
        name = value.encode("idna").decode("ascii")
    except UnicodeError:
        name = ""
    if not re.fullmatch(r"(?=.{1,253}\Z)[A-Za-z0-9_-]{1,63}(\.[A-Za-z0-9_-]{1,63})*\.?", name):
        raise click.BadParameter(
            _("{host!r} is not an IP address or a host name.").format(host=value)
        )
    return value


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    callback=_listen_host,
    help=_("Interface to listen on."),
)
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(1, 65535),
    help=_("Port to listen on (1 to 65535)."),
)
@workers_option(_("Processes sharing the port (one core each)."))
@click.option(
    "--access-log",
    is_flag=True,
    help=_(
        "Write a line per request on standard error: time, method, path (without"
        " tokens, addresses or query), status and duration."
    ),
)
@pass_app
def serve(lazy: _Lazy, host: str, port: int, workers: int, access_log: bool) -> None:
    """Run the web service (landing page, one-click, preferences)."""
    import uvicorn

    from adieu.ledger.database import describe
    from adieu.processes import check_free, listening_socket, run_workers
    from adieu.service import Adieu
    from adieu.web.app import create_app

    def logged(web: ASGIApp) -> ASGIApp:
        from adieu.web.access_log import AccessLog

        return AccessLog(web) if access_log else web

    app = lazy.app
    listening = origin(host, port)
    elsewhere = app.settings.base
    base_url_given = "base_url" in app.settings.given
    if not base_url_given:
        # Links point at this server unless ADIEU_BASE_URL names a public origin.
        app.settings = app.settings.replace(base_url=listening)
    app.ledger  # noqa: B018  (creates the data dir and the database on first start)
    link = app.link(DEMO_ADDRESS)  # and the keys
    where = describe(app.settings.sqlalchemy_url)
    # Said only once the port is ours: a busy port is one error, never a
    # banner and then an error. One process listens on this very socket from
    # now on; workers each open their own on the shared port, known free.
    sock: socket.socket | None = None
    if workers > 1:
        check_free(host, port)
    else:
        try:
            sock = listening_socket(host, port, shared=False)
        except OSError as exc:
            why = exc.strerror or exc
            raise InvalidInput(f"Cannot listen on {host}:{port}: {why}.") from None
    for line in banner(
        host,
        listening,
        ledger=where,
        link=link.url,
        base_url_given=base_url_given,
        elsewhere=elsewhere,
    ):
        click.echo(line)
    if workers > 1:
        # Each worker builds its own app (nothing opened here crosses a fork)
        # and listens on its own socket of the shared port.
        settings = app.settings
        app.close()

        def run_one(index: int) -> None:
            sock = listening_socket(host, port, shared=True)
            web = logged(create_app(Adieu(settings)))
            gc.collect()
            gc.freeze()
            config = uvicorn.Config(web, log_level="warning", access_log=False, proxy_headers=False)
            uvicorn.Server(config).run(sockets=[sock])

        serving()
        run_workers(workers, run_one)
        return
    web = logged(create_app(app))
    # Everything built so far lives as long as the process: keep it out of the
    # cyclic garbage collector's full passes, which otherwise show as latency
    # spikes under load.
    gc.collect()
    gc.freeze()
    serving()
    # X-Forwarded-For and -Proto: the app believes them from ADIEU_TRUSTED_PROXIES
    # only (adieu.web.app); uvicorn's own default would trust any local client.
    config = uvicorn.Config(web, log_level="warning", access_log=False, proxy_headers=False)
    assert sock is not None
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        # uvicorn shuts down gracefully, then passes Ctrl+C on: a stop that
        # was asked for, not an error.
        click.echo(_("Stopped."))
