"""Running a door in several processes that share one port.

Python runs one core's worth of work per process. ``adieu serve --workers N``
and ``adieu relay --workers N`` fork N processes; each opens its own listening
socket on the same port with ``SO_REUSEPORT``, so the kernel spreads new
connections across them evenly (with one shared socket, the process that
wakes first tends to take every connection of a burst, and a client with a
few keep-alive connections ends up on one core). Each process builds its own
state after the fork: database connections are never shared.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections.abc import Callable

from adieu.errors import InvalidInput, WorkerFailed


def check_free(host: str, port: int) -> None:
    """Fail early, in the parent, when something else holds the port."""
    try:
        listening_socket(host, port, shared=False).close()
    except OSError as exc:
        raise InvalidInput(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.") from None


def listening_socket(host: str, port: int, *, shared: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if shared:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except BaseException:
        sock.close()  # a port that is busy leaves no socket behind
        raise
    return sock


def run_workers(workers: int, run_one: Callable[[int], None]) -> None:
    """``run_one(index)`` in this process (one worker) or in ``workers`` forked
    children; SIGTERM and SIGINT are passed on, and this returns once all ended.

    A worker that fails says why on standard error and stops the others: a
    door running on fewer workers than asked for is not what was asked for.
    The failure is then this call's own (``WorkerFailed``)."""
    if workers <= 1 or not hasattr(os, "fork"):
        run_one(0)
        return
    children = []
    for index in range(workers):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            status = 0
            try:
                run_one(index)
            except (KeyboardInterrupt, SystemExit):
                pass
            except BaseException as exc:
                status = 1
                with contextlib.suppress(Exception):
                    os.write(2, f"Worker {index + 1} stopped: {exc}\n".encode(errors="replace"))
            os._exit(status)
        children.append(pid)

    def forward(signum: int, frame: object) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    failed = 0
    waiting = set(children)
    while waiting:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        if pid not in waiting:
            continue
        waiting.discard(pid)
        if os.waitstatus_to_exitcode(status) != 0 and not failed:
            failed += 1
            forward(signal.SIGTERM, None)
    if failed:
        raise WorkerFailed("A worker process stopped with an error, so all were stopped.")
