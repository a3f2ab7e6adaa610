"""The operator's commands (``adieu apikey``, ``adieu report``, ``adieu webhooks``),
run in-process with click's CliRunner, as an operator would see them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from click.testing import CliRunner, Result

from adieu.cli import main
from adieu.service import Adieu
from adieu.settings import Settings
from support import Client

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Run(Protocol):
    def __call__(self, *args: str, input: str | None = None) -> Result: ...


@pytest.fixture
def run(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Run:
    """``adieu ARGS…`` in-process, on this test's own data dir and database."""
    monkeypatch.setenv("ADIEU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ADIEU_DATABASE_URL", database_url)
    monkeypatch.setenv("ADIEU_BASE_URL", "https://mail.example.net")
    # rich sizes its tables to the terminal, or to 80 columns without one: wide
    # enough here that no cell is cut, whatever terminal runs the tests.
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(main, list(args), input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def app(run: Run) -> Iterator[Adieu]:
    """The library on the same settings as the commands (``run`` set them)."""
    adieu = Adieu(Settings())
    yield adieu
    adieu.close()


def plain(text: str) -> str:
    return _ANSI.sub("", text)


def rows(text: str) -> list[list[str]]:
    """The body rows of a rich table, as lists of stripped cells."""
    return [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in plain(text).splitlines()
        if line.strip().startswith("│")
    ]


def row_for(text: str, first: str) -> list[str]:
    (row,) = [r for r in rows(text) if r[0] == first]
    return row


def assert_clean_error(result: Result, exit_code: int, message: str) -> None:
    """One clear sentence on stderr, the documented exit status, no traceback."""
    assert result.exit_code == exit_code, result.output
    assert message in plain(result.stderr)
    assert plain(result.stderr).startswith("Error:")
    assert result.stdout == ""
    assert "Traceback" not in result.output


def topics_status(key: str) -> int:
    """``GET /api/v1/topics`` with ``key``, from a freshly built app (a new
    process: nothing cached), on the settings the commands use."""
    adieu = Adieu(Settings())
    client = Client(adieu, headers={"Authorization": f"Bearer {key}"})
    try:
        return client.request("GET", "/api/v1/topics").status_code
    finally:
        client.close()
        adieu.close()


def report_json(run: Run, *args: str) -> dict[str, Any]:
    result = run("report", "--json", *args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


# -- apikey -------------------------------------------------------------------


def test_apikey_create_prints_the_key_once_and_list_never_shows_it(run: Run) -> None:
    created = run("apikey", "create", "--name", "sender")
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip()
    assert secret.startswith("adieu_") and len(secret) > 30
    assert created.stdout == secret + "\n", "stdout is the key and nothing else"
    assert created.output.count(secret) == 1
    assert "Key 1 (scope admin) created" in plain(created.stderr), "admin unless told"
    listed = run("apikey", "list")
    assert listed.exit_code == 0
    assert secret not in listed.output
    assert secret[7:] not in listed.output, "not even the key without its prefix"
    row = row_for(listed.stdout, "1")
    assert row[1] == "sender"
    assert row[2] == secret[:12] + "…", "only the prefix, to tell keys apart"
    assert row[3] == "admin"
    assert row[6] == "-", "not revoked"
    assert "Scope" in plain(listed.stdout).splitlines()[1], "the column is named"


def test_apikey_read_only_is_the_read_scope(run: Run) -> None:
    run("apikey", "create", "--name", "writer")
    created = run("apikey", "create", "--name", "reporting", "--read-only")
    assert created.exit_code == 0
    assert "(scope read)" in plain(created.stderr)
    same = run("apikey", "create", "--name", "both", "--read-only", "--scope", "read")
    assert same.exit_code == 0, "both flags saying the same thing is no conflict"
    listed = run("apikey", "list").stdout
    writer, reporting, both = row_for(listed, "1"), row_for(listed, "2"), row_for(listed, "3")
    assert (writer[1], writer[3]) == ("writer", "admin")
    assert (reporting[1], reporting[3]) == ("reporting", "read")
    assert (both[1], both[3]) == ("both", "read")


@pytest.mark.parametrize("scope", ["read", "send", "admin"])
def test_apikey_create_with_a_scope_lists_it(run: Run, scope: str) -> None:
    created = run("apikey", "create", "--name", "app", "--scope", scope)
    assert created.exit_code == 0, created.output
    assert f"Key 1 (scope {scope}) created" in plain(created.stderr)
    listed = row_for(run("apikey", "list").stdout, "1")
    assert listed[1:4] == ["app", created.stdout[:12] + "…", scope]


@pytest.mark.parametrize("scope", ["send", "admin"])
def test_apikey_read_only_with_another_scope_is_a_usage_error(run: Run, scope: str) -> None:
    result = run("apikey", "create", "--name", "app", "--read-only", "--scope", scope)
    assert result.exit_code == 2
    assert "--read-only means --scope read" in plain(result.stderr)
    assert f"not --scope {scope}" in plain(result.stderr)
    assert result.stdout == "" and "Traceback" not in result.output
    assert rows(run("apikey", "list").stdout) == [], "no key was made"


def test_apikey_create_refuses_an_unknown_scope(run: Run) -> None:
    result = run("apikey", "create", "--name", "app", "--scope", "write")
    assert result.exit_code == 2 and "'write' is not one of" in plain(result.stderr)
    assert rows(run("apikey", "list").stdout) == []


def test_apikey_create_help_names_the_scopes_and_the_default(run: Run) -> None:
    text = " ".join(plain(run("apikey", "create", "--help").stdout).split())
    assert "--scope [read|send|admin]" in text
    assert "Default: admin." in text and "The same as --scope read." in text


def test_apikey_revoke_shows_the_key_as_revoked(run: Run) -> None:
    run("apikey", "create", "--name", "keep")
    run("apikey", "create", "--name", "old")
    revoked = run("apikey", "revoke", "2")
    assert revoked.exit_code == 0
    assert revoked.stdout == "Key 2 (old) is revoked.\n"
    listed = run("apikey", "list").stdout
    assert row_for(listed, "1")[6] == "-"
    when = row_for(listed, "2")[6]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", when), when
    again = run("apikey", "revoke", "2")
    assert again.exit_code == 0, "revoking twice changes nothing and is no error"
    assert row_for(run("apikey", "list").stdout, "2")[6] == when


def test_apikey_revoke_by_prefix(run: Run) -> None:
    secret = run("apikey", "create", "--name", "ci").stdout.strip()
    revoked = run("apikey", "revoke", secret[:12])
    assert revoked.exit_code == 0
    assert "Key 1 (ci) is revoked." in revoked.stdout
    assert row_for(run("apikey", "list").stdout, "1")[6] != "-"


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("99", "There is no API key '99'."),
        ("adieu_nope", "There is no API key 'adieu_nope'."),
        ("sender", "Give the key's id (a number) or its prefix (adieu_…)."),
    ],
)
def test_apikey_revoke_unknown_key_is_a_clear_error(run: Run, reference: str, message: str) -> None:
    run("apikey", "create", "--name", "sender")
    assert_clean_error(run("apikey", "revoke", reference), 2, message)
    assert row_for(run("apikey", "list").stdout, "1")[6] == "-", "nothing else was revoked"


