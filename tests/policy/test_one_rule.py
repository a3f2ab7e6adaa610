"""One send rule: every door that decides gives the same answer and the same reason.

Random ledger states (suppressions of every reason and scope, topic choices,
pauses, recorded sends, erasures) are built through the ledger's own
operations; then ``Policy.may_send``, ``POST /api/v1/check``, ``adieu filter``
(``lists.filter_file``, the command's engine) and the relay's RCPT answer are
asked about every (address, topic, category), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import cast

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adieu import lists
from adieu.cli import main
from adieu.errors import Erased
from adieu.ledger import Channel, Frequency, Ledger, Reason, SuppressionRecord
from adieu.ledger.vocabulary import Scope
from adieu.policy import Category, Decision
from adieu.service import Adieu
from adieu.smtp.relay import RelayConfig, RelayHandler
from support import Client, adieu_env

TOPICS = (None, "news", "events")  # events: people must opt in
CATEGORIES = tuple(Category)

# What can be true of one address, each built by the ledger operation that
# makes it so in real use.
Action = tuple[str, object]
ACTIONS = st.sampled_from(
    [
        ("unsubscribe", "all"),
        ("unsubscribe", "news"),
        ("unsubscribe", "events"),
        ("complaint", None),
        ("hard_bounce", None),
        ("import", (Reason.MANUAL, "all")),
        ("import", (Reason.IMPORT, "all")),
        ("import", (Reason.IMPORT, "news")),
        ("import", (Reason.HARD_BOUNCE, "news")),  # a hard bounce has no topic
        ("import", (Reason.COMPLAINT, "events")),
        ("subscribe", "events"),
        ("pause", 10),
        ("pause", -10),
        ("frequency", (Frequency.WEEKLY, 3)),
        ("frequency", (Frequency.WEEKLY, 9)),
        ("frequency", (Frequency.MONTHLY, 20)),
        ("frequency", (Frequency.MONTHLY, 40)),
        ("send", 1),
        ("resubscribe", "all"),
        ("erase", None),
    ]
)
PEOPLE = st.lists(st.lists(ACTIONS, max_size=4), min_size=1, max_size=4)
_serial = itertools.count()


def apply(adieu: Adieu, address: str, action: Action) -> None:
    ledger = adieu.ledger
    # Erasure is final: what would lift it is refused, and changes nothing.
    with contextlib.suppress(Erased):
        _apply(ledger, address, action)


def _apply(ledger: Ledger, address: str, action: Action) -> None:
    now = ledger.now()
    what, arg = action
    if what == "unsubscribe":
        ledger.unsubscribe(address, str(arg), channel=Channel.API)
    elif what == "complaint":
        ledger.record_complaint(address)
    elif what == "hard_bounce":
        ledger.record_bounce(address, hard=True)
    elif what == "import":
        reason, scope = cast(tuple[Reason, str], arg)
        ledger.import_suppressions([SuppressionRecord(address, scope=scope, reason=reason)])
    elif what == "subscribe":
        ledger.set_preferences(address, topics={str(arg): True})
    elif what == "pause":
        ledger.set_preferences(address, paused_until=now + timedelta(days=cast(int, arg)))
    elif what == "frequency":
        frequency, days_ago = cast(tuple[Frequency, int], arg)
        ledger.set_preferences(address, frequency=frequency)
        ledger.record_send(address, at=now - timedelta(days=days_ago))
    elif what == "send":
        ledger.record_send(address, at=now - timedelta(days=cast(int, arg)))
    elif what == "resubscribe":
        ledger.resubscribe(address, str(arg), channel=Channel.API)
    elif what == "erase":
        ledger.erase(address, channel=Channel.API)


def rcpt_answer(handler: RelayHandler, address: str) -> str:
    session = SimpleNamespace(authenticated=True, peer=("127.0.0.1", 1))
    envelope = SimpleNamespace(rcpt_tos=[], rcpt_options=[])
    return asyncio.run(handler.handle_RCPT(None, session, envelope, address, []))  # type: ignore[arg-type]


def filtered(
    adieu: Adieu, addresses: list[str], topic: str | None, category: Category
) -> tuple[set[str], Counter[str]]:
    out = io.BytesIO()
    source = io.BytesIO("".join(f"{a}\n" for a in addresses).encode())
    report = lists.filter_file(adieu.policy, source, out, topic=topic, category=category, workers=1)
    return set(out.getvalue().decode().split()), Counter(report.removed)


@pytest.fixture
def doors(adieu: Adieu) -> Iterator[tuple[Client, dict[tuple[str | None, Category], RelayHandler]]]:
    adieu.ledger.add_topic("news", "News")
    adieu.ledger.add_topic("events", "Events", default_opt_in=False)
    _, key = adieu.api_keys.create("checker", scope=Scope.SEND)
    api = Client(adieu, headers={"Authorization": f"Bearer {key}"})
    relays = {
        (topic, category): RelayHandler(
            adieu, RelayConfig(upstream=("127.0.0.1", 9), topic=topic, category=category.value)
        )
        for topic in TOPICS
        for category in CATEGORIES
    }
    yield api, relays
    api.close()
    for handler in relays.values():
        handler.close()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(people=PEOPLE)
def test_every_door_gives_the_same_answer_and_reason(
    adieu: Adieu,
    doors: tuple[Client, dict[tuple[str | None, Category], RelayHandler]],
    people: list[list[Action]],
) -> None:
    api, relays = doors
    run = next(_serial)
    addresses = [f"p{run}-{i}@example.com" for i in range(len(people))]
    for address, actions in zip(addresses, people, strict=True):
        for action in actions:
            apply(adieu, address, action)
    for topic, category in itertools.product(TOPICS, CATEGORIES):
        decided: list[Decision] = [
            adieu.policy.may_send(address, topic, category) for address in addresses
        ]
        checked = api.request(
            "POST",
            "/api/v1/check",
            json={"addresses": addresses, "topic": topic, "category": category.value},
        ).json()["results"]
        assert [(r["allowed"], r["reason"]) for r in checked] == [
            (d.allowed, d.reason) for d in decided
        ], (topic, category)
        kept, removed = filtered(adieu, addresses, topic, category)
        assert kept == {a for a, d in zip(addresses, decided, strict=True) if d}, (topic, category)
        assert removed == Counter(d.reason for d in decided if not d), (topic, category)
        for address, decision in zip(addresses, decided, strict=True):
            answer = rcpt_answer(relays[(topic, category)], address)
            if decision:
                assert answer.startswith("250"), (address, topic, category, answer)
            else:
                assert answer.startswith("550 5.7.1"), (address, topic, category, answer)
                assert answer.endswith(f": {decision.reason}"), (address, topic, category)


def test_a_hard_bounce_imported_for_a_topic_stops_all_mail(adieu: Adieu) -> None:
    """``adieu import --topic news --reason hard_bounce``: the bounce is about the
    mailbox, so check and filter both refuse even transactional mail."""
    adieu.ledger.add_topic("news", "News")
    source = adieu.settings.data_dir / "bounces.csv"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text("email\ndead@example.com\n")
    env = adieu_env(adieu.settings)
    result = CliRunner().invoke(
        main,
        ["import", str(source), "--topic", "news", "--reason", "hard_bounce"],
        env=env,
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    for topic in (None, "news"):
        for category in CATEGORIES:
            decision = adieu.policy.may_send("dead@example.com", topic, category)
            assert decision.reason == "hard_bounce", (topic, category)
            kept, removed = filtered(adieu, ["dead@example.com"], topic, category)
            assert not kept and removed == Counter({"hard_bounce": 1}), (topic, category)
    assert [
        (s.scope, s.reason) for s in adieu.ledger.status("dead@example.com").state.suppressions
    ] == [("all", Reason.HARD_BOUNCE)]
