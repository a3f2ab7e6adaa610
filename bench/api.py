"""API benchmark, beside baselines measured in the same run.

    .venv/bin/python bench/api.py [--quick] [--seconds 10]

- ``POST /api/v1/check`` with batches of 1,000 addresses against a ledger of
  1,000,000 contacts (half of them suppressed), served by ``adieu serve
  --workers 2`` under wrk, on SQLite and (when ADIEU_BENCH_DATABASE_URL or
  ADIEU_TEST_DATABASE_URL names a server) PostgreSQL; beside ``adieu filter``
  over 1,000,000 of the same addresses on the same ledger.
- Webhook deliveries per second from the outbox to a local receiver, beside
  plain httpx POSTs of the same bodies with the same concurrency.
- ESP events per second into ``POST /hooks/sendgrid`` (batches of 100, each
  signed with ECDSA and checked) and ``POST /hooks/ses`` (one SNS message per
  request, its RSA signature checked against a certificate served by a local
  HTTPS stand-in), served by ``adieu serve --workers 2``; beside the same
  requests, with the same concurrency, to a bare endpoint (a Starlette route
  that reads the body and answers 200) under the same uvicorn.
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
from typing import Any

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


BARE = """
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route


async def bare(request):
    await request.body()
    return Response(b'{}', media_type="application/json")


