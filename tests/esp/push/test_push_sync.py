"""``adieu esp sync PROVIDER`` against the local stand-in: every page of the
provider's lists read, what Adieu lacks imported with the provider as the
source, what the provider lacks reported and pushed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from push_support import GROUP, TOPIC, StandIn, aws, run_cli, stand_in

from adieu.cli import main
from adieu.esp.push.deliver import PushDeliverer
from adieu.esp.push.providers import providers
from adieu.esp.push.providers import sendgrid as push_sendgrid
from adieu.esp.push.queue import PushQueue
from adieu.ledger import Channel
from adieu.ledger.vocabulary import Reason
from adieu.scopes import ALL
from adieu.service import Adieu
from conftest import MakeSettings

__all__ = ["aws", "stand_in"]  # fixtures

PROVIDERS = ("ses", "sendgrid", "mailgun", "postmark")


@pytest.fixture
def pushing(
    make_settings: MakeSettings, stand_in: StandIn, aws: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Adieu]:
    monkeypatch.setattr(push_sendgrid, "SENDGRID_PAGE", 3)  # several pages of a few
    app = Adieu(make_settings(**stand_in.settings()))
    app.ledger.add_topic(TOPIC, "News")
    yield app
    app.close()


def _fill(stand_in: StandIn) -> None:
    """Seven entries on each provider: more than two pages of three."""
    lists = stand_in.lists
    for i in range(5):
        lists.ses[f"s{i}@example.com"] = "BOUNCE"
        lists.sg_global.add(f"s{i}@example.com")
        lists.mg_unsubscribes[f"s{i}@example.com"] = {"*"}
        lists.pm[f"s{i}@example.com"] = "ManualSuppression"
    lists.ses["c@example.com"] = "COMPLAINT"
    lists.sg_spam.add("c@example.com")
    lists.mg_complaints.add("c@example.com")
    lists.pm["c@example.com"] = "SpamComplaint"
    lists.ses["shared@example.com"] = "COMPLAINT"
    lists.sg_groups[GROUP] = {"shared@example.com"}
    lists.mg_unsubscribes["shared@example.com"] = {TOPIC}
    lists.pm["shared@example.com"] = "HardBounce"


def _run(adieu: Adieu, stand_in: StandIn, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    result = run_cli(adieu, stand_in.settings(), monkeypatch, *args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("provider", PROVIDERS)
def test_sync_imports_what_adieu_lacks_and_pushes_what_the_provider_lacks(
    pushing: Adieu,
    stand_in: StandIn,
    monkeypatch: pytest.MonkeyPatch,
    provider: str,
) -> None:
    _fill(stand_in)
    ledger = pushing.ledger
    ledger.unsubscribe("s0@example.com", channel=Channel.ONE_CLICK)  # both hold it
    ledger.record_bounce("only-adieu@example.com", hard=True)
    ledger.unsubscribe("erased@example.com", channel=Channel.ONE_CLICK)
    ledger.erase("erased@example.com", channel=Channel.CLI)
    queue = PushQueue(pushing.engine, ledger.now)
    before = {name: c.pending for name, c in queue.counts().items()}
    assert before.get(provider) == 3, "the three decisions above, already queued"
    output = _run(pushing, stand_in, monkeypatch, "esp", "sync", provider)
    assert "7 entries read" in output
    assert "only-adieu@example.com" not in output, "addresses are shown masked"
    # What the provider had is in Adieu now, the provider as the source.
    for i in range(5):
        assert ledger.status(f"s{i}@example.com").suppressed_since is not None
    complaint = ledger.status("c@example.com")
    sources = [(e.details or {}).get("source") for e in complaint.events if e.type == "suppress"]
    assert sources == [provider]
    # Adieu's own (the bounce, and s0's unsubscribe where the provider lacked
    # nothing) went out; the erased one could not.
    assert "1 erased" in output
    counts = queue.counts()[provider]
    assert counts.pending == before[provider] + 1
    deliverer = PushDeliverer(queue, [p for p in providers(pushing.settings) if p.name == provider])
    deadline = time.monotonic() + 20
    while queue.counts()[provider].pending:
        assert time.monotonic() < deadline
        if asyncio.run(deliverer.run_once()) == 0:
            time.sleep(0.05)
    pushed = {a for p, action, _, a in stand_in.applied if p == provider and action == "add"}
    assert "only-adieu@example.com" in pushed
    # Imported entries are not pushed back to where they came from.
    assert not {f"s{i}@example.com" for i in range(1, 5)} & pushed
    assert stand_in.bad_auth == []


def test_a_second_sync_finds_nothing_new(
    pushing: Adieu, stand_in: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(stand_in)
    first = _run(pushing, stand_in, monkeypatch, "esp", "sync", "mailgun")
    assert "7 imported" in first or "imported into Adieu" in first
    again = _run(pushing, stand_in, monkeypatch, "esp", "sync", "mailgun")
    assert "0 imported into Adieu, 7 already there" in again
    assert "Adieu holds 0 that mailgun lacks" in again


def test_a_provider_that_refuses_the_key_imports_nothing(
    pushing: Adieu, stand_in: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(stand_in)
    settings = {**stand_in.settings(), "sendgrid_api_key": "SG.wrong"}
    result = run_cli(pushing, settings, monkeypatch, "esp", "sync", "sendgrid")
    assert result.exit_code == 75  # EX_TEMPFAIL: try again once the key is right
    assert "HTTP 401" in result.output and "nothing was imported" in result.output
    assert pushing.ledger.status("s1@example.com").suppressed_since is None


def test_sync_names_a_provider_that_is_not_configured(
    sqlite_adieu: Adieu, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADIEU_DATA_DIR", str(sqlite_adieu.settings.data_dir))
    result = CliRunner().invoke(main, ["esp", "sync", "postmark"])
    assert result.exit_code == 2
    assert "postmark is not configured" in result.output
    listed = CliRunner().invoke(main, ["esp", "list"])
    assert listed.exit_code == 0 and "No email service provider is configured" in listed.output


def test_an_entry_read_back_for_an_address_adieu_already_holds_is_not_imported_beside_it(
    pushing: Adieu, stand_in: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hard bounce pushed to a list that keeps no reason comes back as an
    unsubscribe; imported beside the bounce, it would outlive the bounce's lift."""
    ledger = pushing.ledger
    ledger.record_bounce("gone@example.com", hard=True)
    ledger.unsubscribe("reader@example.com", TOPIC, channel=Channel.LANDING_PAGE)
    stand_in.lists.sg_global.update({"gone@example.com", "reader@example.com"})
    stand_in.lists.sg_groups[GROUP] = {"reader@example.com"}
    output = _run(pushing, stand_in, monkeypatch, "esp", "sync", "sendgrid")
    assert [s.reason for s in ledger.status("gone@example.com").state.suppressions] == [
        Reason.HARD_BOUNCE
    ], output
    held = {(s.scope, s.reason) for s in ledger.status("reader@example.com").state.suppressions}
    # The topic's entry was Adieu's own; the one for all mail is news to it.
    assert held == {(TOPIC, Reason.UNSUBSCRIBE), (ALL, Reason.UNSUBSCRIBE)}, output
    ledger.resubscribe(
        "gone@example.com", channel=Channel.CLI, lift=[Reason.HARD_BOUNCE], note="works again"
    )
    assert ledger.status("gone@example.com").state.suppressions == ()
