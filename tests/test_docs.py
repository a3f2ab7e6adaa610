from __future__ import annotations

from pathlib import Path

from adieu.settings import Settings

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_setting_is_documented_in_the_readme() -> None:
    for name in Settings.model_fields:
        assert f"ADIEU_{name.upper()}" in README, f"ADIEU_{name.upper()} is not in the README"


def test_every_command_is_documented_in_the_readme() -> None:
    from adieu.cli import main

    for name in main.commands:
        assert f"adieu {name}" in README, f"adieu {name} is not in the README"
