"""Adieu's benchmarks: one command, one table, each figure beside a baseline
measured in the same run on the same machine.

    .venv/bin/python bench/run.py            # full sizes (a few minutes)
    .venv/bin/python bench/run.py --quick    # smaller sizes, for a smoke run

PostgreSQL rows run when ADIEU_BENCH_DATABASE_URL (or ADIEU_TEST_DATABASE_URL)
names a server; the benchmark works in a schema of its own and drops it.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import insert, text

from adieu.ledger import Channel, Frequency, Reason, SuppressionRecord
from adieu.ledger import schema as t
from adieu.service import Adieu
from adieu.settings import Settings
from common import console, postgres_schema, print_table

rows: list[tuple[str, str, str, str]] = []


def row(what: str, result: str, baseline: str, note: str = "") -> None:
    rows.append((what, result, baseline, note))
    console.print(f"[dim]{what}: {result} (baseline {baseline}) {note}[/]")


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s"


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


# -- tokens --------------------------------------------------------------------


def bench_tokens(app: Adieu, n: int) -> None:
    codec = app.codec
    address = "firstname.lastname@example.com"
    tokens = [codec.mint(address, "news", "2026-11", "sv") for _ in range(n)]

    def mint() -> None:
        m = codec.mint
        for _ in range(n):
            m(address, "news", "2026-11", "sv")

    def open_all() -> None:
        o = codec.open
        for tok in tokens:
            o(tok)

    aead = AESGCM(os.urandom(32))
    plaintext = b"\x00" * (4 + len("sv\x00news\x002026-11\x00" + address) + 2)
    header = b"\x01\x00\x01"
    nonce = os.urandom(12)
    sealed = aead.encrypt(nonce, plaintext, header)

    def raw_encrypt() -> None:
        enc, urandom = aead.encrypt, os.urandom
        for _ in range(n):
            enc(urandom(12), plaintext, header)

    def raw_decrypt() -> None:
        dec = aead.decrypt
        for _ in range(n):
            dec(nonce, sealed, header)

    t_mint, t_open = best_of(3, mint), best_of(3, open_all)
    t_enc, t_dec = best_of(3, raw_encrypt), best_of(3, raw_decrypt)
    length = len(tokens[0])
    row(
        "token mint (1 core)",
        rate(n, t_mint),
        f"raw AES-GCM encrypt {rate(n, t_enc)}",
        f"{length}-char token for a 30-char address",
    )
    row(
        "token open (1 core)",
        rate(n, t_open),
        f"raw AES-GCM decrypt {rate(n, t_dec)}",
        "includes base64url and payload parsing",
    )


# -- ledger setup ----------------------------------------------------------------


def fill_ledger(app: Adieu, suppressed: list[str], plain: list[str]) -> float:
    """Suppressions through the ledger's own import; other contacts by bulk insert."""
    start = time.perf_counter()
    reasons = [Reason.UNSUBSCRIBE] * 8 + [Reason.HARD_BOUNCE, Reason.COMPLAINT]
    app.ledger.import_suppressions(
        (SuppressionRecord(address=a, reason=reasons[i % 10]) for i, a in enumerate(suppressed)),
        batch_size=5000,
    )
    now = app.ledger.now()
    with app.engine.begin() as conn:
        for start_at in range(0, len(plain), 20000):
            conn.execute(
                insert(t.contacts),
                [
                    {
                        "address_hash": app.hasher.hash(a),
                        "address": a,
                        "created_at": now,
                        "frequency": Frequency.EVERY.value,
                        "soft_bounces": 0,
                    }
                    for a in plain[start_at : start_at + 20000]
                ],
            )
    if app.engine.dialect.name == "postgresql":  # the contacts above bypassed the import
        with app.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE contacts")
    return time.perf_counter() - start


