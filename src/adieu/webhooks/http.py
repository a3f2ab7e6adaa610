"""A small HTTP/1.1 client for one job: POST a JSON body, read the status.

Webhook delivery needs many small concurrent POSTs to a few receivers. General
clients spend most of their time in connection-pool bookkeeping at that size
(httpx measured ~600 POSTs/s at 32 concurrent requests on the benchmark
machine, ~1,300/s at best); this one keeps idle keep-alive connections per
origin and does nothing else, which is what makes ``bench/api.py``'s webhook
figure several times higher. It speaks HTTP/1.1 over TCP or TLS (certificates
verified), reads Content-Length, chunked and read-until-close bodies (and
throws them away, up to a cap), never follows redirects, and bounds every
exchange with a timeout.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024
_IDLE_PER_ORIGIN = 64


class PostError(Exception):
    """The exchange failed before a status line came back (or it was garbled)."""


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
        if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in path + parts.hostname):
            raise PostError("spaces or control characters in the URL")
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
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
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
            except (ConnectionError, asyncio.IncompleteReadError, PostError) as exc:
                writer.close()
                if reused and not isinstance(exc, PostError):
                    continue
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
            return await asyncio.open_connection(
                target.host, target.port, ssl=context, limit=MAX_HEAD
            )
        except OSError as exc:
            raise PostError(f"cannot connect: {exc}") from None

    async def _response(self, reader: asyncio.StreamReader) -> tuple[int, bool]:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.LimitOverrunError:
                raise PostError("response head too large") from None
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
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
            if not length.isdigit() or int(length) > MAX_BODY:
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
            try:
                size = int(size_line, 16)
            except ValueError:
                raise PostError("bad chunk size") from None
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
