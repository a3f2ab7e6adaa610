"""One webhook's trouble stays its own: a bad stored URL, a receiver that
fails, hangs, answers garbage or raises anything at all never holds back or
repeats another webhook's deliveries; inactive webhooks wait; claims go round
the webhooks in turn; private networks can be refused. Real local receivers
throughout."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import update

from adieu.ledger import Channel
from adieu.ledger import schema as t
from adieu.ledger.records import UnsubscribeRequest
from adieu.ledger.vocabulary import DELIVERED, PENDING
from adieu.service import Adieu
from adieu.webhooks.deliver import Deliverer, deliverer_for
from adieu.webhooks.http import Poster


class Sink:
    """A receiver that answers ``status`` to every POST and remembers the
    paths and event ids it was sent."""

    def __init__(self, status: int = 204) -> None:
        self.paths: list[str] = []
        self.ids: list[int] = []
        self.status = status
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                import json

                body = self.rfile.read(int(self.headers["Content-Length"]))
                sink.paths.append(self.path)
                sink.ids.append(int(json.loads(body)["id"]))
                self.send_response(sink.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sinks() -> Iterator[list[Sink]]:
    made = [Sink() for _ in range(3)]
    yield made
    for s in made:
        s.close()


def _store_url(adieu: Adieu, hook_id: int, url: str) -> None:
    """A URL as a webhook may hold it from before URLs were checked this strictly."""
    with adieu.engine.begin() as conn:
        conn.execute(update(t.webhooks).where(t.webhooks.c.id == hook_id).values(url=url))


def _unsubscribe(adieu: Adieu, count: int, prefix: str = "p") -> None:
    adieu.ledger.unsubscribe_many(
        [
            UnsubscribeRequest(
                f"{prefix}{i}@example.com", None, Channel.API, None, None, None, None
            )
            for i in range(count)
        ]
    )


def _deliver_for(deliverer: Deliverer, seconds: float) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, stop.set)
        await deliverer.run(stop)

    asyncio.run(main())


def test_a_bad_stored_url_fails_only_its_own_webhook_and_healthy_ones_get_each_event_once(
    adieu: Adieu, sinks: list[Sink], caplog: pytest.LogCaptureFixture
) -> None:
    first, second, third = sinks
    healthy = [adieu.outbox.create_webhook(first.url), adieu.outbox.create_webhook(second.url)]
    chinese = adieu.outbox.create_webhook(third.url)
    _store_url(adieu, chinese.id, f"http://127.0.0.1:{third.port}/用户")
    injected = adieu.outbox.create_webhook(first.url)
    _store_url(adieu, injected.id, f"http://127.0.0.1:{first.port}/x\r\nX-Injected: 1")
    _unsubscribe(adieu, 5)
    deliverer = Deliverer(adieu.outbox, timeout=2, first_delay=60, poll=0.05)

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="adieu.webhooks"):
        _deliver_for(deliverer, 1.5)
    assert time.monotonic() - started < 5

    events = sorted(e["id"] for e in adieu.stats.events(limit=100))
    assert len(events) == 5
    assert sorted(first.ids) == events, "each event exactly once, nothing for the bad URL"
    assert sorted(second.ids) == events
    # A non-ASCII path is percent-encoded (UTF-8), as a browser sends it.
    assert sorted(third.ids) == events
    assert set(third.paths) == {"/%E7%94%A8%E6%88%B7"}
    assert set(first.paths) == {"/hook"}, "no request went out on the bad URL"
    for hook in healthy:
        assert {x.state for x in adieu.outbox.letters(webhook_id=hook.id)} == {DELIVERED}
    bad = adieu.outbox.letters(webhook_id=injected.id)
    assert len(bad) == 5 and {x.state for x in bad} == {PENDING}
    assert all(x.attempts == 1 for x in bad), "a failed attempt, with backoff"
    assert all(x.next_attempt_at > adieu.ledger.now() for x in bad)
    assert all(x.last_error and "not valid" in x.last_error for x in bad)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_bad_stored_url_ends_in_dead_letters_like_any_failure(adieu: Adieu) -> None:
    hook = adieu.outbox.create_webhook("http://127.0.0.1:9/x")
    _store_url(adieu, hook.id, "gopher://127.0.0.1/x")
    _unsubscribe(adieu, 2)
    deliverer = Deliverer(adieu.outbox, max_attempts=1, timeout=1)
    assert asyncio.run(deliverer.run_once()) == 2
    dead = adieu.outbox.letters("dead", webhook_id=hook.id)
    assert len(dead) == 2 and all("http://" in (x.last_error or "") for x in dead)


def test_any_exception_in_one_delivery_is_that_deliverys_error(
    adieu: Adieu, sinks: list[Sink], monkeypatch: pytest.MonkeyPatch
) -> None:
    good, broken = sinks[0], sinks[1]
    adieu.outbox.create_webhook(good.url)
    odd = adieu.outbox.create_webhook(broken.url)
    real = Poster.post

    async def post(self: Poster, url: str, body: bytes, headers: dict[str, str]) -> int:
        if url == broken.url:
            raise UnicodeEncodeError("latin-1", "用户", 0, 1, "ordinal not in range(256)")
        return await real(self, url, body, headers)

    monkeypatch.setattr(Poster, "post", post)
    _unsubscribe(adieu, 3)
    deliverer = Deliverer(adieu.outbox, timeout=2, first_delay=60)
    assert asyncio.run(deliverer.run_once()) == 6
    assert asyncio.run(deliverer.run_once()) == 0
    assert len(good.ids) == 3 and not broken.ids
    letters = adieu.outbox.letters(webhook_id=odd.id)
    assert all(x.attempts == 1 and x.state == PENDING for x in letters)
    assert all("UnicodeEncodeError: 'latin-1' codec" in (x.last_error or "") for x in letters)


def _garbage_server() -> tuple[socket.socket, threading.Thread]:
    """Answers every connection with bytes that are not HTTP, then closes."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 \xb2\xb2\xb2 What\r\nContent-Length: \xb9\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, thread


