"""``adieu serve``: the web service (landing page, one-click, preferences, API)."""

from __future__ import annotations

import gc

import click

from adieu.cli.options import serving, workers_option
from adieu.cli.root import _Lazy, pass_app
from adieu.i18n import _

DEMO_ADDRESS = "demo@example.com"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help=_("Interface to listen on."))
@click.option("--port", default=8000, show_default=True, type=int, help=_("Port to listen on."))
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
    uvicorn.run(web, host=host, port=port, log_level="warning", access_log=False)