def test_apikey_create_needs_a_name(run: Run) -> None:
    assert_clean_error(
        run("apikey", "create", "--name", "   "), 2, "An API key needs a name of 1-100 characters."
    )
    assert rows(run("apikey", "list").stdout) == []


def test_a_created_key_opens_the_api_and_a_revoked_one_does_not(run: Run) -> None:
    secret = run("apikey", "create", "--name", "sender").stdout.strip()
    other = run("apikey", "create", "--name", "other").stdout.strip()
    assert topics_status(secret) == 200
    assert topics_status("adieu_" + "x" * 43) == 401, "a made-up key does not"
    assert run("apikey", "revoke", "1").exit_code == 0
    assert topics_status(secret) == 401
    assert topics_status(other) == 200, "revoking one key leaves the others working"


def test_a_read_only_key_reads_but_cannot_write(run: Run) -> None:
    secret = run("apikey", "create", "--name", "reporting", "--read-only").stdout.strip()
    adieu = Adieu(Settings())
    client = Client(adieu, headers={"Authorization": f"Bearer {secret}"})
    try:
        assert client.request("GET", "/api/v1/topics").status_code == 200
        r = client.request("POST", "/api/v1/topics", json={"key": "news", "name": "News"})
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "insufficient_scope"
    finally:
        client.close()
        adieu.close()
    assert run("topic", "list").stdout.startswith("No topics yet")


