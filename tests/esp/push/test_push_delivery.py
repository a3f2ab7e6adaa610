"""Adieu's decisions reach each provider's suppression list through a local
stand-in that speaks its API: every kind of decision, removals, trouble at the
provider (down, slow, rate-limiting) and a deliverer killed mid-work."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from push_support import GROUP, TOPIC, StandIn, aws, stand_in
from push_support import deliverer_for as _deliverer
from push_support import drain as _drain
from push_support import pending as _pending

from adieu.cli import main
from adieu.esp.push.deliver import PushDeliverer
from adieu.esp.push.queue import PushQueue
from adieu.ledger import Channel
from adieu.ledger.vocabulary import DEAD, Reason
from adieu.service import Adieu
from conftest import MakeSettings
from support import adieu_env

__all__ = ["aws", "stand_in"]  # fixtures


@pytest.fixture
def pushing(make_settings: MakeSettings, stand_in: StandIn, aws: None) -> Iterator[Adieu]:
    app = Adieu(make_settings(**stand_in.settings()))
    app.ledger.add_topic(TOPIC, "News")
    yield app
    app.close()


def test_each_decision_arrives_at_every_provider(pushing: Adieu, stand_in: StandIn) -> None:
    ledger = pushing.ledger
    ledger.unsubscribe("leaver@example.com", channel=Channel.ONE_CLICK)
    ledger.record_complaint("angry@example.com")
    ledger.record_bounce("gone@example.com", hard=True)
    ledger.unsubscribe("reader@example.com", TOPIC, channel=Channel.LANDING_PAGE)
    ledger.record_bounce("soft@example.com", hard=False)  # not a decision
    _drain(pushing, _deliverer(pushing))
    lists = stand_in.lists
    assert lists.ses == {
        "leaver@example.com": "COMPLAINT",
        "angry@example.com": "COMPLAINT",
        "gone@example.com": "BOUNCE",
    }
    assert lists.sg_global == {"leaver@example.com", "angry@example.com", "gone@example.com"}
    assert lists.sg_groups == {GROUP: {"reader@example.com"}}
    assert lists.mg_unsubscribes == {"leaver@example.com": {"*"}, "reader@example.com": {TOPIC}}
    assert lists.mg_complaints == {"angry@example.com"}
    assert lists.mg_bounces == {"gone@example.com"}
    assert set(lists.pm) == {"leaver@example.com", "angry@example.com", "gone@example.com"}
    assert stand_in.bad_auth == []
    assert len(stand_in.applied) == 14, "each decision once per provider"


def test_resubscribe_and_an_operators_lift_remove_the_providers_entry(
    pushing: Adieu, stand_in: StandIn
) -> None:
    ledger = pushing.ledger
    ledger.unsubscribe("back@example.com", channel=Channel.ONE_CLICK)
    ledger.unsubscribe("fan@example.com", TOPIC, channel=Channel.ONE_CLICK)
    ledger.record_bounce("fixed@example.com", hard=True)
    ledger.unsubscribe("both@example.com", channel=Channel.ONE_CLICK)
    ledger.record_bounce("both@example.com", hard=True)
    deliverer = _deliverer(pushing)
    _drain(pushing, deliverer)
    ledger.resubscribe("back@example.com", channel=Channel.PREFERENCES)
    ledger.resubscribe("fan@example.com", TOPIC, channel=Channel.PREFERENCES)
    ledger.resubscribe(
        "fixed@example.com", channel=Channel.CLI, lift=[Reason.HARD_BOUNCE], note="typo fixed"
    )
    # The person's own resubscribe leaves their hard bounce: the entry stays.
    ledger.resubscribe("both@example.com", channel=Channel.PREFERENCES)
    _drain(pushing, deliverer)
    lists = stand_in.lists
    assert set(lists.ses) == {"both@example.com"}
    assert lists.sg_global == {"both@example.com"}
    assert lists.sg_groups[GROUP] == set()
    assert set(lists.mg_unsubscribes) == {"both@example.com"}
    assert lists.mg_bounces == {"both@example.com"}
    assert set(lists.pm) == {"both@example.com"}
    removed = {(p, a) for p, action, _, a in stand_in.applied if action == "remove"}
    assert ("ses", "back@example.com") in removed and ("mailgun", "fan@example.com") in removed
    assert ("sendgrid", "fixed@example.com") in removed


def test_an_event_from_a_provider_is_not_pushed_back_to_it(
    pushing: Adieu, stand_in: StandIn
) -> None:
    pushing.ledger.unsubscribe(
        "hook@example.com",
        channel=Channel.ESP,
        details={"provider": "sendgrid", "event_id": "e1"},
    )
    _drain(pushing, _deliverer(pushing))
    assert {p for p, *_ in stand_in.applied} == {"ses", "mailgun", "postmark"}


def test_trouble_at_the_provider_delays_but_never_loses_or_reorders(
    pushing: Adieu, stand_in: StandIn
) -> None:
    ledger = pushing.ledger
    people = [f"p{i}@example.com" for i in range(6)]
    for who in people:
        ledger.unsubscribe(who, channel=Channel.ONE_CLICK)
        ledger.resubscribe(who, channel=Channel.PREFERENCES)
        ledger.unsubscribe(who, channel=Channel.API)
    # Slow: an answer after the deliverer gave up (and nothing done). The
    # deliverer's timeout leaves a busy machine time for the answers that are
    # not slow, so that none of those is retried (and arrives twice).
    stand_in.slow_s = 2.5
    stand_in.script = ["down", "limit", "slow", "down", "down", "limit", "slow", "down"] * 3
    _drain(pushing, _deliverer(pushing, timeout=1.5), seconds=120)
    assert stand_in.script == [], "all the trouble was met"
    for provider in ("ses", "sendgrid", "mailgun", "postmark"):
        for who in people:
            actions = [a for p, a, _, addr in stand_in.applied if p == provider and addr == who]
            assert actions == ["add", "remove", "add"], (provider, who, actions)
    assert stand_in.bad_auth == []


def test_a_refusal_is_a_dead_letter_that_list_shows_and_replay_retries(
    pushing: Adieu,
    stand_in: StandIn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stand_in.script = ["refuse"]
    pushing.ledger.record_complaint("x@example.com")
    deliverer = _deliverer(pushing)
    _drain(pushing, deliverer)
    queue = PushQueue(pushing.engine, pushing.ledger.now)
    dead = queue.letters(DEAD)
    assert len(dead) == 1 and dead[0].last_error == "HTTP 400: bad request"
    for name, value in stand_in.settings().items():
        monkeypatch.setenv(f"ADIEU_{name.upper()}", str(value))
    monkeypatch.setenv("ADIEU_DATA_DIR", str(pushing.settings.data_dir))
    monkeypatch.setenv("ADIEU_DATABASE_URL", pushing.settings.sqlalchemy_url)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    shown = runner.invoke(main, ["esp", "list"], catch_exceptions=False)
    assert shown.exit_code == 0
    assert "127.0.0.1" in shown.output and "HTTP 400: bad request" in shown.output
    assert "x@example.com" not in shown.output
    rows = {line.split()[1]: line.split() for line in shown.output.splitlines() if "│" in line}
    assert any(r[1] in ("ses", "sendgrid", "mailgun", "postmark") for r in rows.values())
    replayed = runner.invoke(main, ["esp", "replay"], catch_exceptions=False)
    assert replayed.output.startswith("1 ")
    _drain(pushing, deliverer)
    assert queue.letters(DEAD) == []
    assert sum(1 for _, _, _, a in stand_in.applied if a == "x@example.com") == 4


def test_an_erased_persons_queued_pushes_keep_the_address_only_until_delivered(
    pushing: Adieu, stand_in: StandIn
) -> None:
    from sqlalchemy import select

    from adieu.ledger import schema as t

    pushing.ledger.unsubscribe("forget@example.com", channel=Channel.ONE_CLICK)
    pushing.ledger.erase("forget@example.com", channel=Channel.CLI)
    with pushing.engine.connect() as conn:
        waiting = conn.execute(select(t.esp_pushes.c.address)).scalars().all()
    assert waiting == ["forget@example.com"] * 4, "still owed to the providers"
    _drain(pushing, _deliverer(pushing))
    with pushing.engine.connect() as conn:
        kept = conn.execute(select(t.esp_pushes.c.address)).scalars().all()
    assert kept == [None] * 4
    assert "forget@example.com" in stand_in.lists.sg_global


@pytest.mark.slow
def test_a_deliverer_killed_mid_work_loses_nothing(
    pushing: Adieu, stand_in: StandIn, tmp_path: Path
) -> None:
    ledger = pushing.ledger
    people = [f"k{i}@example.com" for i in range(12)]
    for who in people:
        ledger.unsubscribe(who, channel=Channel.ONE_CLICK)
        ledger.resubscribe(who, channel=Channel.PREFERENCES)
    stand_in.slow_s = 0.5
    stand_in.script = ["slow", "down"] * 10
    env = adieu_env(
        pushing.settings,
        webhook_timeout="0.3",
        webhook_backoff="0.05",
        webhook_max_attempts="100",
        **{k: str(v) for k, v in stand_in.settings().items()},
    )
    log = tmp_path / "esp.log"

    def start() -> subprocess.Popen[bytes]:
        with log.open("ab") as fh:
            return subprocess.Popen(
                [sys.executable, "-m", "adieu", "esp", "run"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=fh,
            )

    first = start()
    deadline = time.monotonic() + 30
    while len(stand_in.applied) < 10:
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)  # leases are left behind
    first.wait(10)
    ledger.unsubscribe("late@example.com", channel=Channel.MAILTO)
    second = start()
    try:
        deadline = time.monotonic() + 60
        while _pending(pushing):
            assert time.monotonic() < deadline, f"{_pending(pushing)} still waiting"
            assert second.poll() is None, log.read_text()
            time.sleep(0.1)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(15) == 0
    for provider in ("ses", "sendgrid", "mailgun", "postmark"):
        for who in people:
            actions = [a for p, a, _, addr in stand_in.applied if p == provider and addr == who]
            # At least once: a row the killed deliverer had sent may go again.
            assert actions[0] == "add" and actions[-1] == "remove", (provider, who, actions)
        assert (provider, "add") in {
            (p, a) for p, a, _, who in stand_in.applied if who == "late@example.com"
        }
    assert stand_in.lists.sg_global == {"late@example.com"}
    assert stand_in.lists.mg_unsubscribes == {"late@example.com": {"*"}}


def test_lease_of_a_dead_deliverer_is_taken_over(pushing: Adieu, stand_in: StandIn) -> None:
    pushing.ledger.record_complaint("lease@example.com")
    queue = PushQueue(pushing.engine, pushing.ledger.now)
    taken = queue.claim(10, timedelta(seconds=0))
    assert len(taken) == 4
    _drain(pushing, _deliverer(pushing))
    assert "lease@example.com" in stand_in.lists.sg_global


def test_the_dashboard_shows_each_provider_with_its_backlog_and_dead_letters(
    pushing: Adieu, stand_in: StandIn
) -> None:
    from support import Client

    stand_in.script = ["refuse"]
    pushing.ledger.record_complaint("dash@example.com")
    asyncio.run(_deliverer(pushing).run_once())
    pushing.ledger.unsubscribe("waiting@example.com", channel=Channel.ONE_CLICK)
    _, key = pushing.api_keys.create("dashboard")
    client = Client(pushing)
    try:
        r = client.request("POST", "/admin/login", data={"key": key})
        assert r.status_code == 303
        page = client.request("GET", "/admin").text
    finally:
        client.close()
    section = page.split('<section id="esp">', 1)[1].split("</section>", 1)[0]
    body = section.split("<tbody>", 1)[1]
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in body.split("<tr>")[1:]]
    shown = {cells[0]: cells for cells in rows}
    assert set(shown) == {"ses", "sendgrid", "mailgun", "postmark"}
    assert all(cells[1].startswith("127.0.0.1:") for cells in rows)
    assert [cells[2] for cells in rows] == ["1"] * 4, "the new unsubscribe waits for each"
    assert sorted(cells[5] for cells in rows) == ["0", "0", "0", "1"], "the refused one"
    assert sorted(cells[4] for cells in rows) == ["0", "1", "1", "1"]
    assert "dash@example.com" not in page and "waiting@example.com" not in page


def test_a_429_holds_the_providers_pushes_until_its_retry_after(
    pushing: Adieu, stand_in: StandIn
) -> None:
    from sqlalchemy import select

    from adieu.ledger import schema as t

    for who in ("a@example.com", "b@example.com"):
        pushing.ledger.unsubscribe(who, channel=Channel.ONE_CLICK)
    now = pushing.ledger.now()
    stand_in.script = ["limit"]
    deliverer = _deliverer(pushing, concurrency=1, clock=lambda: now)
    queue = PushQueue(pushing.engine, lambda: now)
    deliverer.queue = queue
    claimed = [p for p in queue.claim(100) if p.provider == "sendgrid"]
    assert len(claimed) == 2
    rounds = asyncio.run(_one_round(deliverer, claimed))
    deliverer._record([rounds])
    q = t.esp_pushes
    with pushing.engine.connect() as conn:
        rows = conn.execute(
            select(q.c.attempts, q.c.next_attempt_at, q.c.last_error)
            .where(q.c.provider == "sendgrid")
            .order_by(q.c.id)
        ).all()
    # The limited one counts an attempt; the other was not tried; both wait 1 s.
    assert [r.attempts for r in rows] == [1, 0]
    assert {r.next_attempt_at for r in rows} == {now + timedelta(seconds=1)}
    assert all(r.last_error == "HTTP 429: Too Many Requests" for r in rows)
    assert stand_in.lists.sg_global == set()


async def _one_round(deliverer: PushDeliverer, claimed: list[Any]) -> Any:
    async with deliverer.client() as client:
        return await deliverer._provider_round(client, "sendgrid", claimed)


def test_a_one_click_unsubscribe_through_the_web_door_reaches_the_providers(
    pushing: Adieu, stand_in: StandIn
) -> None:
    from support import Client

    link = pushing.link("clicker@example.com")
    client = Client(pushing)
    try:
        r = client.request(
            "POST",
            f"/u/{link.token}",
            content=b"List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 200
    finally:
        client.close()
    _drain(pushing, _deliverer(pushing))
    assert "clicker@example.com" in stand_in.lists.sg_global
    assert stand_in.lists.ses.get("clicker@example.com") == "COMPLAINT"
    assert stand_in.lists.mg_unsubscribes.get("clicker@example.com") == {"*"}
    assert "clicker@example.com" in stand_in.lists.pm


def test_an_erased_persons_dead_letters_lose_the_address(pushing: Adieu, stand_in: StandIn) -> None:
    from sqlalchemy import select

    from adieu.ledger import schema as t

    stand_in.script = ["refuse"] * 4
    pushing.ledger.record_complaint("dead@example.com")
    _drain(pushing, _deliverer(pushing))
    queue = PushQueue(pushing.engine, pushing.ledger.now)
    assert len(queue.letters(DEAD)) == 4
    pushing.ledger.erase("dead@example.com", channel=Channel.CLI)
    with pushing.engine.connect() as conn:
        kept = conn.execute(select(t.esp_pushes.c.address)).scalars().all()
    assert kept == [None] * 4
    assert queue.replay() == 0, "nothing left to send them with"
