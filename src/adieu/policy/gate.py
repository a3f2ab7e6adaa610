"""The send gate: the rule (``adieu.policy.rules``) applied to the ledger's
state, one address at a time (``may_send``), in batches (``check_many``) or to
whole lists (``screen``, ``filter``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from adieu.addresses import canonical
from adieu.errors import AdieuError
from adieu.ledger import Ledger, SendState
from adieu.policy.rules import (
    FREQUENCY_WINDOW,
    INVALID_ADDRESS,
    Category,
    Decision,
    decide,
    facts_for,
    reason_of,
)
from adieu.scopes import ALL

if TYPE_CHECKING:
    from adieu.policy.screen import Screen

T = TypeVar("T")


@dataclass(slots=True)
class FilterReport:
    """What ``filter`` kept and removed, and which input rows were unusable."""

    kept: int = 0
    removed: dict[str, int] = field(default_factory=dict)
    invalid: list[tuple[int, str]] = field(default_factory=list)
    invalid_count: int = 0

    @property
    def removed_total(self) -> int:
        return sum(self.removed.values())

    def count(self, reason: str, n: int = 1) -> None:
        label = reason_of(reason)
        self.removed[label] = self.removed.get(label, 0) + n


class Policy:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def may_send(
        self,
        address: str,
        topic: str | None = None,
        category: Category | str = Category.MARKETING,
        at: datetime | None = None,
    ) -> Decision:
        scope = None if topic in (None, ALL) else topic
        topic_obj = self.ledger.sendable_topic(scope) if scope else None
        state = self.ledger.send_state(address, scope)
        return decide(state, topic_obj, Category(category), at or self.ledger.now())

    def is_sendable(
        self,
        address: str,
        topic: str | None = None,
        category: Category | str = Category.MARKETING,
        at: datetime | None = None,
    ) -> bool:
        return self.may_send(address, topic, category, at).allowed

    def check_many(
        self,
        addresses: Sequence[str],
        topic: str | None = None,
        category: Category | str = Category.MARKETING,
        at: datetime | None = None,
    ) -> list[Decision]:
        """``may_send`` for a batch, in its order, with one query per 1,000
        addresses. An address that is not valid gets ``invalid_address``."""
        scope = None if topic in (None, ALL) else topic
        topic_obj = self.ledger.sendable_topic(scope) if scope else None
        kind = Category(category)
        at = at or self.ledger.now()
        hasher = self.ledger.hasher
        digests: list[bytes | None] = []
        for raw in addresses:
            try:
                digests.append(hasher.hash(canonical(raw)))
            except AdieuError:
                digests.append(None)
        states = self.ledger.send_states([d for d in digests if d is not None], scope)
        # States shared by many addresses (unknown, known with nothing holding)
        # are decided once.
        decided: dict[int, Decision] = {}
        unknown = decide(SendState(known=False), topic_obj, kind, at)
        results = []
        for d in digests:
            if d is None:
                results.append(INVALID_ADDRESS)
                continue
            state = states.get(d)
            if state is None:
                results.append(unknown)
                continue
            key = id(state)
            found = decided.get(key)
            if found is None:
                found = decide(state, topic_obj, kind, at)
                if not state.suppressions:
                    decided[key] = found
            results.append(found)
        return results

    def sendable_by_topic(
        self, state: SendState, at: datetime | None = None
    ) -> dict[str, Decision]:
        """For ``status``: the marketing decision overall ("all") and per topic."""
        at = at or self.ledger.now()
        result = {ALL: decide(state, None, Category.MARKETING, at)}
        for topic in self.ledger.topics():
            result[topic.key] = decide(state, topic, Category.MARKETING, at)
        return result

    def screen(
        self,
        topic: str | None = None,
        category: Category | str = Category.MARKETING,
        at: datetime | None = None,
    ) -> Screen:
        """Load who may not be mailed now, for screening many addresses."""
        self.ledger.send_scope(topic)
        blocked = self.ledger.blocklist(
            topic,
            at or self.ledger.now(),
            facts=facts_for(Category(category)),
            windows=FREQUENCY_WINDOW,
        )
        from adieu.policy.screen import Screen  # bulk work only: not for one address

        return Screen(blocked, self.ledger.hasher)

    def filter(
        self,
        rows: Iterable[T],
        address_of: Callable[[T], str],
        *,
        line_of: Callable[[T], int] | None = None,
        topic: str | None = None,
        category: Category | str = Category.MARKETING,
        at: datetime | None = None,
        report: FilterReport | None = None,
        max_invalid_listed: int = 100,
    ) -> Iterator[T]:
        """Yield the rows whose address may be mailed now, streaming.

        The blocklist is loaded once; each row then costs a dictionary lookup.
        Invalid addresses are counted with their line number (``line_of``, or
        the row's 1-based position).
        """
        from adieu.policy.screen import INVALID

        report = report if report is not None else FilterReport()
        screen = self.screen(topic, category, at)
        for number, row in enumerate(rows, start=1):
            raw = address_of(row)
            if not raw.strip():
                continue
            why = screen.reason(raw)
            if why is None:
                report.kept += 1
                yield row
            elif why == INVALID:
                report.invalid_count += 1
                if len(report.invalid) < max_invalid_listed:
                    report.invalid.append((line_of(row) if line_of else number, raw.strip()[:80]))
            else:
                report.count(why)
