"""Helpers the tests share: free ports, waiting for a server to listen."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time

import httpx

from adieu.service import Adieu
from adieu.settings import Settings
from adieu.web.app import create_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
