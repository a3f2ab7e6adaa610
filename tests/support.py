"""Helpers the tests share: free ports, waiting for a server to listen."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import socket
import ssl
import subprocess
import time
from email.message import Message
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from adieu.service import Adieu
from adieu.settings import Settings
from adieu.web.app import create_app


def text_of(message: Message, subtype: str = "plain") -> str:
    """The text of a parsed message's text/SUBTYPE body part."""
    part = message.get_body((subtype,))  # type: ignore[attr-defined]
    assert part is not None, f"no text/{subtype} part"
    return str(part.get_content())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive ports that are free now.

    Chosen below the kernel's ephemeral range, where outgoing connections
    (to PostgreSQL, say) take their local ports, so a port found free here
    is not taken a moment later by a client socket."""
    import random

    while True:
        first = random.randrange(20000, 32000 - count)
        try:
            for port in range(first, first + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes] | None = None, seconds: float = 30
) -> None:
    """Return once something listens on ``port``; fail if ``proc`` dies first."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert proc is None or proc.poll() is None, "the server exited"
            assert time.monotonic() < deadline, f"nothing listens on port {port}"
            time.sleep(0.1)


def adieu_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment for an `adieu` child process that uses ``settings``:
    none of the developer's own ADIEU_* variables, no adieu.toml."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADIEU_")}
    env["ADIEU_CONFIG"] = str(settings.data_dir / "no-such-adieu.toml")
    values = {"data_dir": str(settings.data_dir), "base_url": settings.base_url, **extra}
    if settings.database_url:
        values["database_url"] = settings.database_url
    env.update({f"ADIEU_{name.upper()}": value for name, value in values.items()})
    return env


class Client:
    """A synchronous facade over httpx.AsyncClient + ASGITransport."""

    def __init__(self, adieu: Adieu, headers: dict[str, str] | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.app = create_app(adieu, deliver=False)
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, client=("203.0.113.7", 4711)),
            base_url="https://mail.example.net",
            headers=headers,
        )

    def request(self, method: str, url: str, **kwargs: object) -> httpx.Response:
        return self.loop.run_until_complete(self.client.request(method, url, **kwargs))  # type: ignore[arg-type]

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


def self_signed(directory: Path, name: str = "localhost") -> tuple[ssl.SSLContext, Path]:
    """A self-signed certificate for ``name`` and 127.0.0.1 (an IP SAN, so it
    can be verified when trusted): the server's TLS context and the PEM file a
    client may trust."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = directory / f"{name}.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    private = directory / f"{name}-key.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(pem), str(private))
    return context, pem
