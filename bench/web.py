"""Web benchmark: `adieu serve` on loopback under wrk, beside a bare FastAPI
endpoint served the same way in the same run.

    .venv/bin/python bench/web.py [--seconds 10] [--connections 64]

Measures RFC 8058 one-click POST throughput and latency (every request
unsubscribes a different recipient; each answer comes only after a durable
commit) on SQLite and, when ADIEU_BENCH_DATABASE_URL or ADIEU_TEST_DATABASE_URL
names a server, on PostgreSQL; and landing-page GET throughput. Both servers
run throughout and are measured in turn, in short alternating rounds (a
total of --seconds each), so that load from elsewhere on the host weighs on
Adieu and its baseline alike; latencies are the median of the rounds'.
Afterwards it checks that the ledger holds at least as many unsubscribes as
wrk saw answered.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, func, select

from adieu.ledger import schema as t
from adieu.service import Adieu
from adieu.settings import Settings
from common import free_port, postgres_schema, print_table, wrk

HERE = Path(__file__).parent


def start(cmd: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:  # answering, not just listening (the port is bound before the app is built)
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(
                    b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                )
                if not sock.recv(1):
                    raise OSError("closed without an answer")
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{cmd} did not start") from None
            time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=10)


def unsubscribed(settings: Settings) -> int:
    engine = create_engine(settings.sqlalchemy_url)
    with engine.connect() as conn:
        n = conn.execute(
            select(func.count()).select_from(t.events).where(t.events.c.type == "unsubscribe")
        ).scalar_one()
    engine.dispose()
    return int(n)


#: Each measurement alternates bare and Adieu in this many rounds, so that
#: load from elsewhere on the host weighs on both alike.
ROUNDS = 4
#: Paths a round: lines.lua starts its second thread 1,000,003 lines on
#: (modulo the file's length), which at this length is half-way, so that
#: the two threads never post to the same recipient.
CHUNK = 105_264


def combined(runs: list[dict[str, float]]) -> dict[str, float]:
    """Several wrk runs as one: requests/s over their total time; p50 and p99
    the median of the runs'."""
    requests = sum(r["requests"] for r in runs)
    took = sum(r["requests"] / r["rps"] for r in runs)
    return {
        "rps": requests / took,
        "requests": requests,
        "non2xx": sum(r["non2xx"] for r in runs),
        "p50": statistics.median(r["p50"] for r in runs),
        "p99": statistics.median(r["p99"] for r in runs),
    }


def interleaved(
    bare_port: int,
    bare_paths: Path,
    port: int,
    chunks: list[Path],
    seconds: int,
    connections: int,
    method: str,
) -> tuple[dict[str, float], dict[str, float]]:
    """``seconds`` of each, bare then Adieu in turn, one round per chunk of paths."""
    each = max(1, round(seconds / len(chunks)))
    bare, adieu = [], []
    for chunk in chunks:
        bare.append(wrk(bare_port, bare_paths, each, connections, WRK_METHOD=method))
        adieu.append(wrk(port, chunk, each, connections, WRK_METHOD=method))
    return combined(bare), combined(adieu)


def run(
    label: str,
    settings: Settings,
    workdir: Path,
    seconds: int,
    connections: int,
    rows: list[tuple[str, ...]],
    bare_port: int,
    bare_paths: Path,
) -> None:
    app = Adieu(settings)
    codec = app.codec
    chunks = [workdir / f"paths-{label}-{i}.txt" for i in range(ROUNDS)]
    for i, chunk in enumerate(chunks):  # every POST a different recipient
        with chunk.open("w") as fh:
            for n in range(i * CHUNK, (i + 1) * CHUNK):
                fh.write(f"/u/{codec.mint(f'bench{n}@example.com')}\n")
    # The landing page for people who have not left (the common visit), and
    # for the same people after their one-click POST above (the page then
    # says since when they left: one more read and a different page).
    fresh = [workdir / f"fresh-{label}-{i}.txt" for i in range(ROUNDS)]
    for i, chunk in enumerate(fresh):
        with chunk.open("w") as fh:
            for n in range(i * CHUNK, (i + 1) * CHUNK):
                fh.write(f"/u/{codec.mint(f'reader{n}@example.com')}\n")
    app.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADIEU_")}
    env |= {"ADIEU_DATA_DIR": str(settings.data_dir), "ADIEU_CONFIG": str(workdir / "none.toml")}
    if settings.database_url:
        env["ADIEU_DATABASE_URL"] = settings.database_url
    port = free_port()
    proc = start([sys.executable, "-m", "adieu", "serve", "--port", str(port)], env, port)
    args = (bare_port, bare_paths, port)
    try:
        b, post = interleaved(*args, chunks, seconds, connections, "POST")
        sqlite = label == "SQLite"
        still = interleaved(*args, fresh, seconds, connections, "GET") if sqlite else None
        got = interleaved(*args, chunks, seconds, connections, "GET") if sqlite else None
    finally:
        stop(proc)
    landed = unsubscribed(settings)
    answered = int(post["requests"] - post["non2xx"])
    assert landed >= answered, f"{answered} answered but only {landed} in the ledger"
    rows.append(
        (
            f"one-click POST, {connections} connections ({label})",
            f"{post['rps']:,.0f}/s, p50 {post['p50']:.1f} ms, p99 {post['p99']:.1f} ms",
            f"bare FastAPI {b['rps']:,.0f}/s, p50 {b['p50']:.1f} ms, p99 {b['p99']:.1f} ms",
            f"{post['rps'] / b['rps']:.2f}x bare; {answered:,} answered, "
            f"{landed:,} durable in the ledger",
        )
    )
    for who, measured in (("still subscribed", still), ("already left", got)):
        if measured is None:
            continue
        g, get = measured
        rows.append(
            (
                f"landing page GET, {connections} connections, {who}",
                f"{get['rps']:,.0f}/s, p50 {get['p50']:.1f} ms, p99 {get['p99']:.1f} ms",
                f"bare FastAPI {g['rps']:,.0f}/s, p50 {g['p50']:.1f} ms, p99 {g['p99']:.1f} ms",
                f"{get['rps'] / g['rps']:.2f}x bare; the full page, rendered and translated",
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    rows: list[tuple[str, ...]] = []
    pg = os.environ.get("ADIEU_BENCH_DATABASE_URL") or os.environ.get("ADIEU_TEST_DATABASE_URL")
    with tempfile.TemporaryDirectory(prefix="adieu-web-bench-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        baseline = start(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bare:app",
                "--app-dir",
                str(HERE),
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            dict(os.environ),
            port,
        )
        bare_paths = workdir / "bare.txt"
        bare_paths.write_text("".join(f"/u/token{i}\n" for i in range(1000)))
        both = (workdir, args.seconds, args.connections, rows, port, bare_paths)
        try:
            run("SQLite", Settings(data_dir=workdir / "sqlite"), *both)
            if pg:
                with postgres_schema(pg) as url:
                    run("PostgreSQL", Settings(data_dir=workdir / "pg", database_url=url), *both)
        finally:
            stop(baseline)
    print_table("Adieu web benchmark", rows)


if __name__ == "__main__":
    main()