def test_a_send_key_from_the_cli_makes_links_but_changes_no_consent(run: Run) -> None:
    secret = run("apikey", "create", "--name", "mailer", "--scope", "send").stdout.strip()
    adieu = Adieu(Settings())
    client = Client(adieu, headers={"Authorization": f"Bearer {secret}"})
    try:
        body = {"recipients": [{"address": "jane@example.com"}]}
        assert client.request("POST", "/api/v1/links", json=body).status_code == 200
        r = client.request("POST", f"/api/v1/contacts/{'0' * 64}/unsubscribe", json={})
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "insufficient_scope"
    finally:
        client.close()
        adieu.close()


# -- report -------------------------------------------------------------------


def test_report_json_on_an_empty_ledger(run: Run) -> None:
    data = report_json(run)
    assert set(data) == {
        "since",
        "until",
        "thresholds",
        "total",
        "days",
        "lines",
        "reasons",
        "time_to_honour",
    }
    assert data["thresholds"] == {
        "complaint_goal": 0.001,
        "complaint_limit": 0.003,
        "deadline_hours": 48,
        "deadline_business_days": 10,
    }
    total = data["total"]
    assert (total["sends"], total["unsubscribes"], total["complaints"]) == (0, 0, 0)
    assert total["unsubscribes_by_channel"] == {}
    assert total["complaint_status"] == "ok"
    assert data["days"] == data["lines"] == data["reasons"] == []
    assert set(data["time_to_honour"]) == {"commit", "webhooks"}
    assert data["time_to_honour"]["commit"]["count"] == 0


def test_report_json_counts_cli_unsubscribes_by_channel(run: Run) -> None:
    assert run("unsubscribe", "a@example.com").exit_code == 0
    assert run("unsubscribe", "b@example.com").exit_code == 0
    assert "Already unsubscribed" in run("unsubscribe", "A@example.com").stdout
    data = report_json(run)
    assert data["total"]["unsubscribes"] == 2, "the repeat is not a new unsubscribe"
    assert data["total"]["unsubscribes_by_channel"] == {"cli": 2}
    assert data["days"], "a line per day"
    assert sum(day["unsubscribes_by_channel"].get("cli", 0) for day in data["days"]) == 2
    assert sum(line["unsubscribes"] for line in data["lines"]) == 2
    assert data["time_to_honour"]["commit"]["count"] == 2
    assert data["time_to_honour"]["commit"]["within_48_hours"] is True


def test_report_table_shows_the_unsubscribe_count(run: Run) -> None:
    run("unsubscribe", "a@example.com")
    run("unsubscribe", "b@example.com")
    result = run("report")
    assert result.exit_code == 0
    text = plain(result.stdout)
    assert "Per day (complaint rate: goal below 0.1 %, limit 0.3 %)" in text
    header = next(line for line in text.splitlines() if "Day" in line and "Sends" in line)
    assert "cli" in header, "a column for the channel people used"
    total = row_for(result.stdout, "Total")
    assert total[:3] == ["Total", "0", "2"], "0 sends, 2 by cli"
    assert "Time to honour" in text


def test_report_table_on_an_empty_ledger(run: Run) -> None:
    result = run("report")
    assert result.exit_code == 0
    total = row_for(result.stdout, "Total")
    assert total[1:] == ["0", "0", "0", "0", "-", "ok", "-", "-", "0"], (
        "sends, one-click, landing page, complaints, rate, status, hard, soft, unverified"
    )


