"""The root ``adieu`` group: its error map (one sentence, an exit status) and
the ``Adieu`` it builds on first use.

Nothing heavy is imported here: ``adieu --help`` and ``--version`` load click
and the command modules only (the start-up benchmark, bench/startup.py).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from adieu import __version__
from adieu.cli.options import error, say
from adieu.errors import AdieuError, InvalidSettings, Unavailable, storage_trouble
from adieu.i18n import _

if TYPE_CHECKING:
    from pathlib import Path

    from adieu.service import Adieu
    from adieu.settings import Settings

#: Commands that make the data directory as part of what they are for (and
#: say where): any other says so when it is about to make one.
MAKE_THE_DATA_DIR = frozenset({("serve",), ("db", "upgrade")})


class AdieuGroup(click.Group):
    """Maps Adieu's errors to one clear sentence and an exit status, in one
    place; loads each command's module only when that command is asked for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy: dict[str, str] = {}

    def lazy(self, commands: dict[str, str]) -> None:
        """Register commands by ``module:attribute`` under ``adieu.cli``."""
        self._lazy.update(commands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in self._lazy:
            import importlib

            module, attribute = self._lazy[name].split(":")
            command = getattr(importlib.import_module(f"adieu.cli.{module}"), attribute)
            self.add_command(command, name)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AdieuError as exc:
            lines = exc.problems if isinstance(exc, InvalidSettings) else [str(exc)]
            for line in lines:
                error(line)
            ctx.exit(exc.exit_code)
        except BrokenPipeError:  # `adieu export | head`
            sys.stderr.close()
            ctx.exit(0)
        except Exception as exc:
            if not storage_trouble(exc):
                raise  # a bug: its traceback is what a report needs
            # The ledger is locked, gone or read-only: nothing was changed.
            error(str(Unavailable()))
            ctx.exit(Unavailable.exit_code)


@click.group(cls=AdieuGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="adieu")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Adieu: make leaving a mailing list easy, respectful and final."""
    ctx.obj = _Lazy()
    ctx.call_on_close(ctx.obj.close)


class _Lazy:
    """Builds ``Adieu`` on first use, so ``--help`` needs no database."""

    _app: Adieu | None = None

    @property
    def app(self) -> Adieu:
        if self._app is None:
            from adieu.service import Adieu
            from adieu.settings import Settings

            settings = Settings()
            new = _new_data_dir(settings)
            if new is not None and _command() not in MAKE_THE_DATA_DIR:
                say(
                    _(
                        "Creating {path} for a new ledger and key file (none there yet);"
                        " set ADIEU_DATA_DIR to use an existing one."
                    ).format(path=new)
                )
            self._app = Adieu(settings)
        return self._app

    def close(self) -> None:
        if self._app is not None:
            self._app.close()


pass_app = click.make_pass_decorator(_Lazy)


def _command() -> tuple[str, ...]:
    """The command being run, as its words after ``adieu`` (``("db", "upgrade")``)."""
    ctx = click.get_current_context(silent=True)
    words: list[str] = []
    while ctx is not None and ctx.parent is not None:
        words.insert(0, ctx.info_name or "")
        ctx = ctx.parent
    return tuple(words)


def _new_data_dir(settings: Settings) -> Path | None:
    """The default data directory (``./adieu-data``, wherever the command
    runs), in full, when Adieu is about to create it for its files: it is not
    there, no setting names it, and the ledger or the key file goes in it.
    A directory the settings name is made without a word: it was asked for."""
    if "data_dir" in settings.given or (settings.database_url and settings.keys_file):
        return None
    path = settings.data_dir.resolve()
    return None if path.exists() else path
