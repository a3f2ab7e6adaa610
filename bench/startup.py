"""How long the ``adieu`` command takes to start, beside floors measured in the same run.

    .venv/bin/python bench/startup.py             # 15 runs of each, a Markdown table
    .venv/bin/python bench/startup.py --runs 5    # quicker
    .venv/bin/python bench/startup.py --json      # the raw figures

Floors: ``python -c pass``, ``python -c 'import click'`` and
``python -c 'import sqlalchemy, cryptography'``, all with the venv's python. Each command
runs in a fresh data directory of its own (``ADIEU_DATA_DIR``), with no other ``ADIEU_*``
variable and that directory as cwd (so no ``adieu.toml`` is read), once untimed to create
the keys and the database and to warm the file cache. Then ``--runs`` rounds, each
running every floor and every command once, so that load on the machine weighs on both.

Targets: ``--help`` and ``--version`` within 3 × the click floor (``python -c pass``
plus importing click: what any click program pays); ``link``, ``status`` and
``inbound -`` within 1.5 × the sqlalchemy + cryptography floor. The exit status is 0
whether targets are met or not; a command that fails (other than ``inbound -``, whose
exit code is recorded) stops the run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from pathlib import Path

PYTHON = sys.executable
ADIEU = str(Path(sys.executable).with_name("adieu"))

PASS, CLICK, STACK = "pass", "click", "sqlalchemy+cryptography"  # the floors' keys
FLOORS: dict[str, str] = {  # key: the code python -c runs
    PASS: "pass",
    CLICK: "import click",
    STACK: "import sqlalchemy, cryptography",
}


@dataclass
class Job:
    """One thing to time: a floor or an adieu command."""

    name: str
    args: list[str]
    env: dict[str, str]
    cwd: Path
    stdin: bytes = b""
    may_fail: bool = False
    runs_ms: list[float] = field(default_factory=list)
    exit_codes: list[int] = field(default_factory=list)


@dataclass
class Result:
    command: str
    runs_ms: list[float]
    median_ms: float
    target_ms: float
    floor: str
    ratio: float
    met: bool
    exit_codes: list[int]


def unsubscribe_message() -> bytes:
    """A small mailto unsubscribe request, as a list member's mail client sends it."""
    msg = EmailMessage()
    msg["From"] = "someone@example.org"
    msg["To"] = "unsubscribe@example.org"
    msg["Subject"] = "unsubscribe"
    msg.set_content("Please take me off this list.")
    return msg.as_bytes()


def clean_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADIEU_")}
    env["ADIEU_DATA_DIR"] = str(data_dir)
    return env


def run_once(job: Job) -> tuple[float, int]:
    """Seconds of wall clock and the exit code; a failure is fatal unless ``may_fail``."""
    start = time.perf_counter()
    proc = subprocess.run(job.args, input=job.stdin, env=job.env, cwd=job.cwd, capture_output=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0 and not job.may_fail:
        sys.stderr.write(proc.stdout.decode(errors="replace"))
        sys.stderr.write(proc.stderr.decode(errors="replace"))
        raise SystemExit(f"{' '.join(job.args)} exited {proc.returncode}")
    return elapsed, proc.returncode


def measure(jobs: list[Job], runs: int) -> None:
    """Each job once untimed (keys, database, file cache), then ``runs`` rounds of every
    job in turn, so that a change in the machine's load touches floors and commands alike."""
    for job in jobs:
        run_once(job)
    for _ in range(runs):
        for job in jobs:
            elapsed, code = run_once(job)
            job.runs_ms.append(elapsed * 1000)
            job.exit_codes.append(code)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs of each (default 15)")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    opts = parser.parse_args()
    if opts.runs < 1:
        parser.error("--runs must be at least 1")
    if not Path(ADIEU).exists():
        raise SystemExit(f"no adieu next to {PYTHON}: run this with the venv's python")

    commands: list[tuple[str, list[str], str, bytes, bool]] = [
        # name, arguments, the floor it is compared with, stdin, whether it may exit non-zero
        ("adieu --help", ["--help"], CLICK, b"", False),
        ("adieu --version", ["--version"], CLICK, b"", False),
        ("adieu link demo@example.com", ["link", "demo@example.com"], STACK, b"", False),
        ("adieu status demo@example.com", ["status", "demo@example.com"], STACK, b"", False),
        ("adieu inbound -", ["inbound", "-"], STACK, unsubscribe_message(), True),
    ]
    with ExitStack() as stack:

        def fresh_dir() -> Path:
            return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="adieu-startup-")))

        floor_dir = fresh_dir()
        floor_jobs = {
            key: Job(f"python -c '{code}'", [PYTHON, "-c", code], clean_env(floor_dir), floor_dir)
            for key, code in FLOORS.items()
        }
        command_jobs: list[tuple[Job, str]] = []
        for name, args, floor, stdin, may_fail in commands:
            data_dir = fresh_dir()  # one per command
            job = Job(name, [ADIEU, *args], clean_env(data_dir), data_dir, stdin, may_fail)
            command_jobs.append((job, floor))
        measure([*floor_jobs.values(), *(job for job, _ in command_jobs)], opts.runs)

    floors = {key: statistics.median(job.runs_ms) for key, job in floor_jobs.items()}
    targets = {  # by the floor a command is compared with
        CLICK: 3 * floors[CLICK],
        STACK: 1.5 * floors[STACK],
    }
    results: list[Result] = []
    for job, floor in command_jobs:
        median = statistics.median(job.runs_ms)
        results.append(
            Result(
                command=job.name,
                runs_ms=job.runs_ms,
                median_ms=median,
                target_ms=targets[floor],
                floor=floor,
                ratio=median / floors[floor],
                met=median <= targets[floor],
                exit_codes=job.exit_codes,
            )
        )

    met = sum(r.met for r in results)
    if opts.json:
        print(
            json.dumps(
                {
                    "python": PYTHON,
                    "runs": opts.runs,
                    "floors_ms": floors,
                    "floor_runs_ms": {key: job.runs_ms for key, job in floor_jobs.items()},
                    "commands": [asdict(r) for r in results],
                    "targets_met": met,
                    "targets": len(results),
                },
                indent=2,
            )
        )
        return

    for key, code in FLOORS.items():
        print(f"floor `python -c '{code}'`: {floors[key]:.1f} ms (median of {opts.runs})")
    print()
    print("| command | median ms | target ms | ratio to floor | met? |")
    print("|---|---:|---:|---:|---|")
    for r in results:
        floor_name = "click floor" if r.floor == CLICK else "sqlalchemy+cryptography floor"
        print(
            f"| `{r.command}` | {r.median_ms:.0f} | {r.target_ms:.0f} "
            f"| {r.ratio:.2f}× {floor_name} | {'met' if r.met else 'missed'} |"
        )
    print()
    for r in results:
        if any(r.exit_codes) or r.command == "adieu inbound -":
            codes = ", ".join(map(str, sorted(set(r.exit_codes))))
            print(f"`{r.command}` exited {codes}")
    print(f"{met} of {len(results)} targets met")


if __name__ == "__main__":
    main()
