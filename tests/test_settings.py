from __future__ import annotations

from pathlib import Path

import pytest

from adieu.errors import InvalidSettings
from adieu.settings import Settings


def test_defaults(tmp_path: Path) -> None:
    settings = Settings()
    assert settings.data_dir == Path("./adieu-data")
    assert settings.base_url == "http://127.0.0.1:8000"
    assert settings.sqlalchemy_url.startswith("sqlite:///") and settings.sqlalchemy_url.endswith(
        "adieu-data/adieu.db"
    )
    assert settings.address_display == "mask"


def test_toml_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "adieu.toml"
    config.write_text('base_url = "https://links.example.net/"\nsender_name = "Example News"\n')
    monkeypatch.setenv("ADIEU_CONFIG", str(config))
    settings = Settings()
    assert settings.base == "https://links.example.net"
    assert settings.sender_name == "Example News"
    monkeypatch.setenv("ADIEU_SENDER_NAME", "From the environment")
    assert Settings().sender_name == "From the environment"


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADIEU_ADDRESS_DISPLAY", "shout")
    with pytest.raises(InvalidSettings, match="ADIEU_ADDRESS_DISPLAY"):
        Settings()


def test_inbound_trust_and_its_window(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert (settings.inbound_trust, settings.inbound_sent_days) == ("sent", 30)
    assert Settings(inbound_trust="token", inbound_sent_days="7").inbound_sent_days == 7
    monkeypatch.setenv("ADIEU_INBOUND_TRUST", "everyone")
    monkeypatch.setenv("ADIEU_INBOUND_SENT_DAYS", "0")
    with pytest.raises(InvalidSettings) as refused:
        Settings()
    assert refused.value.problems == [
        "ADIEU_INBOUND_TRUST: must be one of token, sent, any (it is 'everyone').",
        "ADIEU_INBOUND_SENT_DAYS: must be at least 1 (it is '0').",
    ]
    monkeypatch.setenv("ADIEU_INBOUND_TRUST", "any")
    monkeypatch.setenv("ADIEU_INBOUND_SENT_DAYS", "2.5")
    with pytest.raises(InvalidSettings, match="ADIEU_INBOUND_SENT_DAYS: must be a whole number"):
        Settings()
