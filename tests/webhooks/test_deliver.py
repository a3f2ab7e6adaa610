"""Webhook delivery against a real local HTTP receiver that fails, times out
and recovers, with the deliverer killed and started again in between."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from adieu.ledger import Channel
from adieu.ledger.vocabulary import DEAD, DELIVERED
from adieu.service import Adieu
from adieu.webhooks.deliver import Deliverer, backoff, sign
from support import adieu_env


class Receiver:
    """An HTTP endpoint whose behaviour the test scripts: a list of answers
    ("fail", "slow", "ok") taken in turn, then "ok" forever."""

    def __init__(self, secret: str = "", script: list[str] | None = None) -> None:
        self.secret = secret
        self.script = list(script or [])
        self.accepted: list[dict[str, Any]] = []
        self.requests = 0
        self.bad_signatures = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.requests += 1
                    action = receiver.script.pop(0) if receiver.script else "ok"
                if action == "slow":
                    time.sleep(1.0)  # longer than the deliverer waits
                if action != "ok":
                    self.send_response(503)
                    self.end_headers()
                    return
                if receiver.secret and not receiver.verify(self.headers, body):
                    receiver.bad_signatures += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                with receiver.lock:
                    receiver.accepted.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def verify(self, headers: Any, body: bytes) -> bool:
        parts = dict(p.split("=", 1) for p in headers["Adieu-Signature"].split(","))
        expected = hmac.new(
            self.secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        fresh = abs(time.time() - int(parts["t"])) < 300
        return fresh and hmac.compare_digest(expected, parts["v1"])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_a_signature_is_hmac_sha256_over_timestamp_and_body() -> None:
    header = sign("whsec_x", 1700000000, b'{"a":1}')
    expected = hmac.new(b"whsec_x", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    assert backoff(1, 5, rng=lambda: 0.5) == 5
    assert backoff(3, 5, rng=lambda: 0.5) == 20
    assert backoff(4, 5, rng=lambda: 0.0) == 20
    assert backoff(4, 5, rng=lambda: 0.999) == pytest.approx(59.96)
    assert backoff(40, 5, rng=lambda: 0.5) == 3600


def _pending(adieu: Adieu) -> int:
    return adieu.outbox.backlog().pending


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "adieu", "webhooks", "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=fh,
        )


@pytest.mark.slow
def test_every_event_arrives_in_order_per_address_across_failures_and_a_restart(
    adieu: Adieu, tmp_path: Path
) -> None:
    log = tmp_path / "deliverer.log"
    hook = adieu.outbox.create_webhook("http://127.0.0.1:1/unused")
    receiver = Receiver(hook.secret, script=["fail", "slow", "fail", "fail", "slow"] * 4)
    adieu.outbox.update_webhook(hook.id, url=receiver.url)
    ledger = adieu.ledger
    people = [f"p{i}@example.com" for i in range(15)]
    for who in people:
        ledger.unsubscribe(who, channel=Channel.ONE_CLICK)
        ledger.resubscribe(who, channel=Channel.PREFERENCES)
        ledger.unsubscribe(who, channel=Channel.API)
    total = len(people) * 3
    env = adieu_env(
        adieu.settings,
        webhook_timeout="0.3",
        webhook_backoff="0.05",
        webhook_max_attempts="100",
    )
    try:
        first = _start(env, log)
        deadline = time.monotonic() + 30
        while len(receiver.accepted) < 10:
            assert time.monotonic() < deadline, "the deliverer delivered nothing"
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)  # mid-work: leases are left behind
        first.wait(10)
        # Events that happen while no deliverer runs are kept too.
        ledger.unsubscribe("late@example.com", channel=Channel.MAILTO)
        second = _start(env, log)
        deadline = time.monotonic() + 60
        while _pending(adieu):
            assert time.monotonic() < deadline, f"{_pending(adieu)} deliveries still waiting"
            assert second.poll() is None, log.read_text()
            time.sleep(0.1)
        second.send_signal(signal.SIGTERM)
        assert second.wait(15) == 0
    finally:
        receiver.close()
    got = receiver.accepted
    assert receiver.bad_signatures == 0
    assert {e["id"] for e in got} == {e["id"] for e in adieu.stats.events(limit=1000)}
    assert len({e["id"] for e in got}) == total + 1
    # Order per address: nobody's later event arrived before an earlier one.
    first_seen: dict[str, list[int]] = {}
    for e in got:
        ids = first_seen.setdefault(e["address"], [])
        if e["id"] not in ids:
            ids.append(e["id"])
    assert all(ids == sorted(ids) for ids in first_seen.values())
    types = [e["type"] for e in got if e["address"] == "p3@example.com"]
    assert types[:3] == ["unsubscribe", "resubscribe", "unsubscribe"] or len(types) > 3
    assert receiver.requests > len(got), "the receiver really failed some deliveries"
    assert {x.state for x in adieu.outbox.letters(limit=1000)} == {DELIVERED}


def test_a_receiver_that_never_answers_well_ends_in_dead_letters_and_replay_works(
    adieu: Adieu,
) -> None:
    hook = adieu.outbox.create_webhook("http://127.0.0.1:1/unused", ["unsubscribe"])
    receiver = Receiver(hook.secret, script=["fail"] * 3)
    adieu.outbox.update_webhook(hook.id, url=receiver.url)
    adieu.ledger.unsubscribe("x@example.com", channel=Channel.ONE_CLICK)
    adieu.ledger.unsubscribe("y@example.com", channel=Channel.ONE_CLICK)
    deliverer = Deliverer(adieu.outbox, max_attempts=1, timeout=1, first_delay=0.01)

    try:
        assert asyncio.run(deliverer.run_once()) == 2
        dead = adieu.outbox.letters(DEAD)
        assert len(dead) == 2 and all(d.last_error == "HTTP 503" for d in dead)
        assert asyncio.run(deliverer.run_once()) == 0, "dead letters are not retried on their own"
        receiver.script = ["fail"]  # one more failure, then the receiver recovers
        assert adieu.outbox.replay() == 2
        asyncio.run(deliverer.run_once())
        asyncio.run(deliverer.run_once())
        assert len(adieu.outbox.letters(DEAD)) == 1
        adieu.outbox.replay()
        asyncio.run(deliverer.run_once())
    finally:
        receiver.close()
    assert {x.state for x in adieu.outbox.letters()} == {DELIVERED}
    assert sorted(e["address"] for e in receiver.accepted) == ["x@example.com", "y@example.com"]


def test_a_receiver_that_is_down_is_retried_later(adieu: Adieu) -> None:
    hook = adieu.outbox.create_webhook("http://127.0.0.1:9/nothing-listens")
    adieu.ledger.unsubscribe("x@example.com", channel=Channel.ONE_CLICK)
    deliverer = Deliverer(adieu.outbox, max_attempts=5, timeout=1, first_delay=60)

    assert asyncio.run(deliverer.run_once()) == 1
    (letter,) = adieu.outbox.letters(webhook_id=hook.id)
    assert letter.state == "pending" and letter.attempts == 1
    assert letter.last_error and "cannot connect" in letter.last_error
    assert letter.next_attempt_at > adieu.ledger.now()
    assert asyncio.run(deliverer.run_once()) == 0, "not before its backoff is over"


@pytest.mark.slow
def test_serve_runs_the_deliverer(adieu: Adieu, tmp_path: Any) -> None:
    from support import free_port, wait_for_port

    hook = adieu.outbox.create_webhook("http://127.0.0.1:1/unused")
    receiver = Receiver(hook.secret)
    adieu.outbox.update_webhook(hook.id, url=receiver.url)
    port = free_port()
    env = adieu_env(adieu.settings)
    proc = subprocess.Popen(
        [sys.executable, "-m", "adieu", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc)
        link = adieu.link("one@example.com")
        r = httpx.post(
            f"http://127.0.0.1:{port}/u/{link.token}", data={"List-Unsubscribe": "One-Click"}
        )
        assert r.status_code == 200
        deadline = time.monotonic() + 20
        while not receiver.accepted:
            assert time.monotonic() < deadline, "serve delivered nothing"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        receiver.close()
    (event,) = receiver.accepted
    assert event["type"] == "unsubscribe" and event["channel"] == "one_click"
    assert event["address"] == "one@example.com"
    assert os.environ.get("ADIEU_DATA_DIR") is None
