"""The ``adieu`` command, run in-process with click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from adieu.cli import main
from adieu.service import Adieu
from adieu.settings import Settings


@pytest.fixture
def run(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ADIEU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ADIEU_DATABASE_URL", database_url)
    monkeypatch.setenv("ADIEU_BASE_URL", "https://mail.example.net")
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(main, list(args), input=input, catch_exceptions=False)

    return invoke


def test_help_lists_the_commands(run) -> None:  # type: ignore[no-untyped-def]
    """Each command in its own row of the help's command list, and no other."""
    result = run("--help")
    rows = result.output.split("Commands:", 1)[1].splitlines()
    listed = {row.split()[0] for row in rows if row.startswith("  ") and row.strip()}
    assert listed == {
        "serve",
        "relay",
        "inbound",
        "topic",
        "link",
        "stamp",
        "lint",
        "unsubscribe",
        "resubscribe",
        "status",
        "filter",
        "import",
        "export",
        "erase",
        "report",
        "db",
        "keys",
        "apikey",
        "webhooks",
        "esp",
    }


def test_topics(run) -> None:  # type: ignore[no-untyped-def]
    assert run("topic", "list").output.startswith("No topics yet")
    assert run("topic", "add", "news", "--name", "News", "--description", "Monthly").exit_code == 0
    listed = json.loads(run("topic", "list", "--json").output)
    assert listed == [
        {
            "key": "news",
            "name": "News",
            "description": "Monthly",
            "default_opt_in": True,
            "retired_at": None,
            "translations": {},
        }
    ]
    again = run("topic", "add", "news", "--name", "News")
    assert again.exit_code == 2 and "already exists" in again.output


def test_a_retired_topic_is_listed_as_retired_and_refused_for_new_links_and_sends(  # type: ignore[no-untyped-def]
    run, tmp_path: Path
) -> None:
    run("topic", "add", "news", "--name", "News")
    app = Adieu(Settings())
    try:
        app.ledger.retire_topic("news")
    finally:
        app.close()
    (listed,) = json.loads(run("topic", "list", "--json").output)
    assert listed["key"] == "news" and listed["retired_at"]
    assert listed["retired_at"][:10] in run("topic", "list").output
    message = tmp_path / "message.eml"
    message.write_bytes(b"From: news@example.com\r\nSubject: Hi\r\n\r\nHello.\r\n")
    addresses = tmp_path / "list.txt"
    addresses.write_text("jane@example.com\n")
    for args in (
        ("link", "jane@example.com", "--topic", "news"),
        ("stamp", str(message), "--to", "jane@example.com", "--topic", "news"),
        ("filter", str(addresses), "--topic", "news"),
        ("relay", "--upstream", "127.0.0.1:25", "--topic", "news"),
    ):
        result = run(*args)
        assert result.exit_code == 2, args
        assert "The topic 'news' is retired" in result.output
        assert "Traceback" not in result.output
    # Unsubscribing from it (a link's request, an operator's) is still recorded.
    assert run("unsubscribe", "jane@example.com", "--topic", "news").exit_code == 0
    assert run("topic", "add", "news", "--name", "News").exit_code == 0, "brought back"
    assert run("link", "jane@example.com", "--topic", "news").exit_code == 0