def make_addresses(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    domains = [
        "gmail.com",
        "yahoo.com",
        "outlook.com",
        "example.org",
        "mail.example.co.uk",
        "hey.com",
        "icloud.com",
        "web.de",
    ]
    letters = "abcdefghijklmnopqrstuvwxyz"
    return [
        f"{''.join(rng.choices(letters, k=6))}.{i}@{domains[i % len(domains)]}" for i in range(n)
    ]


# -- filter ----------------------------------------------------------------------

NAIVE = """
import sys
suppressed = {line.strip().lower() for line in open(sys.argv[1])}
with open(sys.argv[3], "w") as out:
    for line in open(sys.argv[2]):
        if line.strip().lower() not in suppressed:
            out.write(line)
"""


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def bench_filter(workdir: Path, settings: Settings, n_list: int, n_supp: int) -> None:
    everyone = make_addresses(n_list, seed=7)
    rng = random.Random(3)
    suppressed = rng.sample(everyone, n_supp)
    app = Adieu(settings)
    load = fill_ledger(app, suppressed, [])
    app.close()
    listing = workdir / "list.txt"
    listing.write_text("\n".join(everyone) + "\n")
    supp_file = workdir / "suppressed.txt"
    supp_file.write_text("\n".join(suppressed) + "\n")
    env = {
        **os.environ,
        "ADIEU_DATA_DIR": str(settings.data_dir),
        "ADIEU_DATABASE_URL": settings.sqlalchemy_url,
    }
    adieu_bin = str(Path(sys.executable).with_name("adieu"))
    out = workdir / "out.txt"
    t_adieu = min(
        timed([adieu_bin, "filter", str(listing), "--output", str(out)], env) for _ in range(3)
    )
    kept = sum(1 for _ in out.open())
    assert kept == n_list - n_supp, (kept, n_list, n_supp)
    naive_out = workdir / "naive.txt"
    t_naive = min(
        timed([sys.executable, "-c", NAIVE, str(supp_file), str(listing), str(naive_out)])
        for _ in range(3)
    )
    assert out.read_bytes() == naive_out.read_bytes()
    grep = shutil.which("grep")
    t_grep = None
    if grep:
        start = time.perf_counter()
        with (workdir / "grep.txt").open("w") as fh:
            subprocess.run([grep, "-vxFf", str(supp_file), str(listing)], stdout=fh, check=False)
        t_grep = time.perf_counter() - start
    row(
        f"adieu filter, {n_list:,} addresses vs {n_supp:,} suppressions in the ledger (SQLite)",
        f"{n_list / t_adieu:,.0f} rows/s ({t_adieu:.2f} s)",
        f"naive Python set script {n_list / t_naive:,.0f} rows/s ({t_naive:.2f} s)"
        + (f"; grep -vxFf {n_list / t_grep:,.0f} rows/s ({t_grep:.2f} s)" if t_grep else ""),
        f"{t_naive / t_adieu:.2f}x naive"
        + (f", {t_grep / t_adieu:.1f}x grep" if t_grep else "")
        + f"; end to end incl. validation and loading from the ledger (import took {load:.0f} s)",
    )


# -- lookups and commits ---------------------------------------------------------------


def bench_lookups(settings: Settings, n_contacts: int, n_lookups: int, label: str) -> None:
    app = Adieu(settings)
    people = make_addresses(n_contacts, seed=11)
    half = n_contacts // 2
    load = fill_ledger(app, people[:half], people[half:])
    rng = random.Random(5)
    sample = [rng.choice(people) for _ in range(n_lookups)]
    policy = app.policy
    policy.is_sendable(sample[0])

    def lookups() -> None:
        for a in sample:
            policy.is_sendable(a)

    t_lookup = best_of(2, lookups)
    # Baseline: the same indexed lookup, one raw DB-API query per address.
    raw = app.engine.raw_connection()
    cursor = raw.cursor()
    hashes = [app.hasher.hash(a) for a in sample]
    marker = "%s" if app.engine.dialect.name == "postgresql" else "?"
    sql = f"SELECT id FROM contacts WHERE address_hash = {marker}"

    def raw_lookups() -> None:
        for h in hashes:
            cursor.execute(sql, (h,))
            cursor.fetchall()

    t_raw = best_of(2, raw_lookups)
    raw.close()
    row(
        f"is_sendable, {n_contacts:,} contacts ({label})",
        rate(n_lookups, t_lookup),
        f"raw primary-key SELECT {rate(n_lookups, t_raw)}",
        f"full policy decision incl. address parsing and HMAC (setup {load:.0f} s)",
    )

    fresh = make_addresses(2000 if label == "SQLite" else 3000, seed=13)
    latencies = []
    start = time.perf_counter()
    for a in fresh:
        t0 = time.perf_counter()
        app.ledger.unsubscribe(a, channel=Channel.API)
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    # Baseline: a bare durable commit of one small row on the same database.
    with app.engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS bench_commit (id INTEGER)"))
    w_start = time.perf_counter()
    for i in range(len(fresh)):
        with app.engine.begin() as conn:
            conn.execute(text("INSERT INTO bench_commit VALUES (:i)"), {"i": i})
    t_bare = time.perf_counter() - w_start
    row(
        f"unsubscribe commits ({label})",
        f"{len(fresh) / elapsed:,.0f}/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms",
        f"bare one-row durable commit {rate(len(fresh), t_bare)}",
        "one transaction each: state + event, synchronous durability",
    )
    app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--only", choices=["tokens", "filter", "lookups"], help="run one part")
    args = parser.parse_args()
    scale = 0.05 if args.quick else 1.0
    n_list, n_supp = int(3_000_000 * scale), int(500_000 * scale)
    n_contacts = int(1_000_000 * scale)
    pg = os.environ.get("ADIEU_BENCH_DATABASE_URL") or os.environ.get("ADIEU_TEST_DATABASE_URL")
    with tempfile.TemporaryDirectory(prefix="adieu-bench-") as tmp:
        workdir = Path(tmp)
        if args.only in (None, "tokens"):
            app = Adieu(Settings(data_dir=workdir / "tokens"))
            bench_tokens(app, 100_000 if not args.quick else 20_000)
            app.close()
        if args.only in (None, "filter"):
            bench_filter(workdir, Settings(data_dir=workdir / "filter"), n_list, n_supp)
        if args.only not in (None, "lookups"):
            pg = None
        else:
            bench_lookups(
                Settings(data_dir=workdir / "lookups"),
                n_contacts,
                50_000 if not args.quick else 5000,
                "SQLite",
            )
        if pg:
            with postgres_schema(pg) as url:
                bench_lookups(
                    Settings(data_dir=workdir / "pg", database_url=url),
                    n_contacts,
                    50_000 if not args.quick else 5000,
                    "PostgreSQL",
                )
    print_table("Adieu benchmarks", rows)


if __name__ == "__main__":
    main()