@pytest.mark.parametrize("since", ["yesterday", "2026-13-01", "2024-02-30", "01/02/2024"])
def test_report_since_a_bad_date_is_a_clear_error(run: Run, since: str) -> None:
    for extra in ((), ("--json",)):
        assert_clean_error(
            run("report", "--since", since, *extra), 2, "Give --since as YYYY-MM-DD."
        )


def test_report_since_in_the_future_counts_nothing(run: Run) -> None:
    run("unsubscribe", "a@example.com")
    run("unsubscribe", "b@example.com")
    data = report_json(run, "--since", "2999-01-01")
    assert data["since"].startswith("2999-01-01T00:00:00")
    assert data["total"]["unsubscribes"] == 0
    assert data["total"]["unsubscribes_by_channel"] == {}
    assert data["days"] == data["lines"] == []
    assert data["time_to_honour"]["commit"]["count"] == 0
    table = run("report", "--since", "2999-01-01")
    assert table.exit_code == 0
    assert row_for(table.stdout, "Total")[1:4] == ["0", "0", "0"]


def test_report_since_a_past_day_includes_today(run: Run) -> None:
    run("unsubscribe", "a@example.com")
    data = report_json(run, "--since", "2000-01-01")
    assert data["since"].startswith("2000-01-01T00:00:00")
    assert data["total"]["unsubscribes_by_channel"] == {"cli": 1}


def test_report_lists_the_reason_given_with_a_cli_unsubscribe(run: Run) -> None:
    run("unsubscribe", "a@example.com", "--reason", "Asked by phone")
    run("topic", "add", "news", "--name", "News")
    run("unsubscribe", "b@example.com", "--topic", "news", "--reason", "asked by phone ")
    run("unsubscribe", "c@example.com")
    assert report_json(run)["reasons"] == [{"choice": None, "text": "asked by phone", "count": 2}]
    assert row_for(run("report").stdout, "asked by phone") == ["asked by phone", "2"]


# -- webhooks -----------------------------------------------------------------


def test_webhooks_add_prints_the_secret_once_and_list_never_shows_it(run: Run) -> None:
    added = run("webhooks", "add", "https://example.org/hook", "--event", "unsubscribe")
    assert added.exit_code == 0, added.output
    secret = added.stdout.strip()
    assert secret.startswith("whsec_") and len(secret) > 30
    assert added.stdout == secret + "\n", "stdout is the secret and nothing else"
    assert added.output.count(secret) == 1
    assert "Webhook 1 added for https://example.org/hook." in plain(added.stderr)
    listed = run("webhooks", "list")
    assert listed.exit_code == 0
    assert secret not in listed.output
    assert secret[6:] not in listed.output
    assert row_for(listed.stdout, "1") == [
        "1",
        "https://example.org/hook",
        "unsubscribe",
        "yes",
        "0",
        "0",
    ]


def test_webhooks_add_with_several_events_and_with_none(run: Run) -> None:
    run("webhooks", "add", "https://example.org/a", "--event", "complaint", "--event", "erase")
    run("webhooks", "add", "https://example.org/all")
    listed = run("webhooks", "list").stdout
    assert row_for(listed, "1")[1:3] == ["https://example.org/a", "complaint, erase"]
    assert row_for(listed, "2")[1:3] == ["https://example.org/all", "*"], "default: every event"


@pytest.mark.parametrize(
    "url", ["ftp://example.org/hook", "example.org/hook", "mailto:ops@example.org", "http://"]
)
def test_webhooks_add_refuses_a_url_that_is_not_http(run: Run, url: str) -> None:
    assert_clean_error(
        run("webhooks", "add", url), 2, "A webhook URL must be an http:// or https:// address."
    )
    assert rows(run("webhooks", "list").stdout) == [], "nothing was added"


def test_webhooks_add_refuses_an_unknown_event_type(run: Run) -> None:
    result = run("webhooks", "add", "https://example.org/hook", "--event", "unsubscribed")
    assert_clean_error(result, 2, "Unknown event type 'unsubscribed'")
    assert rows(run("webhooks", "list").stdout) == []


