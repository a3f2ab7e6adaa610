"""A small HTTP/1.1 client for one job: POST a JSON body, read the status.

Webhook delivery needs many small concurrent POSTs to a few receivers. General
clients spend most of their time in connection-pool bookkeeping at that size
(httpx measured ~600 POSTs/s at 32 concurrent requests on the benchmark
machine, ~1,300/s at best); this one keeps idle keep-alive connections per
origin and does nothing else, which is what makes ``bench/api.py``'s webhook
figure several times higher. It speaks HTTP/1.1 over TCP or TLS (certificates
verified), reads Content-Length, chunked and read-until-close bodies (and
throws them away, up to a cap), never follows redirects, and bounds every
exchange with a timeout. Whatever goes wrong on the wire (refused, reset, TLS,
a garbled or oversized answer) is a ``PostError`` or a ``TimeoutError``.

With ``private_networks=False`` it connects only to public addresses: the
host name is resolved here, every address it resolves to is checked (private,
loopback, link-local and other non-public ranges are refused), and the
connection goes to the checked address, so a name cannot resolve to another
one between the check and the connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from dataclasses import dataclass, field
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024
_IDLE_PER_ORIGIN = 64


class PostError(Exception):
    """The exchange failed before a status line came back (or it was garbled)."""


def is_public(address: str) -> bool:
    """Whether an IP address is one a webhook may reach when private networks
    are refused: globally routable, not multicast (an IPv4-mapped IPv6 address
    counts as its IPv4 address)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True, slots=True)
class Target:
    tls: bool
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> Target:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise PostError(f"bad URL: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PostError("only http:// and https:// URLs")
        tls = parts.scheme == "https"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if any(ord(c) <= 0x20 or ord(c) >= 0x7F for c in path + parts.hostname):
            raise PostError("spaces, control or non-ASCII characters in the URL")
        return cls(tls, parts.hostname, port or (443 if tls else 80), path)

    @property
    def origin(self) -> tuple[bool, str, int]:
        return (self.tls, self.host, self.port)

    @property
    def host_header(self) -> str:
        default = 443 if self.tls else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


@dataclass
class Poster:
    timeout: float = 10.0
    user_agent: str = "Adieu"
    private_networks: bool = True
    _idle: dict[tuple[bool, str, int], list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = (
        field(default_factory=dict)
    )
    _tls: ssl.SSLContext | None = None

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST ``body``; the response status. Raises ``PostError`` or ``TimeoutError``."""
        target = Target.parse(url)
        return await asyncio.wait_for(self._exchange(target, body, headers), self.timeout)

    async def _exchange(self, target: Target, body: bytes, headers: dict[str, str]) -> int:
        lines = [
            f"POST {target.path} HTTP/1.1",
            f"Host: {target.host_header}",
            f"User-Agent: {self.user_agent}",
            f"Content-Length: {len(body)}",
            "Connection: keep-alive",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        try:
            request = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body
        except UnicodeEncodeError:
            raise PostError("a request header is not ASCII") from None
        idle = self._idle.setdefault(target.origin, [])
        # A kept connection may have been closed by the server meanwhile: then
        # the request is sent once more on a fresh one (nothing was read yet).
        for reused in (True, False):
            if reused and not idle:
                continue
            reader, writer = idle.pop() if reused else await self._connect(target)
            try:
                writer.write(request)
                await writer.drain()
                status, keep = await self._response(reader)
            except (
                OSError,  # refused, reset, TLS (ssl.SSLError)…
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                ValueError,
                PostError,
            ) as exc:
                writer.close()
                if reused and isinstance(exc, ConnectionError | asyncio.IncompleteReadError):
                    continue
                if isinstance(exc, PostError):
                    raise
                raise PostError(f"{type(exc).__name__}: {exc}") from None
            except BaseException:
                writer.close()
                raise
            if keep and len(idle) < _IDLE_PER_ORIGIN:
                idle.append((reader, writer))
            else:
                writer.close()
            return status
        raise PostError("no connection")  # pragma: no cover - the loop always returns

    async def _connect(self, target: Target) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        context = None
        if target.tls:
            if self._tls is None:
                self._tls = ssl.create_default_context()
            context = self._tls
        try:
            if self.private_networks:
                return await asyncio.open_connection(
                    target.host, target.port, ssl=context, limit=MAX_HEAD
                )
            address = await self._public_address(target)
            return await asyncio.open_connection(
                address,
                target.port,
                ssl=context,
                server_hostname=target.host if context else None,
                limit=MAX_HEAD,
            )
        except OSError as exc:
            raise PostError(f"cannot connect: {exc}") from None

    async def _public_address(self, target: Target) -> str:
        """The address to connect to, refusing a host that resolves to any
        non-public one."""
        infos = await asyncio.get_running_loop().getaddrinfo(
            target.host, target.port, type=socket.SOCK_STREAM
        )
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        refused = [a for a in addresses if not is_public(a)]
        if refused or not addresses:
            raise PostError(
                f"refused: {target.host} resolves to {refused[0] if refused else 'nothing'},"
                " which is not a public address (ADIEU_WEBHOOK_PRIVATE_NETWORKS is false)"
            )
        return addresses[0]

    async def _response(self, reader: asyncio.StreamReader) -> tuple[int, bool]:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.LimitOverrunError:
                raise PostError("response head too large") from None
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not _digits(parts[1]):
                raise PostError("not an HTTP/1.x response")
            status = int(parts[1])
            if status >= 200 or status == 101:
                break  # 1xx (100 Continue, 103) are followed by the real answer
        fields: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                fields[name.strip().lower()] = value.strip()
        keep = parts[0] == "HTTP/1.1" and fields.get("connection", "").lower() != "close"
        if status in (204, 304) or status < 200:
            return status, keep
        if "chunked" in fields.get("transfer-encoding", "").lower():
            await self._skip_chunked(reader)
        elif "content-length" in fields:
            length = fields["content-length"]
            if not _digits(length) or int(length) > MAX_BODY:
                raise PostError("bad or too large Content-Length")
            await reader.readexactly(int(length))
        else:
            await reader.read(MAX_BODY)  # the body runs until the server closes
            keep = False
        return status, keep

    async def _skip_chunked(self, reader: asyncio.StreamReader) -> None:
        total = 0
        while True:
            size_line = (await reader.readuntil(b"\r\n")).split(b";")[0].strip()
            if not size_line or len(size_line) > 16 or size_line.strip(b"0123456789abcdefABCDEF"):
                raise PostError("bad chunk size")
            size = int(size_line, 16)
            total += size
            if total > MAX_BODY:
                raise PostError("response body too large")
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return
            await reader.readexactly(size + 2)

    def close(self) -> None:
        for connections in self._idle.values():
            for _, writer in connections:
                writer.close()
        self._idle.clear()


def _digits(text: str) -> bool:
    """ASCII digits only ("²".isdigit() is true, and int() refuses it)."""
    return text.isascii() and text.isdigit() and len(text) <= 18
