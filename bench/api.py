"""API benchmark, beside baselines measured in the same run.

    .venv/bin/python bench/api.py [--quick] [--seconds 10]

- ``POST /api/v1/check`` with batches of 1,000 addresses against a ledger of
  1,000,000 contacts (half of them suppressed), served by ``adieu serve
  --workers 2`` under wrk, on SQLite and (when ADIEU_BENCH_DATABASE_URL or
  ADIEU_TEST_DATABASE_URL names a server) PostgreSQL; beside ``adieu filter``
  over 1,000,000 of the same addresses on the same ledger.
- Webhook deliveries per second from the outbox to a local receiver, beside
  plain httpx POSTs of the same bodies with the same concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from adieu.ledger import Channel, UnsubscribeRequest
from adieu.service import Adieu
from adieu.settings import Settings
from adieu.webhooks.deliver import Deliverer
from common import free_port, postgres_schema, print_table, wait_for_port, wrk
from run import fill_ledger, make_addresses


def env_for(settings: Settings, workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADIEU_")}
    env |= {
        "ADIEU_DATA_DIR": str(settings.data_dir),
        "ADIEU_CONFIG": str(workdir / "none.toml"),
        "ADIEU_WEBHOOK_DELIVERER": "false",
    }
    if settings.database_url:
        env["ADIEU_DATABASE_URL"] = settings.database_url
    return env


def wrk_check(
    port: int, bodies: Path, key: str, seconds: int, connections: int
) -> dict[str, float]:
    result = wrk(
        port, bodies, seconds, connections, threads=1, WRK_PATH="/api/v1/check", API_KEY=key
    )
    assert result["non2xx"] == 0, result
    return result


def bench_check(
    label: str, settings: Settings, workdir: Path, n_contacts: int, seconds: int
) -> list[tuple[str, ...]]:
    app = Adieu(settings)
    people = make_addresses(n_contacts, seed=21)
    half = n_contacts // 2
    load = fill_ledger(app, people[:half], people[half:])
    _, key = app.api_keys.create("bench")
    rng = random.Random(9)
    unknown = make_addresses(50_000, seed=99)
    bodies = workdir / f"bodies-{label}.jsonl"
    with bodies.open("w") as fh:
        for _ in range(300):
            batch = [
                rng.choice(people) if rng.random() < 0.95 else rng.choice(unknown)
                for _ in range(1000)
            ]
            fh.write(json.dumps({"addresses": batch}) + "\n")
    # The same check in-process, to see that the answers are right.
    sample = json.loads(bodies.read_text().splitlines()[0])["addresses"]
    refused = sum(1 for d in app.policy.check_many(sample) if not d.allowed)
    assert 350 < refused < 650, refused
    app.close()
    env = env_for(settings, workdir)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "adieu", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        time.sleep(1.0)  # both workers up
        wrk_check(port, bodies, key, 2, 8)  # warm
        result = wrk_check(port, bodies, key, seconds, 8)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    # Baseline: adieu filter over 1,000,000 of the same addresses, same ledger.
    listing = workdir / f"list-{label}.txt"
    listing.write_text("\n".join(people[:1_000_000]) + "\n")
    adieu_bin = str(Path(sys.executable).with_name("adieu"))
    runs = []
    for _ in range(2):
        start = time.perf_counter()
        subprocess.run(
            [adieu_bin, "filter", str(listing), "--output", str(workdir / "kept.txt")],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        runs.append(time.perf_counter() - start)
    n_listed = min(len(people), 1_000_000)
    t_filter = min(runs)
    per_s = result["rps"] * 1000
    return [
        (
            f"POST /api/v1/check, 1,000 addresses a call, {n_contacts:,} contacts ({label})",
            f"{per_s:,.0f} addresses/s ({result['rps']:,.0f} calls/s, p50 {result['p50']:.1f} ms,"
            f" p99 {result['p99']:.1f} ms)",
            f"adieu filter {n_listed / t_filter:,.0f} addresses/s"
            f" ({t_filter:.2f} s for {n_listed:,})",
            f"serve --workers 2, wrk 8 connections; every answer read from the ledger at call"
            f" time (setup {load:.0f} s)",
        )
    ]


RECEIVER = r"""
import asyncio, sys
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=512)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""


def bench_webhooks(workdir: Path, n: int) -> list[tuple[str, ...]]:
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)])
    try:
        wait_for_port(port)
        app = Adieu(Settings(data_dir=workdir / "hooks"))
        app.outbox.create_webhook(f"http://127.0.0.1:{port}/hook")
        people = make_addresses(n, seed=5)
        for start in range(0, n, 1000):
            app.ledger.unsubscribe_many(
                [
                    UnsubscribeRequest(a, channel=Channel.ONE_CLICK)
                    for a in people[start : start + 1000]
                ]
            )
        deliverer = Deliverer(app.outbox, batch=500, concurrency=64, poll=0.05)

        async def drain() -> float:
            stop = asyncio.Event()
            task = asyncio.create_task(deliverer.run(stop))
            started = time.perf_counter()
            while app.outbox.backlog().pending:
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - started
            stop.set()
            await task
            return elapsed

        t_hooks = asyncio.run(drain())
        assert deliverer.delivered == n, deliverer.delivered
        sample = json.dumps({"id": 1, "type": "unsubscribe", "address": people[0]}).encode()

        async def plain() -> float:
            limit = asyncio.Semaphore(64)
            async with httpx.AsyncClient() as client:

                async def one() -> None:
                    async with limit:
                        r = await client.post(f"http://127.0.0.1:{port}/hook", content=sample)
                        assert r.status_code == 204

                started = time.perf_counter()
                await asyncio.gather(*(one() for _ in range(n)))
                return time.perf_counter() - started

        t_plain = asyncio.run(plain())
        one_body = workdir / "hook-body.jsonl"
        one_body.write_bytes(sample + b"\n")
        ceiling = wrk(port, one_body, 3, 64, threads=1, WRK_PATH="/hook")["rps"]
        app.close()
    finally:
        receiver.terminate()
        receiver.wait(10)
    return [
        (
            f"webhook deliveries, {n:,} events to a local receiver",
            f"{n / t_hooks:,.0f}/s",
            f"httpx POSTs, same concurrency {n / t_plain:,.0f}/s; wrk (C) {ceiling:,.0f}/s",
            f"{t_plain / t_hooks:.1f}x httpx, {n / t_hooks / ceiling:.2f}x wrk; signed, in order"
            " per address, each leased and marked delivered in the ledger (SQLite)",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--only", choices=["check", "webhooks"])
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    scale = 0.05 if args.quick else 1.0
    rows: list[tuple[str, ...]] = []
    pg = os.environ.get("ADIEU_BENCH_DATABASE_URL") or os.environ.get("ADIEU_TEST_DATABASE_URL")
    with tempfile.TemporaryDirectory(prefix="adieu-api-bench-") as tmp:
        workdir = Path(tmp)
        if args.only in (None, "check"):
            n = int(1_000_000 * scale)
            rows += bench_check(
                "SQLite", Settings(data_dir=workdir / "sqlite"), workdir, n, args.seconds
            )
            if pg:
                with postgres_schema(pg) as url:
                    settings = Settings(data_dir=workdir / "pg", database_url=url)
                    rows += bench_check("PostgreSQL", settings, workdir, n, args.seconds)
        if args.only in (None, "webhooks"):
            rows += bench_webhooks(workdir, int(20_000 * max(scale, 0.25)))
    print_table("Adieu API benchmark", rows)


if __name__ == "__main__":
    main()
