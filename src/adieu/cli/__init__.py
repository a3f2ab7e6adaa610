"""The ``adieu`` command. Each command turns flags into one call on ``Adieu``.

``root`` is the group and its error map; ``options`` what commands share; one
module per family of commands. The group knows where each command lives and
imports only the one that runs (``--help`` imports them all to list them), as
in click's "lazily loading subcommands".
"""

from __future__ import annotations

from adieu.cli.root import main

#: Every command, as ``module:function`` under ``adieu.cli``.
COMMANDS = {
    "serve": "serve:serve",
    "topic": "setup:topic",
    "link": "mail:link",
    "unsubscribe": "consent:unsubscribe",
    "resubscribe": "consent:resubscribe",
    "status": "consent:status",
    "erase": "consent:erase",
    "filter": "lists:filter_",
    "import": "lists:import_",
    "export": "lists:export",
    "stamp": "mail:stamp",
    "lint": "mail:lint",
    "relay": "mail:relay",
    "inbound": "mail:inbound",
    "db": "setup:db",
    "keys": "setup:keys_",
    "apikey": "operator:apikey",
    "report": "operator:report",
    "webhooks": "operator:webhooks",
    "esp": "esp:esp",
}
main.lazy(COMMANDS)

__all__ = ["COMMANDS", "main"]
