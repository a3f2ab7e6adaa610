"""The webhook client against scripted servers: framing, keep-alive, failures,
and any bytes a receiver may send back."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adieu.webhooks.http import Poster, PostError, Target
from support import self_signed

Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(reply: Reply) -> tuple[asyncio.Server, str, list[bytes]]:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                seen.append(head + await reader.readexactly(length))
                await reply(reader, writer)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/in?x=1", seen


def run(reply: Reply, count: int = 1, timeout: float = 2) -> tuple[list[int | str], list[bytes]]:
    async def main() -> tuple[list[int | str], list[bytes]]:
        server, url, seen = await serve(reply)
        poster = Poster(timeout=timeout)
        results: list[int | str] = []
        for _ in range(count):
            try:
                results.append(await poster.post(url, b'{"a":1}', {"X-Test": "yes"}))
            except (PostError, TimeoutError) as exc:
                results.append(type(exc).__name__)
        poster.close()
        server.close()
        await server.wait_closed()
        return results, seen

    return asyncio.run(main())


def answer(raw: bytes, close: bool = False) -> Reply:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(raw)
        await writer.drain()
        if close:
            writer.close()

    return reply


def test_the_request_is_well_formed_and_the_connection_is_kept() -> None:
    results, seen = run(answer(b"HTTP/1.1 204 No Content\r\n\r\n"), count=3)
    assert results == [204, 204, 204]
    head = seen[0].split(b"\r\n\r\n")[0].decode()
    assert head.startswith("POST /in?x=1 HTTP/1.1\r\n")
    assert "Host: 127.0.0.1:" in head and "X-Test: yes" in head
    assert seen[0].endswith(b'{"a":1}')


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n",
    ],
)
def test_bodies_in_every_framing_are_read_to_their_end(raw: bytes) -> None:
    results, seen = run(answer(raw), count=2)
    assert results[0] in (200, 202) and results[0] == results[1] and len(seen) == 2


def test_a_body_until_close_and_a_server_closing_kept_connections() -> None:
    results, seen = run(answer(b"HTTP/1.0 200 OK\r\n\r\nbye", close=True), count=3)
    assert results == [200, 200, 200] and len(seen) == 3
    results, _ = run(
        answer(b"HTTP/1.1 500 Oops\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", close=True),
        count=2,
    )
    assert results == [500, 500]


def test_silence_times_out_and_garbage_is_an_error() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    results, _ = run(silent, timeout=0.3)
    assert results == ["TimeoutError"]
    results, _ = run(answer(b"SSH-2.0-OpenSSH\r\n\r\n"))
    assert results == ["PostError"]
    results, _ = run(answer(b"", close=True))
    assert results == ["PostError"]


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 \xb2\xb2\xb2 Odd digits\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: \xb9\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\xb9\r\nx\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 70_000 + b"\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    ],
)
def test_answers_that_are_not_quite_numbers_are_errors(raw: bytes) -> None:
    results, _ = run(answer(raw, close=True))
    assert results == ["PostError"]


def test_urls_that_could_inject_a_request_are_refused() -> None:
    for url in (
        "http://x.example/a b",
        "ftp://x.example/",
        "http://[",
        "http://x.example:0x/",
        "http://127.0.0.1/用户",
    ):
        with pytest.raises(PostError):
            Target.parse(url)
    assert Target.parse("https://crm.example/hook").port == 443
    assert Target.parse("http://[::1]:8080/h").host_header == "[::1]:8080"


def test_tls_certificates_are_verified(tmp_path: Path) -> None:
    context, _ = self_signed(tmp_path)

    async def main() -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        poster = Poster(timeout=2)
        try:
            await poster.post(f"https://127.0.0.1:{port}/", b"{}", {})
        except PostError as exc:
            return str(exc)
        finally:
            server.close()
        return "accepted"

    assert "CERTIFICATE_VERIFY_FAILED" in asyncio.run(main())


@given(st.binary(max_size=300))
@settings(max_examples=150, deadline=None)
def test_any_bytes_back_give_a_status_or_a_clean_error(raw: bytes) -> None:
    results, _ = run(answer(raw, close=True), timeout=1)
    assert isinstance(results[0], int) or results[0] in ("PostError", "TimeoutError")
