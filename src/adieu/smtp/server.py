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


_bound: dict[tuple[str, int], socket.socket] = {}


def bind(host: str, port: int) -> None:
    """Open the listening socket for ``host:port`` now, in this process, so
    that a banner printed next is true: a client may connect at once (the
    kernel queues it until the door serves). ``run`` for the same host and
    port then serves on this socket, and every worker process inherits it.
    A busy port is InvalidInput in one sentence."""
    try:
        sock = listening_socket(host, port, shared=False)
    except OSError as exc:
        raise InvalidInput(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.") from None
    _bound[(host, port)] = sock


def run(
    worker: Callable[[int, socket.socket], None],
    host: str,
    port: int,
    *,
    workers: int = 1,
) -> None:
    """Run ``worker(index, sock)`` in ``workers`` processes sharing ``host:port``.

    A socket opened beforehand by ``bind`` is used as it is: the worker
    processes share it (each accepts from the same queue). Otherwise the port
    is checked before anything starts, so a busy port is one clear error, and
    each process opens its own with SO_REUSEPORT. Each process builds what it
    needs itself (database connections are never shared across a fork).
    """
    bound = _bound.pop((host, port), None)
    if bound is not None:
        try:
            run_workers(workers, lambda index: worker(index, bound))
        finally:
            bound.close()
        return
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
    """``HOST:PORT``, ``[IPv6]:PORT``, or a host alone (``default_port``): the
    host (an IP address or a host name) and a port from 1 to 65535, or
    InvalidInput saying in one sentence what is wrong."""
    text = value.strip()
    port_text: str | None
    if text.startswith("["):
        host, closed, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else None
        if not closed or (rest and port_text is None):
            raise InvalidInput(f"{value!r} is not HOST:PORT (or [IPv6 address]:PORT).")
    elif text.count(":") > 1:  # an IPv6 address alone
        host, port_text = text, None
    else:
        host, colon, port_text = text.partition(":")
        port_text = port_text if colon else None
    port = default_port
    if port_text is not None:
        if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
            raise InvalidInput(f"{value!r}: the port must be a number from 1 to 65535.")
        port = int(port_text)
    if not host:
        raise InvalidInput(
            f"{value!r} names no host: give one, such as 127.0.0.1:{port} (0.0.0.0 for all)."
        )
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            name = host.encode("idna").decode("ascii")
        except UnicodeError:
            name = ""
        if not re.fullmatch(r"(?=.{1,253}\Z)[A-Za-z0-9_-]{1,63}(\.[A-Za-z0-9_-]{1,63})*\.?", name):
            raise InvalidInput(
                f"{value!r}: {host!r} is not an IP address or a host name."
            ) from None
    return host, port


def parse_networks(values: Sequence[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    try:
        return [ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip()]
    except ValueError as exc:
        raise InvalidInput(f"Not a network: {exc}.") from None
