"""The ``adieu`` command. Each command turns flags into one call on ``Adieu``.

``root`` is the group and its error map; ``options`` what commands share; one
module per family of commands, each registered here with ``add_command``.
"""

from __future__ import annotations

from adieu.cli import consent, lists, mail, operator, serve, setup
from adieu.cli.root import main

for command in (
    serve.serve,
    setup.topic,
    mail.link,
    consent.unsubscribe,
    consent.resubscribe,
    consent.status,
    consent.erase,
    lists.filter_,
    lists.import_,
    lists.export,
    mail.stamp,
    mail.lint,
    mail.relay,
    mail.inbound,
    setup.db,
    setup.keys_,
    operator.apikey,
    operator.report,
    operator.webhooks,
):
    main.add_command(command)

__all__ = ["main"]
