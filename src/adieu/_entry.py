"""The ``adieu`` command's entry point.

A command is a short process that imports a few hundred modules and then does
one thing. The cyclic garbage collector would walk the growing heap again and
again while they load (measured: about a tenth of ``adieu inbound -``'s start,
the cost a Postfix pipe pays per message), to find almost nothing: so it is off
for the run, and the commands that serve (``serve``, ``relay``, ``inbound
--listen``, ``webhooks run``) turn it back on before they start serving. The
library itself never touches it.
"""

from __future__ import annotations

import gc


def run() -> None:
    gc.disable()
    from adieu.cli import main

    main()
