"""Pushes to an email service provider per second, beside a baseline
measured in the same run.

    .venv/bin/python bench/esp.py [--quick]

N unsubscribes are recorded with SendGrid configured (each queued for it in
the event's transaction), then the push deliverer drains the queue into a
local stand-in that answers every request at once (``201``): leased, in
order per address, each marked delivered in the ledger (SQLite). The
baseline is the same number of plain httpx requests of the same shape
(``POST /v3/asm/suppressions/global``), with the same concurrency, to the
same stand-in: the ceiling the HTTP client sets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from adieu.esp.push.deliver import push_deliverer_for
from adieu.esp.push.queue import PushQueue
from adieu.ledger import Channel, UnsubscribeRequest
from adieu.service import Adieu
from adieu.settings import Settings
from common import free_port, print_table, wait_for_port
from run import make_addresses

STAND_IN = r"""
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
            body = b'{"recipient_emails":[]}'
            writer.write(b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n"
                         b"content-length: %d\r\n\r\n%s" % (len(body), body))
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=512)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""


def bench_pushes(workdir: Path, n: int) -> list[tuple[str, ...]]:
    port = free_port()
    stand_in = subprocess.Popen([sys.executable, "-c", STAND_IN, str(port)])
    try:
        wait_for_port(port)
        base = f"http://127.0.0.1:{port}"
        app = Adieu(
            Settings(data_dir=workdir / "esp", sendgrid_api_key="SG.bench", sendgrid_api_url=base)
        )
        people = make_addresses(n, seed=7)
        started = time.perf_counter()
        for start in range(0, n, 1000):
            app.ledger.unsubscribe_many(
                [
                    UnsubscribeRequest(a, channel=Channel.ONE_CLICK)
                    for a in people[start : start + 1000]
                ]
            )
        t_record = time.perf_counter() - started
        deliverer = push_deliverer_for(app)
        assert deliverer is not None
        deliverer.batch, deliverer.concurrency, deliverer.poll = 500, 32, 0.05
        queue = PushQueue(app.engine, app.ledger.now)

        def pending() -> int:
            return sum(c.pending for c in queue.counts().values())

        async def drain() -> float:
            stop = asyncio.Event()
            task = asyncio.create_task(deliverer.run(stop))
            started = time.perf_counter()
            while pending():
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - started
            stop.set()
            await task
            return elapsed

        t_push = asyncio.run(drain())
        assert deliverer.delivered == n, deliverer.delivered
        body = json.dumps({"recipient_emails": [people[0]]}).encode()

        async def plain() -> float:
            limit = asyncio.Semaphore(32)
            async with httpx.AsyncClient() as client:

                async def one() -> None:
                    async with limit:
                        r = await client.post(
                            f"{base}/v3/asm/suppressions/global",
                            content=body,
                            headers={"Authorization": "Bearer SG.bench"},
                        )
                        assert r.status_code == 201

                started = time.perf_counter()
                await asyncio.gather(*(one() for _ in range(n)))
                return time.perf_counter() - started

        t_plain = asyncio.run(plain())
        app.close()
    finally:
        stand_in.terminate()
        stand_in.wait(10)
    return [
        (
            f"pushes to SendGrid's stand-in, {n:,} unsubscribes",
            f"{n / t_push:,.0f}/s",
            f"httpx POSTs, same concurrency {n / t_plain:,.0f}/s",
            f"{t_push / t_plain:.1f}x the baseline's time; leased, in order per address, each"
            f" marked delivered (SQLite); recording the {n:,} with their queue rows:"
            f" {n / t_record:,.0f}/s",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args()
    n = 1_000 if args.quick else 10_000
    with tempfile.TemporaryDirectory(prefix="adieu-esp-bench-") as tmp:
        rows = bench_pushes(Path(tmp), n)
    print_table("Adieu ESP push benchmark", rows)


if __name__ == "__main__":
    main()
