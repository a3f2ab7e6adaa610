"""``adieu import``: bad rows are listed by line and skipped, the good rows
imported, and the exit status says which happened, the same in every format:
0 every row imported (or already there), 1 some rows refused, 2 nothing read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from adieu.cli import main


@pytest.fixture
def run(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ADIEU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ADIEU_DATABASE_URL", database_url)
    monkeypatch.setenv("ADIEU_BASE_URL", "https://mail.example.net")
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(main, list(args), catch_exceptions=False)

    return invoke


def _status(run, address: str) -> bool:  # type: ignore[no-untyped-def]
    """Whether ``address`` is suppressed."""
    return bool(json.loads(run("status", address, "--json").output)["suppressions"])


# A good row, a bad one (of the kind that used to end the import with a
# traceback), another good row; and a file whose every row is bad.
FILES = {
    "generic": (
        '{"address": "one@example.com"}\n'
        '{"address": "bad@example.com", "since": 5}\n'
        + "[" * 10_000
        + "\n"
        + '{"address": "two@example.com", "since": "0001-01-01T00:00:00+23:59"}\n'
        '{"address": "three@example.com"}\n',
        {2: "since", 3: "nested", 4: "since"},
        '{"address": "bad@example.com", "since": 5}\n{"address": 7}\n',
    ),
    "sendgrid": (
        "email,created\none@example.com,1\ntwo@example.com,99999999999999999999\n"
        "three@example.com,1700000000\n",
        {3: "created"},
        "email,created\ntwo@example.com,99999999999999999999\n",
    ),
    "mailchimp": (
        "Email Address,UNSUB_TIME\none@example.com,2024-01-01 00:00:00\nnope,\n"
        "three@example.com,\n",
        {3: "not a valid address"},
        "Email Address,UNSUB_TIME\nnope,\nalso nope,\n",
    ),
    "ses": (
        "EmailAddress,Reason\none@example.com,BOUNCE\ntwo@example.com,MAYBE\n"
        "three@example.com,COMPLAINT\n",
        {3: "BOUNCE or COMPLAINT"},
        "EmailAddress,Reason\ntwo@example.com,MAYBE\nx@example.com,\n",
    ),
}


@pytest.mark.parametrize("fmt", sorted(FILES))
def test_a_bad_row_is_listed_and_skipped_and_the_good_rows_imported(  # type: ignore[no-untyped-def]
    run, tmp_path: Path, fmt: str
) -> None:
    text, refused, _ = FILES[fmt]
    path = tmp_path / "list"
    path.write_text(text)
    result = run("import", str(path), "--format", fmt)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert f"Refused {len(refused)} rows" in result.stderr
    for line, words in refused.items():
        shown = next(x for x in result.stderr.splitlines() if x.startswith(f"  line {line}: "))
        assert words in shown
    assert _status(run, "one@example.com") and _status(run, "three@example.com")
    again = run("import", str(path), "--format", fmt)
    assert again.exit_code == 1 and "2 were already suppressed" in again.stderr


@pytest.mark.parametrize("fmt", sorted(FILES))
def test_a_file_whose_every_row_is_bad_exits_2(  # type: ignore[no-untyped-def]
    run, tmp_path: Path, fmt: str
) -> None:
    path = tmp_path / "list"
    path.write_text(FILES[fmt][2])
    result = run("import", str(path), "--format", fmt)
    assert result.exit_code == 2, result.output
    assert "Error: Nothing was imported" in result.stderr
    assert "line 2: " in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("text", "fmt", "words"),
    [
        ("", "generic", "Nothing was imported"),
        ("name,phone\nAnn,1\n", "generic", "no e-mail column"),
        ('{"SuppressedDestinationSummaries": [{"EmailAddress": ', "ses", "not valid JSON"),
    ],
)
def test_a_file_that_cannot_be_read_exits_2(  # type: ignore[no-untyped-def]
    run, tmp_path: Path, text: str, fmt: str, words: str
) -> None:
    path = tmp_path / "list"
    path.write_text(text)
    result = run("import", str(path), "--format", fmt)
    assert result.exit_code == 2 and words in result.stderr, result.output


def test_every_row_imported_or_already_there_exits_0(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "list.txt"
    path.write_text("email\none@example.com\ntwo@example.com\n")
    first = run("import", str(path))
    assert first.exit_code == 0 and "Imported 2 suppressions" in first.stderr
    again = run("import", str(path))
    assert again.exit_code == 0 and "2 were already suppressed" in again.stderr
