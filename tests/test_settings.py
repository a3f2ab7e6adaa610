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
