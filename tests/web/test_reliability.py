"""Durability and concurrency, with real processes (SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from adieu.ledger import EventType
from adieu.service import Adieu
from adieu.settings import Settings
from support import adieu_env

UNSUBSCRIBER = textwrap.dedent(
    """
    import sys
    from adieu.ledger import Channel
    from adieu.service import Adieu
    from adieu.settings import Settings

    ledger = Adieu(Settings()).ledger
    i = 0
    while True:
        address = f"user{i}@example.com"
        ledger.unsubscribe(address, channel=Channel.API)
        print(address, flush=True)
        i += 1
    """
)

FLIPPER = textwrap.dedent(
    """
    import random, sys
    from adieu.ledger import Channel
    from adieu.service import Adieu
    from adieu.settings import Settings

    ledger = Adieu(Settings()).ledger
    rng = random.Random(int(sys.argv[1]))
    for _ in range(int(sys.argv[2])):
        address = f"shared{rng.randrange(8)}@example.com"
        if rng.random() < 0.5:
            ledger.unsubscribe(address, channel=Channel.API)
        else:
            ledger.resubscribe(address, channel=Channel.API)
    print("done", flush=True)
    """
)


def test_acknowledged_unsubscribes_survive_sigkill(adieu: Adieu, settings: Settings) -> None:
    assert adieu.ledger.count_contacts() == 0  # keys and schema exist before the child starts
    child = subprocess.Popen(
        [sys.executable, "-c", UNSUBSCRIBER],
        stdout=subprocess.PIPE,
        env=adieu_env(settings),
        text=True,
    )
    assert child.stdout is not None
    printed: list[str] = []
    deadline = time.monotonic() + 60
    while len(printed) < 40 and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        printed.append(line.strip())
    child.send_signal(signal.SIGKILL)
    rest, _ = child.communicate()
    printed += [line.strip() for line in rest.splitlines() if line.strip()]
    assert child.returncode == -signal.SIGKILL
    assert len(printed) >= 40, "the child did not get going"
    fresh = Adieu(settings)
    try:
        for address in printed:
            assert not fresh.policy.is_sendable(address), f"{address} was acknowledged but lost"
    finally:
        fresh.close()


@pytest.mark.slow
def test_concurrent_unsubscribe_and_resubscribe_end_in_the_last_events_state(
    adieu: Adieu, settings: Settings
) -> None:
    assert adieu.ledger.count_contacts() == 0
    children = [
        subprocess.Popen(
            [sys.executable, "-c", FLIPPER, str(seed), "120"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=adieu_env(settings),
            text=True,
        )
        for seed in (1, 2)
    ]
    for child in children:
        out, err = child.communicate(timeout=180)
        assert child.returncode == 0, err
        assert out.strip() == "done"
    for i in range(8):
        address = f"shared{i}@example.com"
        history = adieu.ledger.history(address)
        changes = [e for e in history if e.type in (EventType.UNSUBSCRIBE, EventType.RESUBSCRIBE)]
        if not changes:
            continue
        # events alternate: a change only happens when the state differs
        for before, after in itertools.pairwise(changes):
            assert before.type != after.type, f"{address}: two {after.type} in a row"
        expected_sendable = changes[-1].type is EventType.RESUBSCRIBE
        assert adieu.policy.is_sendable(address) is expected_sendable, address
