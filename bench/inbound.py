"""Inbound benchmark: messages classified and recorded per second, through
`adieu inbound -` (one process per message, as a pipe transport runs it) and
through the SMTP listener, beside flufl.bounce's `all_failures` alone on the
same corpus (tests/feedback/corpus/inbound).

    .venv/bin/python bench/inbound.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import email
import os
import re
import smtplib
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiosmtpd.controller import Controller
from flufl.bounce import all_failures

from adieu.feedback.intake import Intake
from adieu.service import Adieu
from adieu.settings import Settings
from adieu.smtp.inbound import InboundHandler
from common import free_port, print_table

CORPUS = Path(__file__).parent.parent / "tests" / "feedback" / "corpus" / "inbound"
_PLACEHOLDER = re.compile(r"\{\{(URL|TOKEN):([^}]+)\}\}")


def corpus(app: Adieu) -> list[bytes]:
    messages = []
    for path in sorted(CORPUS.glob("*.eml")):
        text = path.read_bytes().decode("utf-8", "surrogateescape")
        text = _PLACEHOLDER.sub(
            lambda m: (
                app.link(m.group(2)).url if m.group(1) == "URL" else app.link(m.group(2)).token
            ),
            text,
        )
        messages.append(
            text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8", "surrogateescape")
        )
    return messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20, help="times through the corpus")
    args = parser.parse_args()
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="adieu-inbound-bench-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", base_url="https://mail.example.net")
        app = Adieu(settings)
        messages = corpus(app)
        total = len(messages) * args.rounds

        start = time.perf_counter()
        for _ in range(args.rounds):
            for raw in messages:
                all_failures(email.message_from_bytes(raw))
        flufl_rate = total / (time.perf_counter() - start)

        intake = Intake(app)
        start = time.perf_counter()
        for _ in range(args.rounds):
            for raw in messages:
                intake.process(raw)
        library_rate = total / (time.perf_counter() - start)

        controller = Controller(InboundHandler(intake), hostname="127.0.0.1", port=free_port())
        controller.start()

        def send(chunk: list[bytes]) -> None:
            with smtplib.SMTP("127.0.0.1", controller.port) as client:
                for raw in chunk:
                    client.sendmail("", ["reports@example.com"], raw)

        batches = [messages * (args.rounds // 4 or 1)] * 4
        start = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(send, batches))
        listener_rate = sum(map(len, batches)) / (time.perf_counter() - start)
        controller.stop()

        env = {k: v for k, v in os.environ.items() if not k.startswith("ADIEU_")}
        env |= {"ADIEU_DATA_DIR": str(settings.data_dir), "ADIEU_CONFIG": str(Path(tmp) / "x.toml")}
        piped = messages * 2
        start = time.perf_counter()
        for raw in piped:
            subprocess.run(
                [sys.executable, "-m", "adieu", "inbound", "-"],
                input=raw,
                env=env,
                capture_output=True,
                check=True,
            )
        pipe_rate = len(piped) / (time.perf_counter() - start)
        app.close()

    n = len(messages)
    rows.append(
        (
            f"classify + record, library ({n} messages x {args.rounds})",
            f"{library_rate:,.0f} messages/s",
            f"flufl.bounce all_failures alone {flufl_rate:,.0f}/s",
            "ARF, DSN, mailto, auto-replies, review queue; every write committed",
        )
    )
    rows.append(
        (
            "through the SMTP listener (4 connections)",
            f"{listener_rate:,.0f} messages/s",
            f"flufl.bounce all_failures alone {flufl_rate:,.0f}/s",
            "smtplib → adieu inbound --listen",
        )
    )
    rows.append(
        (
            "through `adieu inbound -` (one process per message)",
            f"{pipe_rate:,.1f} messages/s",
            f"flufl.bounce all_failures alone {flufl_rate:,.0f}/s",
            "a Postfix pipe transport's cost: interpreter start-up dominates",
        )
    )
    print_table("Adieu inbound benchmark", rows)


if __name__ == "__main__":
    main()