def test_link_prints_url_and_headers_and_opens_to_the_address(run) -> None:  # type: ignore[no-untyped-def]
    run("topic", "add", "news", "--name", "News")
    result = run(
        "link",
        "Jane@Example.com",
        "--topic",
        "news",
        "--campaign",
        "c1",
        "--locale",
        "sv",
        "--json",
    )
    data = json.loads(result.output)
    assert data["url"].startswith("https://mail.example.net/u/")
    assert data["headers"] == {
        "List-Unsubscribe": f"<{data['url']}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert "jane" not in data["url"].lower()
    payload = Adieu(Settings()).codec.open(data["url"].rsplit("/", 1)[1])
    assert (payload.address, payload.scope, payload.campaign, payload.locale) == (
        "jane@example.com",
        "news",
        "c1",
        "sv",
    )
    text = run("link", "jane@example.com").output.splitlines()
    assert text[0].startswith("https://mail.example.net/u/")
    assert text[1] == f"List-Unsubscribe: <{text[0]}>"
    assert text[2] == "List-Unsubscribe-Post: List-Unsubscribe=One-Click"


def test_link_with_mailto_domain(run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ADIEU_MAILTO_DOMAIN", "unsub.example.net")
    data = json.loads(run("link", "jane@example.com", "--json").output)
    url, mailto = data["headers"]["List-Unsubscribe"].split(", ")
    assert url == f"<{data['url']}>"
    local = mailto.removeprefix("<mailto:").removesuffix("@unsub.example.net>")
    assert local.startswith("unsubscribe+") and len(local) <= 64  # RFC 5321 §4.5.3.1.1
    app = Adieu(Settings())
    opened = app.codec.open_compact(local.removeprefix("unsubscribe+"))
    assert opened.names(app.hasher.hash("jane@example.com"))


def test_unsubscribe_status_resubscribe(run) -> None:  # type: ignore[no-untyped-def]
    assert (
        "Unsubscribed from all marketing email."
        in run("unsubscribe", "jane@example.com", "--reason", "asked by phone").output
    )
    assert "Already unsubscribed" in run("unsubscribe", "JANE@example.com").output
    status = json.loads(run("status", "jane@example.com", "--json").output)
    assert status["address"] == "jane@example.com"
    assert status["sendable"]["overall"] is False
    assert status["suppressed_since"] is not None
    assert [(e["type"], e["channel"], e["scope"]) for e in status["events"]] == [
        ("unsubscribe", "cli", "all")
    ]
    assert status["events"][0]["reason"] == "asked by phone"
    assert "Resubscribed" in run("resubscribe", "jane@example.com").output
    status = json.loads(run("status", "jane@example.com", "--json").output)
    assert status["sendable"]["overall"] is True and status["suppressed_since"] is None
    human = run("status", "jane@example.com").output
    assert "resubscribe" in human and "unsubscribe" in human


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("unsubscribe", "not-an-address"), "not a valid email address"),
        (("unsubscribe", "jane@example.com", "--topic", "nope"), "no topic called 'nope'"),
        (("link", "jane@example.com", "--locale", "!!"), "not a language tag"),
        (("filter", "/no/such/file.csv"), "Cannot read /no/such/file.csv"),
        (("import", "/no/such/file.csv"), "Cannot read /no/such/file.csv"),
    ],
)
def test_bad_input_is_one_clear_sentence_and_exit_2(  # type: ignore[no-untyped-def]
    run, args: tuple[str, ...], message: str
) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_filter_lines_keeps_sendable_rows_unchanged(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("unsubscribe", "gone@example.com")
    run("topic", "add", "news", "--name", "News")
    run("unsubscribe", "newsless@example.com", "--topic", "news")
    source = tmp_path / "list.txt"
    source.write_text(
        "Keep@Example.com\n  GONE@example.com \nnot an address\nnewsless@example.com\n"
        "also@keep.org\n"
    )
    result = run("filter", str(source))
    assert result.stdout == "Keep@Example.com\nnewsless@example.com\nalso@keep.org\n"
    assert "Kept 3 of 5 rows." in result.stderr
    assert "unsubscribed 1" in result.stderr
    assert "line 3: not an address" in result.stderr
    news = run("filter", str(source), "--topic", "news")
    assert news.stdout == "Keep@Example.com\nalso@keep.org\n"
    assert "topic_opt_out 1" in news.stderr


def test_filter_csv_by_column_to_an_output_file(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("unsubscribe", "b@example.com")
    source = tmp_path / "list.csv"
    source.write_text('name,Mail\n"Ann, A",a@example.com\nBob,b@example.com\nCy,bad@\n')
    out = tmp_path / "out.csv"
    result = run("filter", str(source), "--column", "mail", "--output", str(out))
    assert result.exit_code == 0
    assert out.read_text() == 'name,Mail\n"Ann, A",a@example.com\n'
    assert "line 4: bad@" in result.stderr
    missing = run("filter", str(source), "--column", "email", "--output", str(tmp_path / "x.csv"))
    assert missing.exit_code == 2
    assert "no column named 'email'" in missing.output
    assert not (tmp_path / "x.csv").exists(), "no partial output on error"


def test_import_formats_by_their_real_column_names(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    mailchimp = tmp_path / "cleaned.csv"
    mailchimp.write_text(
        "Email Address,First Name,MEMBER_RATING,CLEAN_TIME,CLEAN_CAMPAIGN_TITLE\n"
        "dead@example.com,Dee,2,2024-03-01 10:00:00,Spring\n"
    )
    unsub = tmp_path / "unsubscribed.csv"
    unsub.write_text(
        "Email Address,First Name,UNSUB_TIME,UNSUB_CAMPAIGN_TITLE,UNSUB_REASON\n"
        "left@example.com,Lee,2024-02-01 08:00:00,Winter,No longer interested\n"
    )
    sendgrid = tmp_path / "spam_reports.csv"
    sendgrid.write_text("email,created,ip\nspam@example.com,1700000000,192.0.2.1\n")
    ses = tmp_path / "ses.json"
    ses.write_text(
        json.dumps(
            {
                "SuppressedDestinationSummaries": [
                    {
                        "EmailAddress": "bounce@example.com",
                        "Reason": "BOUNCE",
                        "LastUpdateTime": "2024-05-01T00:00:00Z",
                    }
                ]
            }
        )
    )
    generic = tmp_path / "generic.txt"
    generic.write_text("one@example.com\nnot-an-address\ntwo@example.com\n")
    for path, fmt, code in (
        (mailchimp, "mailchimp", 0),
        (unsub, "mailchimp", 0),
        (sendgrid, "sendgrid", 0),
        (ses, "ses", 0),
        (generic, "generic", 1),  # one row refused, the others imported
    ):
        result = run("import", str(path), "--format", fmt)
        assert result.exit_code == code, result.output
    assert "line 2: not a valid address: not-an-address" in result.stderr
    reasons = {
        address: json.loads(run("status", address, "--json").output)["suppressions"][0]["reason"]
        for address in (
            "dead@example.com",
            "left@example.com",
            "spam@example.com",
            "bounce@example.com",
            "one@example.com",
            "two@example.com",
        )
    }
    assert reasons == {
        "dead@example.com": "hard_bounce",
        "left@example.com": "unsubscribe",
        "spam@example.com": "complaint",
        "bounce@example.com": "hard_bounce",
        "one@example.com": "import",
        "two@example.com": "import",
    }
    since = json.loads(run("status", "dead@example.com", "--json").output)["suppressions"][0][
        "since"
    ]
    assert since.startswith("2024-03-01T10:00:00")
    again = run("import", str(generic))
    assert "Imported 0 suppressions; 2 were already suppressed." in again.stderr


def test_export_csv_and_jsonl_and_reimport(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("unsubscribe", "a@example.com")
    run("unsubscribe", "b@example.com")
    run("erase", "b@example.com")
    csv_text = run("export").stdout.splitlines()
    assert csv_text[0] == "address,address_hash,scope,reason,since"
    assert csv_text[1].startswith("a@example.com,")
    assert all(not line.startswith("b@") for line in csv_text)
    out = tmp_path / "export.jsonl"
    run("export", "--format", "jsonl", "--output", str(out))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["address"] for r in rows} == {"a@example.com", None}
    assert all(len(r["address_hash"]) == 64 for r in rows)
    result = run("import", str(out))
    assert "Imported 0 suppressions" in result.stderr


def test_erase(run) -> None:  # type: ignore[no-untyped-def]
    run("unsubscribe", "jane@example.com")
    assert "Erased" in run("erase", "jane@example.com").output
    status = json.loads(run("status", "jane@example.com", "--json").output)
    assert status["erased"] is True and status["sendable"]["overall"] is False
    assert "Already erased" in run("erase", "jane@example.com").output


def test_erase_is_final_and_says_so_for_an_address_never_seen(run) -> None:  # type: ignore[no-untyped-def]
    said = run("erase", "never@example.com").output
    assert "was not in the ledger" in said and "never mailed" in said
    run("unsubscribe", "jane@example.com")
    run("erase", "jane@example.com")
    refused = run("resubscribe", "jane@example.com")
    assert refused.exit_code == 1
    assert "erased" in refused.output and "final" in refused.output
    assert "Traceback" not in refused.output
    lifted = run("resubscribe", "jane@example.com", "--lift", "complaint", "--note", "asked")
    assert lifted.exit_code == 1
    for address in ("jane@example.com", "never@example.com"):
        status = json.loads(run("status", address, "--json").output)
        assert status["erased"] is True and status["sendable"]["overall"] is False


def test_resubscribe_lifts_a_hard_bounce_only_on_purpose(  # type: ignore[no-untyped-def]
    run, tmp_path: Path
) -> None:
    bounced = tmp_path / "bounced.csv"
    bounced.write_text("email\nbob@example.com\n")
    assert run("import", str(bounced), "--reason", "hard_bounce").exit_code == 0
    kept = run("resubscribe", "bob@example.com")
    assert "Nothing to undo" in kept.output and "--lift hard_bounce" in kept.output
    assert json.loads(run("status", "bob@example.com", "--json").output)["reasons"]
    no_note = run("resubscribe", "bob@example.com", "--lift", "hard_bounce")
    assert no_note.exit_code == 2 and "--note" in no_note.output
    done = run(
        "resubscribe", "bob@example.com", "--lift", "hard_bounce", "--note", "mailbox is back"
    )
    assert done.exit_code == 0 and "Resubscribed" in done.output
    status = json.loads(run("status", "bob@example.com", "--json").output)
    assert status["sendable"]["overall"] is True


def test_db_upgrade_and_keys_rotate(run) -> None:  # type: ignore[no-untyped-def]
    assert "Upgraded" in run("db", "upgrade").output
    assert "up to date" in run("db", "upgrade").output
    old = json.loads(run("link", "jane@example.com", "--json").output)["url"].rsplit("/", 1)[1]
    assert "Added token key 2" in run("keys", "rotate").output
    fresh = Adieu(Settings())
    assert fresh.codec.open(old).key_id == 1
    assert fresh.codec.open(fresh.link("jane@example.com").token).key_id == 2
    fresh.close()