def test_a_receiver_that_answers_garbage_fails_only_itself(adieu: Adieu, sinks: list[Sink]) -> None:
    server, _ = _garbage_server()
    try:
        adieu.outbox.create_webhook(sinks[0].url)
        garbage = adieu.outbox.create_webhook(f"http://127.0.0.1:{server.getsockname()[1]}/x")
        _unsubscribe(adieu, 3)
        deliverer = Deliverer(adieu.outbox, timeout=2, first_delay=60)
        asyncio.run(deliverer.run_once())
    finally:
        server.close()
    assert len(sinks[0].ids) == 3
    letters = adieu.outbox.letters(webhook_id=garbage.id)
    assert all(x.attempts == 1 and x.state == PENDING and x.last_error for x in letters)


def test_inactive_webhooks_are_skipped_and_deliver_once_active_again(
    adieu: Adieu, sinks: list[Sink]
) -> None:
    active = adieu.outbox.create_webhook(sinks[0].url)
    paused = adieu.outbox.create_webhook(sinks[1].url)
    _unsubscribe(adieu, 2)  # queued for both, then one is made inactive
    adieu.outbox.update_webhook(paused.id, active=False)
    claimed = adieu.outbox.claim(limit=100)
    assert {d.webhook_id for d in claimed} == {active.id}
    adieu.outbox.delivered([d.id for d in claimed])
    assert adieu.outbox.claim(limit=100) == []
    deliverer = Deliverer(adieu.outbox, timeout=2)
    assert asyncio.run(deliverer.run_once()) == 0
    assert not sinks[1].ids
    adieu.outbox.update_webhook(paused.id, active=True)
    assert asyncio.run(deliverer.run_once()) == 2
    assert len(sinks[1].ids) == 2


def test_claims_go_round_the_webhooks(adieu: Adieu) -> None:
    busy = adieu.outbox.create_webhook("http://127.0.0.1:9/busy")
    _unsubscribe(adieu, 30, "busy")
    quiet = adieu.outbox.create_webhook("http://127.0.0.1:9/quiet", ["unsubscribe"])
    _unsubscribe(adieu, 2, "quiet")
    claimed = adieu.outbox.claim(limit=6)
    assert [d.webhook_id for d in claimed] == [busy.id, quiet.id] * 2 + [busy.id] * 2


def test_a_failing_receiver_with_a_backlog_does_not_hold_back_a_healthy_one(
    adieu: Adieu, sinks: list[Sink]
) -> None:
    failing = sinks[1]
    failing.status = 500
    bad = adieu.outbox.create_webhook(failing.url)
    _unsubscribe(adieu, 500, "backlog")
    assert adieu.outbox.backlog().pending == 500
    adieu.outbox.create_webhook(sinks[0].url)
    adieu.ledger.unsubscribe("new@example.com", channel=Channel.ONE_CLICK)
    deliverer = Deliverer(adieu.outbox, timeout=2, first_delay=60)
    started = time.monotonic()
    asyncio.run(deliverer.run_once())  # one round: the default batch of 200
    assert time.monotonic() - started < 10
    assert len(sinks[0].ids) == 1, "the healthy receiver had its event in the first round"
    tried = [x for x in adieu.outbox.letters(webhook_id=bad.id, limit=1000) if x.attempts]
    assert len(tried) == 199


