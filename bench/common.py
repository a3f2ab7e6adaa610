"""What the benchmark scripts share: a private PostgreSQL schema, the table."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text

console = Console()


@contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """A URL for ``url`` whose search_path is a fresh schema, dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        separator = "&" if "?" in url else "?"
        yield f"{url}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def print_table(title: str, rows: Sequence[Sequence[str]]) -> None:
    """The results as a rich table, then as Markdown for the README."""
    table = Table("benchmark", "Adieu", "baseline (same run)", "notes", title=title)
    for r in rows:
        table.add_row(*r)
    console.print(table)
    print("\n| benchmark | Adieu | baseline (same run) | notes |\n|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def wrk(
    port: int, lines: Path, seconds: int, connections: int, threads: int = 2, **env: str
) -> dict[str, float]:
    """Run wrk with ``lines.lua`` over ``lines`` (see the script for ``env``):
    requests/s, requests, non-2xx answers, and p50/p99 latency in ms."""
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(Path(__file__).parent / "lines.lua"),
            f"http://127.0.0.1:{port}",
        ],
        env={**os.environ, "LINES_FILE": str(lines), **env},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    result["requests"] = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non2xx"] = float(errors.group(1)) if errors else 0.0
    for pct in ("50", "99"):
        m = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out)
        assert m, out
        result[f"p{pct}"] = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    return result
