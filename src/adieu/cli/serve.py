"""``adieu serve``: the web service (landing page, one-click, preferences, API)."""

from __future__ import annotations

import gc
import ipaddress
import re

import click

from adieu.cli.options import serving, workers_option
from adieu.cli.root import _Lazy, pass_app
from adieu.i18n import _

DEMO_ADDRESS = "demo@example.com"


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
@pass_app
def serve(lazy: _Lazy, host: str, port: int, workers: int) -> None:
    """Run the web service (landing page, one-click, preferences)."""
    import uvicorn

    from adieu.ledger.database import describe
    from adieu.processes import check_free, listening_socket, run_workers
    from adieu.service import Adieu
    from adieu.web.app import create_app

    app = lazy.app
    if "base_url" not in app.settings.given:
        # Links point at this server unless ADIEU_BASE_URL names a public origin.
        app.settings = app.settings.replace(base_url=f"http://{host}:{port}")
    app.ledger  # noqa: B018  (creates the data dir and the database on first start)
    link = app.link(DEMO_ADDRESS)  # and the keys
    where = describe(app.settings.sqlalchemy_url)
    # Said only once the port is known to be free: a busy port is one error,
    # never a banner and then an error.
    check_free(host, port)
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
            config = uvicorn.Config(web, log_level="warning", access_log=False, proxy_headers=False)
            uvicorn.Server(config).run(sockets=[sock])

        serving()
        run_workers(workers, run_one)
        return
    web = create_app(app)
    # Everything built so far lives as long as the process: keep it out of the
    # cyclic garbage collector's full passes, which otherwise show as latency
    # spikes under load.
    gc.collect()
    gc.freeze()
    serving()
    # X-Forwarded-For and -Proto: the app believes them from ADIEU_TRUSTED_PROXIES
    # only (adieu.web.app); uvicorn's own default would trust any local client.
    uvicorn.run(
        web, host=host, port=port, log_level="warning", access_log=False, proxy_headers=False
    )
