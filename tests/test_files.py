"""Every file that holds addresses or secrets is its owner's alone: the data
directory 0700, the SQLite database with its -wal and -shm, the key file and
DKIM keys 0600, whatever the umask; files from before that others could read
are tightened on start, each with one line on stderr."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from adieu import keys
from adieu.cli import main
from adieu.ledger import Channel
from adieu.service import Adieu
from adieu.settings import Settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def _open_umask() -> Iterator[None]:
    """The usual umask, under which new files are readable by everyone."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _dkim(data: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ADIEU_DATA_DIR", str(data))
    monkeypatch.setenv("ADIEU_DATABASE_URL", database_url)
    result = CliRunner().invoke(
        main,
        ["keys", "dkim", "--domain", "example.com", "--selector", "s1", "--ed25519"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return data / "dkim-s1-ed25519.pem"


def test_new_files_are_private(
    settings: Settings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = settings.data_dir
    adieu = Adieu(settings)
    try:
        adieu.ledger.unsubscribe("ann@example.com", channel=Channel.ONE_CLICK)
        adieu.outbox.create_webhook("https://crm.example/hook")
        created = [data, settings.key_path]
        if database_url.startswith("sqlite"):
            db = data / "adieu.db"
            # The write-ahead log and shared memory exist while a connection is open.
            created += [db, db.with_name("adieu.db-wal"), db.with_name("adieu.db-shm")]
        assert all(p.exists() for p in created)
        assert mode(data) == 0o700
        assert {p.name: mode(p) for p in created[1:]} == {p.name: 0o600 for p in created[1:]}
    finally:
        adieu.close()
    assert mode(_dkim(data, database_url, monkeypatch)) == 0o600


def test_files_from_before_are_tightened_on_start_each_with_one_line(
    settings: Settings,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    data = settings.data_dir
    adieu = Adieu(settings)
    adieu.ledger.unsubscribe("ann@example.com", channel=Channel.ONE_CLICK)
    adieu.close()
    dkim_key = _dkim(data, database_url, monkeypatch)
    loose = [p for p in data.iterdir() if p.is_file()]
    for p in loose:
        p.chmod(0o644)
    data.chmod(0o755)
    capfd.readouterr()

    again = Adieu(settings)
    try:
        again.ledger.status("ann@example.com")
        assert again.link("ann@example.com").url
    finally:
        again.close()

    assert mode(data) == 0o700
    assert {p.name: mode(p) for p in loose} == {p.name: 0o600 for p in loose}
    assert dkim_key in loose and settings.key_path in loose
    lines = capfd.readouterr().err.splitlines()
    assert len(lines) == len(loose) + 1, lines
    for path in [*loose, data]:
        (line,) = [x for x in lines if f" {path} " in x]
        assert line.startswith("Warning: ") and ("0644" in line or "0755" in line)
    assert not any("@" in x for x in lines), "no address in the warnings"

    third = Adieu(settings)
    try:
        third.ledger.status("ann@example.com")
    finally:
        third.close()
    assert capfd.readouterr().err == "", "said once: nothing more to tighten"


def test_a_directory_shared_with_other_files_is_left_as_it_is(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    (shared / "notes.txt").write_text("not Adieu's")
    ring = shared / "keys.json"
    keys.load_or_create(ring)
    ring.chmod(0o640)
    keys.load_or_create(ring)
    assert mode(ring) == 0o600
    assert mode(shared) == 0o755
    assert mode(shared / "notes.txt") == 0o644


def test_the_command_line_says_which_file_it_tightened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("ADIEU_DATA_DIR", str(data))
    runner = CliRunner()
    assert runner.invoke(main, ["unsubscribe", "ann@example.com"]).exit_code == 0
    (data / "adieu.db").chmod(0o644)
    result = runner.invoke(main, ["status", "ann@example.com"])
    assert result.exit_code == 0
    assert f"Warning: {data / 'adieu.db'} was open to other users (mode 0644)" in result.stderr
    assert mode(data / "adieu.db") == 0o600