app = Starlette(routes=[Route("/hooks/{provider}", bare, methods=["POST"])])
"""


def _sns_stand_in(workdir: Path) -> tuple[Any, str, Path, Any]:
    """A signing key, and an HTTPS server (its own CA) serving its certificate:
    (key, host:port, CA file, server)."""
    import datetime as dt
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def certificate(key: Any, name: str, san: bool) -> x509.Certificate:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
        )
        if san:
            import ipaddress

            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            ).add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        return builder.sign(key, hashes.SHA256())

    signing = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = certificate(signing, "sns", False).public_bytes(serialization.Encoding.PEM)
    tls_key = ec.generate_private_key(ec.SECP256R1())
    tls_cert = workdir / "tls.pem"
    tls_cert.write_bytes(
        certificate(tls_key, "127.0.0.1", True).public_bytes(serialization.Encoding.PEM)
    )
    tls_private = workdir / "tls-key.pem"
    tls_private.write_bytes(
        tls_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(pem)))
            self.end_headers()
            self.wfile.write(pem)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(tls_cert), str(tls_private))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return signing, f"127.0.0.1:{server.server_address[1]}", tls_cert, server


def bench_esp(workdir: Path, batches: int, messages: int) -> list[tuple[str, ...]]:
    import base64
    import uuid

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding

    from adieu.esp.hooks.ses import canonical_string

    topic = "arn:aws:sns:eu-west-1:123456789012:bench"
    signing, host, ca_file, cert_server = _sns_stand_in(workdir)
    sg_key = ec.generate_private_key(ec.SECP256R1())
    sg_public = base64.b64encode(
        sg_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    people = make_addresses(batches * 100 + messages, seed=77)
    kinds = ["bounce", "spamreport", "unsubscribe", "dropped", "delivered"]
    sendgrid: list[tuple[bytes, dict[str, str]]] = []
    for b in range(batches):
        events = [
            {
                "event": kinds[i % len(kinds)],
                "email": people[b * 100 + i],
                "sg_event_id": f"sg-{b}-{i}",
                "type": "bounce",
                "status": "5.1.1",
                "reason": "550 5.1.1 user unknown",
                "timestamp": 1,
            }
            for i in range(100)
        ]
        body = json.dumps(events).encode()
        stamp = str(int(time.time()))
        signature = sg_key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        sendgrid.append(
            (
                body,
                {
                    "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
                    "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
                },
            )
        )
    ses: list[tuple[bytes, dict[str, str]]] = []
    for i in range(messages):
        found = {
            "notificationType": "Bounce",
            "bounce": {
                "feedbackId": str(uuid.uuid4()),
                "bounceType": "Permanent",
                "bounceSubType": "General",
                "bouncedRecipients": [
                    {
                        "emailAddress": people[batches * 100 + i],
                        "action": "failed",
                        "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                    }
                ],
            },
        }
        message = {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": topic,
            "Message": json.dumps(found),
            "Timestamp": "2026-12-04T10:00:00.000Z",
            "SignatureVersion": "2",
            "SigningCertURL": f"https://{host}/SimpleNotificationService-bench.pem",
        }
        signature = signing.sign(canonical_string(message), padding.PKCS1v15(), hashes.SHA256())
        message["Signature"] = base64.b64encode(signature).decode()
        ses.append((json.dumps(message).encode(), {"Content-Type": "text/plain"}))

    async def send(port: int, path: str, requests: list[tuple[bytes, dict[str, str]]]) -> float:
        limit = asyncio.Semaphore(16)
        async with httpx.AsyncClient(timeout=60) as client:

            async def one(body: bytes, headers: dict[str, str]) -> None:
                async with limit:
                    r = await client.post(
                        f"http://127.0.0.1:{port}{path}", content=body, headers=headers
                    )
                    assert r.status_code == 200, r.text

            started = time.perf_counter()
            await asyncio.gather(*(one(b, h) for b, h in requests))
            return time.perf_counter() - started

    def served(command: list[str], env: dict[str, str]) -> tuple[float, float]:
        port = free_port()
        proc = subprocess.Popen(
            [*command, "--port", str(port), "--workers", "2"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port)
            time.sleep(1.0)  # both workers up
            asyncio.run(send(port, "/hooks/ses", ses[:2]))  # warm (and the certificate cached)
            t_sendgrid = asyncio.run(send(port, "/hooks/sendgrid", sendgrid))
            t_ses = asyncio.run(send(port, "/hooks/ses", ses[2:]))
        finally:
            proc.terminate()
            proc.wait(timeout=15)
        return t_sendgrid, t_ses

    settings = Settings(data_dir=workdir / "esp")
    Adieu(settings).close()  # the ledger and its key file, made before the workers start
    env = env_for(settings, workdir) | {
        "ADIEU_SENDGRID_PUBLIC_KEY": sg_public,
        "ADIEU_SES_TOPIC_ARNS": topic,
        "ADIEU_SNS_TEST_CA_FILE": str(ca_file),
        "ADIEU_SNS_TEST_CERT_HOST": host,
    }
    try:
        adieu_sg, adieu_ses = served([sys.executable, "-m", "adieu", "serve"], env)
        (workdir / "bare_hooks.py").write_text(BARE)
        uvicorn = [sys.executable, "-m", "uvicorn", "bare_hooks:app", "--app-dir", str(workdir)]
        bare_sg, bare_ses = served([*uvicorn, "--log-level", "warning"], env)
    finally:
        cert_server.shutdown()
    check = Adieu(settings)
    known = check.ledger.count_contacts()
    check.close()
    assert known == batches * 80 + messages, known  # every event but the deliveries
    n_sg, n_ses = batches * 100, messages - 2
    return [
        (
            f"POST /hooks/sendgrid, {batches} signed batches of 100 events",
            f"{n_sg / adieu_sg:,.0f} events/s ({batches / adieu_sg:,.1f} requests/s)",
            f"bare endpoint {n_sg / bare_sg:,.0f} events/s",
            "serve --workers 2, 16 concurrent; ECDSA checked, each event claimed by its id and"
            " recorded in the ledger (SQLite)",
        ),
        (
            f"POST /hooks/ses, {n_ses:,} SNS messages, one bounce each",
            f"{n_ses / adieu_ses:,.0f} events/s",
            f"bare endpoint {n_ses / bare_ses:,.0f} events/s",
            "SHA256withRSA checked against the cached certificate; each bounce read and"
            " recorded (SQLite)",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--only", choices=["check", "webhooks", "esp"])
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
        if args.only in (None, "esp"):
            rows += bench_esp(workdir, int(100 * max(scale, 0.2)), int(2_000 * max(scale, 0.25)))
    print_table("Adieu API benchmark", rows)


if __name__ == "__main__":
    main()
