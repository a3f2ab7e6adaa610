"""Running an SMTP (or LMTP) door: one runner for the relay and the inbound
listener, the listen-address parsers they share, and aiosmtpd's server with a
fast path for plain addresses."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import signal
import socket
from collections.abc import Callable, Sequence

from aiosmtpd.smtp import SMTP

from adieu.errors import InvalidInput
from adieu.processes import check_free, listening_socket, run_workers

_PLAIN_PATH = re.compile(r"\s*<((?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+)?)>(.*)", re.S)


class FastPathSMTP(SMTP):
    """aiosmtpd's server with a fast path for plain ``<local@domain>`` paths.

    aiosmtpd parses every MAIL and RCPT path with the e-mail header parser
    (and defines a class per call); for a plain dot-atom address the result
    is the text between the brackets, which is what this returns. Anything
    else goes to aiosmtpd's own parser.
    """

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        match = _PLAIN_PATH.fullmatch(arg)
        if match is None or "(" in match.group(2):  # comments: let aiosmtpd read them
            return super()._getaddr(arg)
        address, rest = match.group(1), match.group(2)
        if not address:  # the null path, as aiosmtpd gives it
            return "<>", rest
        return address, rest.lstrip(" \t")


async def serve(protocol: Callable[[], asyncio.Protocol], sock: socket.socket) -> None:
    """Serve connections on ``sock`` until SIGTERM or SIGINT, then finish cleanly."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(protocol, sock=sock)
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, server.close)
    async with server:
        with contextlib.suppress(asyncio.CancelledError):
            await server.serve_forever()


def run(
    worker: Callable[[int, socket.socket], None],
    host: str,
    port: int,
    *,
    workers: int = 1,
) -> None:
    """Run ``worker(index, sock)`` in ``workers`` processes sharing ``host:port``.

    The port is checked before anything starts, so a busy port is one clear
    error. Each process builds what it needs itself (database connections are
    never shared across a fork).
    """
    shared = workers > 1
    check_free(host, port)

    def run_one(index: int) -> None:
        sock = listening_socket(host, port, shared=shared)
        try:
            worker(index, sock)
        finally:
            sock.close()

    run_workers(workers, run_one)


def parse_hostport(value: str, default_port: int) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host:
        return value, default_port
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise InvalidInput(f"{value!r} is not HOST:PORT.") from None


def parse_networks(values: Sequence[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    try:
        return [ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip()]
    except ValueError as exc:
        raise InvalidInput(f"Not a network: {exc}.") from None
