"""Real servers for the web door's hostile and fault tests: the app under
uvicorn in a thread, ``adieu serve`` as a process, and a private PostgreSQL
server that a test may stop and start (never the machine's own)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from adieu.settings import Settings
from support import adieu_env, free_port, wait_for_port


class ThreadServer:
    """``app`` served by uvicorn (as ``adieu serve`` configures it) in a thread."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            log_config=None,  # uvicorn's records reach the test's log capture
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive(), "the server did not start"
            assert time.monotonic() < deadline, "the server did not start in time"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@contextmanager
def adieu_serve(settings: Settings, log: Path, **extra: str) -> Iterator[tuple[int, int]]:
    """``adieu serve`` as a process, its log in ``log``: (port, pid)."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "adieu", "serve", "--port", str(port)],
            env=adieu_env(settings, **extra),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(port, proc)
            yield port, proc.pid
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def rss_mib(pid: int) -> float:
    """A process's resident memory (VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


class PrivatePostgres:
    """A PostgreSQL server of the test's own, in a temporary directory, on a
    free port: stopped and started at will. Run as the ``postgres`` user when
    the tests run as root (initdb refuses root). Skipped where the server's
    programs are missing, unless ADIEU_REQUIRE_POSTGRES is set."""

    def __init__(self) -> None:
        bin_dir = _pg_bin()
        if bin_dir is None:
            if os.environ.get("ADIEU_REQUIRE_POSTGRES"):
                raise RuntimeError("ADIEU_REQUIRE_POSTGRES is set but initdb is not installed")
            pytest.skip("PostgreSQL's server programs (initdb, pg_ctl) are not installed")
        self.bin = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="adieu-pg-"))
        self.data = self.root / "data"
        self.user: str | None = None
        if os.geteuid() == 0:
            try:
                self.user = pwd.getpwnam("postgres").pw_name
            except KeyError:
                pytest.skip("running as root and there is no postgres user to run the server")
            shutil.chown(self.root, self.user)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.root)
        assert done.returncode == 0, f"{program} failed:\n{done.stdout}\n{done.stderr}"

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root}"
        log = str(self.root / "log")
        self._run("pg_ctl", "start", "-w", "-D", str(self.data), "-l", log, "-o", options)

    def stop(self, mode: str = "immediate") -> None:
        self._run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data))

    def close(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop("fast")
        shutil.rmtree(self.root, ignore_errors=True)
