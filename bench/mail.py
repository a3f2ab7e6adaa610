"""Mail benchmark: DKIM signing, stamping, and the SMTP relay, each beside a
baseline measured in the same run.

    .venv/bin/python bench/mail.py [--messages 10000]

- DKIM signing per second: Adieu's signer beside dkimpy's ``dkim.sign`` on the
  same 5 KB message, the same key (RSA-2048) and the same headers.
- Stamping + signing per second (headers, visible link, DKIM) for one recipient.
- Relay throughput: 5 KB messages sent with smtplib through ``adieu relay``
  to an aiosmtpd sink, beside the same messages sent straight to the sink
  (the sink offers PIPELINING, as Postfix and the ESPs do; smtplib, sending
  straight to it, does not use it, the relay does); 16 client connections
  in parallel, in rounds taken in turn (``--rounds``) so that load from
  elsewhere weighs on both alike; the relay's own CPU time per message is
  read from /proc. Once with one recipient a message, once with ten (a
  tenth as many messages: the same number of copies). The relay
  runs as in use: the policy at RCPT and again at DATA, every copy stamped,
  signed and forwarded with its own return path (``ADIEU_BOUNCE_DOMAIN``),
  each copy's delivery committed to the ledger before the client is answered
  (exactly once across retries), the sends recorded.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import smtplib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dkim
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives import serialization

from adieu.mail.dkim import DKIMKey, DKIMSigner, create_key, key_path
from adieu.mail.stamper import Stamper
from adieu.service import Adieu
from adieu.settings import Settings
from common import free_port, print_table, wait_for_port

BODY = ("Our news this month. " * 12 + "\r\n") * 20  # about 5 KB
MESSAGE = (
    "From: News <news@example.com>\r\nTo: reader@example.org\r\nSubject: November news\r\n"
    "Date: Fri, 27 Nov 2026 10:00:00 +0000\r\nMessage-ID: <n1@example.com>\r\n"
    "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "List-Unsubscribe: <https://mail.example.net/u/token>\r\n"
    "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\n" + BODY
).encode()


def per_second(n: int, fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


class Sink:
    def __init__(self, pipelining: bool = True) -> None:
        self.count = 0
        self.pipelining = pipelining

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")  # as an MTA or an ESP offers it
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        return "250 OK"


def send_all(
    port: int, count: int, clients: int = 16, recipients: int = 1, tag: str = "r"
) -> tuple[int, float]:
    """Messages sent by ``clients`` connections to ``port``, and the seconds
    they took; each message to ``recipients`` recipients of its own."""

    share = count // clients

    def worker(first: int) -> None:
        with smtplib.SMTP("127.0.0.1", port) as client:
            for i in range(first, first + share):
                # Recipients of their own per round: the relay delivers a message
                # (the same bytes from the same sender) to an address once a week.
                to = [f"{tag}{recipients}x{i}-{n}@example.org" for n in range(recipients)]
                refused = client.sendmail("news@example.com", to, MESSAGE)
                assert not refused, refused

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, [c * share for c in range(clients)]))
    return share * clients, time.perf_counter() - start


def _cpu_seconds(pids: list[int]) -> float | None:
    """User and system CPU seconds the processes ``pids`` have used (Linux's
    /proc), or None where that cannot be read."""
    total = 0
    try:
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    except (OSError, IndexError, ValueError):
        return None
    return total / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError, IndexError):
                    stat = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
                    if int(stat[1]) == pid:
                        found.append(int(entry))
    return found


@contextlib.contextmanager
def running_relay(
    settings: Settings, tmp: Path, upstream: int, workers: int
) -> Iterator[tuple[int, list[int]]]:
    """``adieu relay`` in its own processes, as it would run in use: its port,
    and the process ids of the relay and its workers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADIEU_")}
    env |= {
        "ADIEU_DATA_DIR": str(settings.data_dir),
        "ADIEU_BASE_URL": settings.base_url,
        "ADIEU_DKIM_DOMAIN": "example.com",
        "ADIEU_DKIM_SELECTOR": "s1",
        # Each copy with its own return path (VERP), as a relay in use sends.
        "ADIEU_BOUNCE_DOMAIN": "bounces.example.com",
        "ADIEU_CONFIG": str(tmp / "none.toml"),
    }
    relay = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "adieu",
            "relay",
            "--listen",
            f"127.0.0.1:{port}",
            "--upstream",
            f"127.0.0.1:{upstream}",
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        pids = [relay.pid]
        if workers > 1:
            deadline = time.monotonic() + 30
            while len(pids) < workers + 1 and time.monotonic() < deadline:
                time.sleep(0.1)
                pids = [relay.pid, *_children(relay.pid)]
        yield port, pids
    finally:
        relay.terminate()
        relay.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2, help="relay processes")
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="relay runs, each after one straight to the sink (load from elsewhere falls on both)",
    )
    parser.add_argument(
        "--no-pipelining", action="store_true", help="a sink that does not offer PIPELINING"
    )
    args = parser.parse_args()
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="adieu-mail-bench-") as tmp:
        settings = Settings(
            data_dir=Path(tmp) / "data",
            base_url="https://mail.example.net",
            dkim_domain="example.com",
            dkim_selector="s1",
        )
        key = create_key(key_path(settings.data_dir, "s1"))
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        signer = DKIMSigner("example.com", [DKIMKey("s1", key)])
        headers = [
            b"from",
            b"to",
            b"subject",
            b"date",
            b"message-id",
            b"mime-version",
            b"content-type",
            b"list-unsubscribe",
            b"list-unsubscribe-post",
        ]
        ours = per_second(2000, lambda: signer.sign(MESSAGE))
        theirs = per_second(
            200, lambda: dkim.sign(MESSAGE, b"s1", b"example.com", pem, include_headers=headers)
        )
        rows.append(
            (
                "DKIM signing, RSA-2048, 5 KB message",
                f"{ours:,.0f}/s",
                f"dkimpy dkim.sign {theirs:,.0f}/s",
                f"{ours / theirs:.1f}x dkimpy",
            )
        )
        app = Adieu(settings)
        stamper = Stamper(app)
        counter = iter(range(10**9))
        stamped = per_second(1000, lambda: stamper.stamp(MESSAGE, f"r{next(counter)}@example.org"))
        rows.append(
            (
                "stamp + sign one recipient's copy",
                f"{stamped:,.0f}/s",
                f"signing alone {ours:,.0f}/s",
                "parse, headers, footer in the body, DKIM, serialise",
            )
        )

        sink = Sink(pipelining=not args.no_pipelining)
        upstream = Controller(sink, hostname="127.0.0.1", port=free_port())
        upstream.start()
        try:
            for recipients, count in ((1, args.messages), (10, args.messages // 10)):
                # Rounds in turn, straight to the sink then through the relay,
                # so that load from elsewhere weighs on both alike.
                share = count // args.rounds
                direct = [0, 0.0]
                through = [0, 0.0]
                cpu = 0.0
                copies = 0
                with running_relay(settings, Path(tmp), upstream.port, args.workers) as (
                    port,
                    pids,
                ):
                    for r in range(args.rounds):
                        sent, seconds = send_all(upstream.port, share, recipients=recipients)
                        direct = [direct[0] + sent, direct[1] + seconds]
                        before, cpu_before = sink.count, _cpu_seconds(pids)
                        sent, seconds = send_all(port, share, recipients=recipients, tag=f"q{r}x")
                        through = [through[0] + sent, through[1] + seconds]
                        cpu_after = _cpu_seconds(pids)
                        if cpu_before is not None and cpu_after is not None:
                            cpu += cpu_after - cpu_before
                        copies += sink.count - before
                assert copies == through[0] * recipients, "every copy arrived"
                direct_rate = direct[0] / direct[1]
                relay_rate = through[0] / through[1]
                what = (
                    "single-recipient 5 KB messages"
                    if recipients == 1
                    else f"5 KB messages to {recipients} recipients each"
                )
                rows.append(
                    (
                        f"relay, {through[0]:,} {what}, DKIM",
                        f"{relay_rate:,.0f} messages/s"
                        + (f" ({relay_rate * recipients:,.0f} copies/s)" if recipients > 1 else ""),
                        f"straight to the sink {direct_rate:,.0f} messages/s",
                        f"{relay_rate / direct_rate:.2f}× the sink ({args.rounds} rounds in turn);"
                        f" the relay's CPU {1000 * cpu / through[0]:.2f} ms a message;"
                        " policy at RCPT and DATA, stamp, sign,"
                        " forward with its own return path, each copy's delivery committed"
                        " before the answer, the send"
                        f" recorded; `--workers {args.workers}`, 16 client connections",
                    )
                )
        finally:
            upstream.stop()
        app.close()
    print_table("Adieu mail benchmark", rows)


if __name__ == "__main__":
    sys.exit(main())
