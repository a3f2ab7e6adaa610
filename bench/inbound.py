"""Inbound benchmark: messages classified per second by the library
(``classify`` alone, parsing included) beside flufl.bounce's ``all_failures``
alone (parsing included) on the same corpus, in the same run, interleaved,
best of the rounds; then classified and recorded, through the library, the
SMTP listener and ``adieu inbound -`` (one process per message, as a pipe
transport runs it). The corpus is tests/corpus (every family) when present,
else tests/feedback/corpus/inbound. A send to each address in the corpus is
recorded first, so its reports are trusted under the default
ADIEU_INBOUND_TRUST=sent (each one without a token costs that look-up).

    .venv/bin/python bench/inbound.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import email
import json
import logging
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

from adieu.feedback.classify import classify
from adieu.feedback.intake import Intake
from adieu.service import Adieu
from adieu.settings import Settings
from adieu.smtp.inbound import InboundHandler
from common import free_port, print_table

TESTS = Path(__file__).parent.parent / "tests"
CORPUS = TESTS / "feedback" / "corpus" / "inbound"
FAMILIES = TESTS / "corpus"
_PLACEHOLDER = re.compile(r"\{\{(URL|TOKEN):([^}]+)\}\}")


def families() -> list[Path]:
    return sorted(p.parent for p in FAMILIES.glob("*/expected.json"))


def corpus(app: Adieu) -> tuple[list[bytes], list[str], str]:
    """The messages, the addresses they report on, and which corpus it is."""
    if families():
        messages, addresses = [], set()
        for family in families():
            expected = json.loads((family / "expected.json").read_text())
            for name, entry in sorted(expected.items()):
                if (family / name).is_file():
                    messages.append((family / name).read_bytes())
                    addresses.update(entry.get("recipients", {}))
        return messages, sorted(addresses), f"tests/corpus, {len(families())} families"
    expected = json.loads((CORPUS / "expected.json").read_text())
    named = sorted({e["address"] for e in expected.values() if "address" in e})
    return _inbound(app), named, "tests/feedback/corpus/inbound"


def _inbound(app: Adieu) -> list[bytes]:
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


def _flufl(messages: list[bytes]) -> None:
    for raw in messages:
        try:
            all_failures(email.message_from_bytes(raw))
        except Exception:  # some of its detectors fail on some real bounces
            continue


def per_second(messages: list[bytes], rounds: int, codec: object) -> tuple[float, float]:
    """Best-of-rounds rates of flufl.bounce and of ``classify``, interleaved
    (each goes first in turn: the regex cache and the machine's load weigh on both)."""
    best = {"flufl": float("inf"), "classify": float("inf")}

    def library(batch: list[bytes]) -> None:
        for raw in batch:
            classify(raw, codec)  # type: ignore[arg-type]

    runs = {"flufl": _flufl, "classify": library}
    for i in range(max(rounds, 2)):
        order = ("flufl", "classify") if i % 2 else ("classify", "flufl")
        for name in order:
            start = time.perf_counter()
            runs[name](messages)
            best[name] = min(best[name], time.perf_counter() - start)
    return len(messages) / best["flufl"], len(messages) / best["classify"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20, help="times through the corpus")
    args = parser.parse_args()
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="adieu-inbound-bench-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", base_url="https://mail.example.net")
        app = Adieu(settings)
        messages, addresses, which = corpus(app)
        app.ledger.record_sends(addresses)
        total = len(messages) * args.rounds
        logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)
        flufl_rate, classify_rate = per_second(messages, args.rounds, app.codec)

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

        # As an MTA hands them over: CRLF lines, none longer than SMTP allows
        wire = [
            lf.replace(b"\n", b"\r\n")
            for raw in messages
            if max(map(len, (lf := raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")).split(b"\n")))
            < 998
        ]
        batches = [wire * (args.rounds // 4 or 1)] * 4
        start = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(send, batches))
        listener_rate = sum(map(len, batches)) / (time.perf_counter() - start)
        controller.stop()

        env = {k: v for k, v in os.environ.items() if not k.startswith("ADIEU_")}
        env |= {"ADIEU_DATA_DIR": str(settings.data_dir), "ADIEU_CONFIG": str(Path(tmp) / "x.toml")}
        # 32 processes: the corpus evenly sampled (the whole old corpus, twice)
        piped = (messages * 2)[:: max(1, len(messages) // 16)][:32]
        start = time.perf_counter()
        for raw in piped:
            done = subprocess.run(
                [sys.executable, "-m", "adieu", "inbound", "-"],
                input=raw,
                env=env,
                capture_output=True,
            )
            assert done.returncode in (0, 65), done.stderr  # 65: unusable, kept for review
        pipe_rate = len(piped) / (time.perf_counter() - start)
        app.close()

    n = len(messages)
    rows.append(
        (
            f"classify, library ({n} messages of {which})",
            f"{classify_rate:,.0f} messages/s ({1000 / classify_rate:.2f} ms each)",
            f"flufl.bounce all_failures alone {flufl_rate:,.0f}/s"
            f" ({1000 / flufl_rate:.2f} ms each)",
            f"parsing included in both; {flufl_rate / classify_rate:.2f}x flufl.bounce's time"
            " per message; best of the rounds, interleaved",
        )
    )
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
            f"through `adieu inbound -` (one process per message, {len(piped)} messages)",
            f"{pipe_rate:,.1f} messages/s",
            f"flufl.bounce all_failures alone {flufl_rate:,.0f}/s",
            "a Postfix pipe transport's cost: interpreter start-up dominates",
        )
    )
    print_table("Adieu inbound benchmark", rows)


if __name__ == "__main__":
    main()
