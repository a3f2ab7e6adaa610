"""The returned-mail corpus, scored.

Every family directory under ``tests/corpus/`` holds messages and an
``expected.json`` naming, per message, every address it reports on and the
verdict a careful reader gives (see README.md). Each message is classified
with a token codec that knows none of the corpus's tokens, as mail from
another sender would be, and the findings are compared address by address.

``test_the_corpus_through_the_ledger`` then feeds every message through the
intake into the ledger, on SQLite and (``ADIEU_TEST_DATABASE_URL``) on
PostgreSQL: each listed address gets exactly the event its verdict names,
a dead address is no longer sendable, a sender-side refusal still is, and no
other address gets any event.

The table printed (``pytest -s``, or run this file) gives, per family and
overall, the recall and precision of dead-address verdicts (``hard_bounce``),
the sender-side refusals that would have suppressed their recipient, and the
complaints found. The test fails when dead-address recall or precision is
below 0.98, when more than 1 % of sender-side refusals are suppressed, or
when any finding names an address the message does not report on.

    .venv/bin/python tests/corpus/test_corpus.py [FAMILY ...]
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import func, select

from adieu.feedback import vocabulary
from adieu.feedback.classify import Classification, classify
from adieu.feedback.intake import Intake
from adieu.feedback.mime import parse, parseable, part_text, typed_parts
from adieu.ledger import schema
from adieu.service import Adieu
from adieu.tokens import TokenCodec

if TYPE_CHECKING:
    from conftest import MakeSettings

CORPUS = Path(__file__).resolve().parent
MIN_RECALL = 0.98
MIN_PRECISION = 0.98
MAX_SENDER_SIDE_SUPPRESSED = 0.01
HARD = "hard_bounce"
SENDER_SIDE = "rejection"
COMPLAINT = "complaint"


@dataclass(frozen=True)
class Case:
    family: str
    name: str
    raw: bytes
    kind: str
    recipients: dict[str, str]


@dataclass
class Tally:
    """What one family (or the whole corpus) scored."""

    messages: int = 0
    kind_agrees: int = 0
    hard_expected: int = 0
    hard_found: int = 0
    hard_right: int = 0
    sender_side: int = 0
    sender_side_suppressed: int = 0
    complaints: int = 0
    complaints_found: int = 0
    verdicts: int = 0
    verdicts_right: int = 0
    #: (message, address, expected, found) for every verdict that differs.
    misses: list[tuple[str, str, str, str]] = field(default_factory=list)
    #: (message, address, verdict) for findings about an address not listed.
    strangers: list[tuple[str, str, str]] = field(default_factory=list)
    #: (message, expected kind, kind found, note) where the message's kind differs.
    kinds: list[tuple[str, str, str, str]] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        for name in (
            "messages",
            "kind_agrees",
            "hard_expected",
            "hard_found",
            "hard_right",
            "sender_side",
            "sender_side_suppressed",
            "complaints",
            "complaints_found",
            "verdicts",
            "verdicts_right",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.misses.extend(other.misses)
        self.strangers.extend(other.strangers)
        self.kinds.extend(other.kinds)

    @property
    def recall(self) -> float:
        return self.hard_right / self.hard_expected if self.hard_expected else 1.0

    @property
    def precision(self) -> float:
        return self.hard_right / self.hard_found if self.hard_found else 1.0

    @property
    def suppressed(self) -> float:
        return self.sender_side_suppressed / self.sender_side if self.sender_side else 0.0

    @property
    def complaint_recall(self) -> float:
        return self.complaints_found / self.complaints if self.complaints else 1.0


def families(root: Path = CORPUS) -> list[Path]:
    return sorted(p.parent for p in root.glob("*/expected.json"))


def load(directory: Path) -> list[Case]:
    expected = json.loads((directory / "expected.json").read_text(encoding="utf-8"))
    cases = []
    for name, entry in sorted(expected.items()):
        path = directory / name
        if not path.is_file():
            continue  # listed before it was written
        recipients = {a.lower(): v for a, v in dict(entry.get("recipients", {})).items()}
        cases.append(Case(directory.name, name, path.read_bytes(), entry["kind"], recipients))
    return cases


def verdicts(result: Classification) -> dict[str, str]:
    """One verdict per address (the last finding for it, as the ledger keeps it)."""
    return {f.address: f.kind.value for f in result.findings}


def score(case: Case, result: Classification) -> Tally:
    tally = Tally(messages=1)
    label = f"{case.family}/{case.name}"
    kind = result.kind.value
    tally.kind_agrees = int(
        kind == case.kind or (case.kind == "unknown" and kind in ("unknown", "unusable"))
    )
    if not tally.kind_agrees:
        tally.kinds.append((label, case.kind, kind, result.note))
    found = verdicts(result)
    for address, verdict in found.items():
        if address not in case.recipients:
            tally.strangers.append((label, address, verdict))
    for address, expected in case.recipients.items():
        got = found.get(address, "-")
        tally.verdicts += 1
        tally.verdicts_right += got == expected
        if got != expected:
            tally.misses.append((label, address, expected, got))
        if expected == HARD:
            tally.hard_expected += 1
            tally.hard_right += got == HARD
        if expected == SENDER_SIDE:
            tally.sender_side += 1
            tally.sender_side_suppressed += got == HARD
        if expected == COMPLAINT:
            tally.complaints += 1
            tally.complaints_found += got == COMPLAINT
    tally.hard_found = sum(1 for v in found.values() if v == HARD)
    return tally


def run(directories: Iterable[Path]) -> tuple[dict[str, Tally], Tally]:
    codec = TokenCodec({1: os.urandom(32)})  # knows none of the corpus's tokens
    per_family: dict[str, Tally] = {}
    total = Tally()
    for directory in directories:
        tally = Tally()
        for case in load(directory):
            tally.add(score(case, classify(case.raw, codec, envelope_to=None)))
        per_family[directory.name] = tally
        total.add(tally)
    return per_family, total


def _ratio(value: float, count: int) -> str:
    return f"{value:.2f}" if count else "-"


def table(per_family: dict[str, Tally], total: Tally) -> str:
    head = (
        "family",
        "messages",
        "kind",
        "verdicts",
        "hard",
        "recall",
        "precision",
        "sender-side",
        "suppressed",
        "complaints",
        "found",
    )
    rows = [head]
    for name, t in [*per_family.items(), ("overall", total)]:
        rows.append(
            (
                name,
                str(t.messages),
                f"{t.kind_agrees}/{t.messages}",
                f"{t.verdicts_right}/{t.verdicts}",
                str(t.hard_expected),
                _ratio(t.recall, t.hard_expected),
                _ratio(t.precision, t.hard_found),
                str(t.sender_side),
                f"{t.suppressed:.1%}" if t.sender_side else "-",
                str(t.complaints),
                _ratio(t.complaint_recall, t.complaints),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for label, address, expected, got in total.misses:
        lines.append(f"miss      {label}: {address} expected {expected}, found {got}")
    for label, address, verdict in total.strangers:
        lines.append(f"stranger  {label}: {address} ({verdict}) is not a listed recipient")
    for label, expected, kind, note in total.kinds:
        lines.append(f"kind      {label}: expected {expected}, read as {kind} ({note})")
    return "\n".join(lines)


def test_the_corpus_scores() -> None:
    directories = families()
    if not directories:
        pytest.skip("no corpus family yet")
    per_family, total = run(directories)
    report = table(per_family, total)
    print("\n" + report)
    assert not total.strangers, report
    assert total.recall >= MIN_RECALL, report
    assert total.precision >= MIN_PRECISION, report
    assert total.suppressed <= MAX_SENDER_SIDE_SUPPRESSED, report


def test_the_corpus_through_the_ledger(make_settings: MakeSettings) -> None:
    """Every message through the intake (a send to each listed address is
    recorded first, so reports without a token are trusted), on each database."""
    cases = [case for directory in families() for case in load(directory)]
    if not cases:
        pytest.skip("no corpus family yet")
    expected: dict[str, str] = {}
    for case in cases:
        for address, verdict in case.recipients.items():
            assert expected.setdefault(address, verdict) == verdict, (case.name, address)
    app = Adieu(make_settings())
    try:
        app.ledger.record_sends(sorted(expected), category="transactional")
        intake = Intake(app)
        for case in cases:
            intake.process(case.raw)
        wrong = []
        for address, verdict in sorted(expected.items()):
            kinds = {e.type.value for e in app.ledger.history(address)}
            if kinds != {verdict}:
                wrong.append(f"{address}: expected {verdict}, recorded {sorted(kinds)}")
            sendable = app.policy.is_sendable(address, category="transactional")
            if sendable is (verdict == HARD):
                wrong.append(f"{address}: {verdict} but sendable is {sendable}")
        assert not wrong, "\n".join(wrong)
        listed = sum(len(app.ledger.history(a)) for a in expected)
        with app.engine.connect() as conn:
            recorded = conn.execute(select(func.count()).select_from(schema.events)).scalar_one()
        assert recorded == listed, "an event for an address no message reports on"
    finally:
        app.close()


def test_the_vocabulary_s_shortcut_finds_what_a_full_scan_finds() -> None:
    """Each entry is tried only where its anchor (literal text every match
    contains) is present: on every text of the corpus, that finds exactly
    what trying every entry finds."""
    directories = families()
    if not directories:
        pytest.skip("no corpus family yet")
    for directory in directories:
        for case in load(directory):
            message = parse(parseable(case.raw))
            for part, _ in typed_parts(message):
                said = vocabulary.phrase_text(part_text(part))
                full = {e.pattern for e in vocabulary.entries() if e.regex.search(said)}
                fast = {h.entry.pattern for h in vocabulary.hits(said)}
                assert fast == full, f"{case.family}/{case.name}: {sorted(full - fast)}"


if __name__ == "__main__":
    wanted = set(sys.argv[1:])
    chosen = [d for d in families() if not wanted or d.name in wanted]
    print(table(*run(chosen)))
