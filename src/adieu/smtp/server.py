"""Running an SMTP (or LMTP) door: one runner for the relay and the inbound
listener, the listen-address parsers they share, and aiosmtpd's server with
fast paths for plain addresses and for reading a message (DATA)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import signal
import socket
from collections.abc import Callable, Sequence

from aiosmtpd.smtp import MISSING, SMTP, _DataState

from adieu.errors import InvalidInput
from adieu.processes import check_free, listening_socket, run_workers

_PLAIN_PATH = re.compile(r"\s*<((?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+)?)>(.*)", re.S)

#: aiosmtpd's own logger: the messages its reader logs are logged the same.
_aiosmtpd_log = logging.getLogger("mail.log")


def data_verdict(stuffed: bytes, whole: bool, limit: int, line_limit: int) -> _DataState:
    """aiosmtpd's verdict on a message's DATA (``stuffed``: the lines as sent,
    dots still stuffed, each with its CRLF), reached as aiosmtpd reaches it
    line by line: a line beyond its stream limit (``line_limit``, the same
    number) is too long; the bytes so far beyond ``limit`` (when not 0) are
    too much; a line beyond ``line_limit`` with its CRLF is too long. The
    first of these decides.

    When not ``whole``, ``stuffed`` is the beginning of a longer DATA, more
    than ``limit + line_limit + 2`` bytes: enough to decide (the line that
    goes beyond ``limit`` starts within ``limit`` bytes, so it either ends
    here or is too long).
    """
    lines = stuffed.split(b"\r\n")
    rest = lines.pop()  # b"" for whole lines; else the beginning of a line
    if (
        whole
        and (not limit or len(stuffed) <= limit)
        and max(map(len, lines), default=0) + 2 <= line_limit
    ):
        return _DataState.NOMINAL  # the usual case, without a loop over the lines
    size = 0
    for line in lines:
        length = len(line)
        if length > line_limit:
            return _DataState.TOO_LONG
        size += length + 2
        if limit and size > limit:
            return _DataState.TOO_MUCH
        if length + 2 > line_limit:
            return _DataState.TOO_LONG
    if len(rest) > line_limit:
        return _DataState.TOO_LONG
    return _DataState.NOMINAL if whole else _DataState.TOO_MUCH


class FastPathSMTP(SMTP):
    """aiosmtpd's server with fast paths for plain ``<local@domain>`` paths
    and for reading DATA.

    aiosmtpd parses every MAIL and RCPT path with the e-mail header parser
    (and defines a class per call); for a plain dot-atom address the result
    is the text between the brackets, which is what this returns. Anything
    else goes to aiosmtpd's own parser. DATA is read in blocks rather than
    a line at a time, to the same result (``smtp_DATA``).
    """

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        match = _PLAIN_PATH.fullmatch(arg)
        if match is None or "(" in match.group(2):  # comments: let aiosmtpd read them
            return super()._getaddr(arg)
        address, rest = match.group(1), match.group(2)
        if not address:  # the null path, as aiosmtpd gives it
            return "<>", rest
        return address, rest.lstrip(" \t")

    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA, with the message read in blocks up to its end
        rather than a line at a time (a coroutine step, a log call and a
        copy per line): the same end (a line of one dot), the same dots
        removed, the same refusals of too long a line (500) and too much
        data (552), decided by the same rules (``data_verdict``), and not a
        byte read past the end. A handler without ``handle_DATA``, or a
        server that decodes the data, is served by aiosmtpd's own."""
        if self._decode_data or "DATA" not in self._handle_hooks:
            await super().smtp_DATA(arg)
            return
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            stuffed, whole = await self._read_data()
        except asyncio.CancelledError:
            _aiosmtpd_log.info("Connection lost during DATA")
            self._writer.close()
            raise
        limit = self.data_size_limit or 0
        state = data_verdict(stuffed, whole, limit, self.line_length_limit)
        if state is _DataState.TOO_LONG:
            await self.push("500 Line too long (see RFC5321 4.5.3.1.6)")
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            return
        if state is _DataState.TOO_MUCH:
            await self.push("552 Error: Too much mail data")
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            return
        # RFC 5321 §4.5.2: the first dot of a line that starts with one goes.
        if stuffed.startswith(b"."):
            stuffed = stuffed[1:]
        content = stuffed.replace(b"\r\n.", b"\r\n")
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push("250 OK" if status is MISSING else status)

    async def _read_data(self) -> tuple[bytes, bool]:
        """The DATA as sent, up to the line of one dot (left out), and
        whether it is whole: past ``data_size_limit`` and a line more, the
        rest is read to the end and dropped (as aiosmtpd keeps nothing of a
        message it refuses).

        The end is ``.<CRLF>`` at the start of a line: the stream is read to
        each ``.<CRLF>`` (or in pieces of the reader's limit when none comes),
        and the two bytes before tell whether a line started there (at
        first, the DATA command's own CRLF did)."""
        reader = self._reader
        limit = self.data_size_limit or 0
        keep = limit + self.line_length_limit + 2 if limit else None
        blocks: list[bytes] = []
        kept = 0
        whole = True
        before = b"\r\n"
        while True:
            try:
                block = await reader.readuntil(b".\r\n")
                end = (before + block)[-5:] == b"\r\n.\r\n"
            except asyncio.LimitOverrunError as exc:
                block = await reader.readexactly(exc.consumed)
                end = False
            if end:
                block = block[:-3]
            if whole:
                blocks.append(block)
                kept += len(block)
                if keep is not None and kept > keep:
                    whole = False
            if end:
                break
            before = (before + block)[-2:]
        stuffed = b"".join(blocks)
        return stuffed, whole


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