def test_webhooks_add_has_no_events_option(run: Run) -> None:
    """The option is ``--event``, repeated (as README.md says); a plural is a
    usage error that names the right one."""
    result = run("webhooks", "add", "https://example.org/hook", "--events", "unsubscribe")
    assert result.exit_code == 2
    assert "Did you mean '--event'?" in result.stderr
    assert "Traceback" not in result.output


def test_webhooks_replay_of_an_unknown_id_is_a_clear_error(run: Run) -> None:
    assert_clean_error(run("webhooks", "replay", "99"), 2, "There is no webhook with id 99.")
    result = run("webhooks", "replay", "abc")
    assert result.exit_code == 2
    assert "'abc' is not a valid integer" in result.stderr
    assert "Traceback" not in result.output


def test_webhooks_replay_with_nothing_dead_says_so(run: Run) -> None:
    run("webhooks", "add", "https://example.org/hook")
    run("unsubscribe", "a@example.com")
    result = run("webhooks", "replay", "1")
    assert result.exit_code == 0
    assert result.stdout == "0 deliveries queued again.\n"
    assert row_for(run("webhooks", "list").stdout, "1")[4:] == ["1", "0"], "1 waiting, 0 dead"


def test_webhooks_replay_queues_dead_letters_again(run: Run, app: Adieu) -> None:
    run("webhooks", "add", "https://example.org/hook", "--event", "unsubscribe")
    run("webhooks", "add", "https://example.org/other", "--event", "unsubscribe")
    run("unsubscribe", "a@example.com")
    run("unsubscribe", "b@example.com")
    # Every delivery fails for good (the receiver kept answering 503).
    claimed = app.outbox.claim()
    assert len(claimed) == 4
    app.outbox.failed([(d.id, "HTTP 503", None) for d in claimed])
    listed = run("webhooks", "list").stdout
    assert row_for(listed, "1")[4:] == ["0", "2"], "0 waiting, 2 dead letters"
    assert row_for(listed, "2")[4:] == ["0", "2"]
    result = run("webhooks", "replay", "1")
    assert result.exit_code == 0
    assert result.stdout.startswith("2 deliveries queued again.")
    listed = run("webhooks", "list").stdout
    assert row_for(listed, "1")[4:] == ["2", "0"], "queued again, none dead"
    assert row_for(listed, "2")[4:] == ["0", "2"], "the other receiver's letters stay dead"
    assert run("webhooks", "replay", "1").stdout.startswith("0 deliveries queued again.")


def test_webhooks_run_is_documented(run: Run) -> None:
    """``webhooks run`` delivers until stopped by a signal, so only its help is run here
    (its delivering is covered by test_webhooks.py through ``Deliverer``)."""
    result = run("webhooks", "run", "--help")
    assert result.exit_code == 0
    assert "Deliver webhooks until stopped (SIGTERM or Ctrl-C)." in result.stdout
    group = run("webhooks", "--help").stdout
    for name in ("add", "list", "replay", "run"):
        assert re.search(rf"^\s+{name}\s", group, re.MULTILINE), name


def test_help_lists_the_operator_commands(run: Run) -> None:
    text = run("--help").stdout
    for name in ("apikey", "report", "webhooks"):
        assert re.search(rf"^\s+{name}\s", text, re.MULTILINE), name
    apikey = run("apikey", "--help").stdout
    for name in ("create", "list", "revoke"):
        assert re.search(rf"^\s+{name}\s", apikey, re.MULTILINE), name


# -- what a plain 80-column terminal or a pipe shows ----------------------------------


def test_webhooks_list_in_a_pipe_shows_whole_urls(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    run("webhooks", "add", "https://crm.example.com/adieu/production")
    run("webhooks", "add", "https://crm.example.com/adieu/staging")
    monkeypatch.setenv("COLUMNS", "80")
    listed = plain(run("webhooks", "list").stdout)
    assert "https://crm.example.com/adieu/production" in listed
    assert "https://crm.example.com/adieu/staging" in listed