def test_a_receiver_that_hangs_costs_a_round_about_one_timeout(
    adieu: Adieu, sinks: list[Sink]
) -> None:
    hanging = socket.create_server(("127.0.0.1", 0), backlog=256)  # accepts, never answers
    try:
        slow = adieu.outbox.create_webhook(f"http://127.0.0.1:{hanging.getsockname()[1]}/x")
        _unsubscribe(adieu, 150, "backlog")
        adieu.outbox.create_webhook(sinks[0].url)
        adieu.ledger.unsubscribe("new@example.com", channel=Channel.ONE_CLICK)
        deliverer = Deliverer(adieu.outbox, timeout=0.5, first_delay=60, concurrency=8)
        started = time.monotonic()
        assert asyncio.run(deliverer.run_once()) == 152
        took = time.monotonic() - started
    finally:
        hanging.close()
    # Without stopping after the first failure: 150 / 8 timeouts of 0.5 s.
    assert took < 3, took
    assert len(sinks[0].ids) == 1
    letters = adieu.outbox.letters(webhook_id=slow.id, limit=1000)
    assert all(x.attempts == 1 and x.state == PENDING for x in letters)
    assert sum(1 for x in letters if x.last_error == "timed out") >= 1
    assert any((x.last_error or "").startswith("not tried") for x in letters)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:4700::6810:84e5", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("not an address", False),
    ],
)
def test_which_addresses_are_public(address: str, public: bool) -> None:
    from adieu.webhooks.http import is_public

    assert is_public(address) is public


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_private_networks_can_be_refused(make_settings: Any, sinks: list[Sink], host: str) -> None:
    adieu = Adieu(make_settings(webhook_private_networks=False))
    try:
        hook = adieu.outbox.create_webhook(f"http://{host}:{sinks[0].port}/hook")
        adieu.ledger.unsubscribe("x@example.com", channel=Channel.ONE_CLICK)
        deliverer = deliverer_for(adieu)
        assert asyncio.run(deliverer.run_once()) == 1
        (letter,) = adieu.outbox.letters(webhook_id=hook.id)
    finally:
        adieu.close()
    assert not sinks[0].ids
    assert letter.state == PENDING and letter.attempts == 1
    assert letter.last_error and "not a public address" in letter.last_error


def test_private_networks_are_allowed_by_default(adieu: Adieu, sinks: list[Sink]) -> None:
    assert adieu.settings.webhook_private_networks is True
    adieu.outbox.create_webhook(f"http://localhost:{sinks[0].port}/hook")
    adieu.ledger.unsubscribe("x@example.com", channel=Channel.ONE_CLICK)
    asyncio.run(deliverer_for(adieu).run_once())
    assert len(sinks[0].ids) == 1


def test_a_ledger_outage_is_one_line_each_way_and_delivery_resumes_by_itself(
    adieu: Adieu, sinks: list[Sink], monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """The ledger locked or gone for a while: the deliverer says so once, with
    no traceback (it polls every half second; it used to log one each time),
    and delivers once the ledger answers again."""
    from sqlalchemy.exc import OperationalError

    adieu.outbox.create_webhook(sinks[0].url)
    _unsubscribe(adieu, 1)
    claim = adieu.outbox.claim
    failed = 0

    def unavailable(*args: Any, **kwargs: Any) -> Any:
        nonlocal failed
        if failed < 8:
            failed += 1
            raise OperationalError("UPDATE outbox", {}, Exception("database is locked"))
        return claim(*args, **kwargs)

    monkeypatch.setattr(adieu.outbox, "claim", unavailable)
    deliverer = Deliverer(adieu.outbox, timeout=2, poll=0.01)

    async def main() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(deliverer.run(stop))
        deadline = time.monotonic() + 20
        while not sinks[0].ids and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        stop.set()
        await running

    with caplog.at_level(logging.INFO, logger="adieu.webhooks"):
        asyncio.run(main())
    assert failed == 8 and len(sinks[0].ids) == 1
    said = [r for r in caplog.records if r.name == "adieu.webhooks"]
    assert [r.exc_info for r in said] == [None, None]
    assert "paused" in said[0].getMessage() and "database is locked" in said[0].getMessage()
    assert "resumed" in said[1].getMessage()
