from __future__ import annotations

from pathlib import Path

from adieu.settings import Settings

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_setting_is_documented_in_the_readme() -> None:
    for name in Settings.fields():
        assert f"ADIEU_{name.upper()}" in README, f"ADIEU_{name.upper()} is not in the README"


def test_every_command_is_documented_in_the_readme() -> None:
    import click

    from adieu.cli import main

    names = main.list_commands(click.Context(main))
    assert len(names) >= 19
    for name in names:
        assert f"adieu {name}" in README, f"adieu {name} is not in the README"
