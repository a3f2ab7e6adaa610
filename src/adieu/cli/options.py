"""What the commands share: options, output (never a partial file), tables."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from adieu.errors import AdieuError
from adieu.i18n import _
from adieu.ledger.vocabulary import Category
from adieu.scopes import ALL

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


class _Console:
    """A rich console made on first use: rich costs about 50 ms to import, which
    ``--help`` and the pipe transport should not pay."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def real(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real(), name)


# soft_wrap: a line is never broken in two (output is read by scripts too).
err = _Console(stderr=True, highlight=False, soft_wrap=True)
out = _Console(highlight=False, soft_wrap=True)
#: For tables written to a pipe or a file: their natural width, nothing cut.
_wide = _Console(highlight=False, soft_wrap=True, width=10_000)


def _table(*columns: str) -> Table:
    from rich.table import Table

    return Table(*columns)


def show(table: Table) -> None:
    """A table on standard output: fitted to a terminal; whole in a pipe."""
    (out if out.is_terminal else _wide).print(table)


def error(message: str) -> None:
    """One error sentence on standard error."""
    from rich.markup import escape

    err.print(f"[bold red]{_('Error')}:[/] {escape(message)}", markup=True)


def category_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--category",
        type=click.Choice([c.value for c in Category]),
        default=Category.MARKETING.value,
        show_default=True,
        help=help,
    )


def workers_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--workers", type=click.IntRange(1, 64), default=1, show_default=True, help=help
    )


output_option = click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help=_("Write here instead of standard output."),
)


@contextmanager
def _progress(label: str, total: int | None) -> Iterator[Callable[[int], None] | None]:
    """A rich progress bar on a terminal; nothing otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    columns = (label, BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err.real(), transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


@contextmanager
def _output(path: Path | None) -> Iterator[IO[bytes]]:
    """stdout, or a file that appears only when complete (no partial writes)."""
    if path is None or str(path) == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    import tempfile

    directory = path.resolve().parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as exc:
        raise click.FileError(str(path), hint=exc.strerror) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


@contextmanager
def _text_output(path: Path | None) -> Iterator[IO[str]]:
    with _output(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="")
        yield text
        text.flush()
        text.detach()


def _when(value: datetime | None) -> str:
    from adieu.times import iso

    return iso(value, "seconds") if value else "-"


def _scope_name(scope: str) -> str:
    return _("all marketing email") if scope == ALL else _("topic {key}").format(key=scope)


def _report_invalid(count: int, listed: list[tuple[int, str]]) -> None:
    if not count:
        return
    err.print(_("Skipped {count} rows without a valid address:").format(count=count))
    for number, what in listed:
        err.print(_("  line {number}: {what}").format(number=number, what=what), markup=False)
    if count > len(listed):
        err.print(_("  … and {more} more").format(more=count - len(listed)))


@contextmanager
def _open_binary(file: Path) -> Iterator[IO[bytes]]:
    if str(file) == "-":
        yield sys.stdin.buffer
        return
    try:
        fh = file.open("rb")
    except OSError as exc:
        raise AdieuError(f"Cannot read {file}: {exc.strerror or exc}.") from None
    with fh:
        yield fh


@contextmanager
def _open_input(file: Path) -> Iterator[IO[str]]:
    from adieu import lists

    if str(file) == "-":
        yield sys.stdin
        return
    with lists.open_text(file) as fh:
        yield fh


def _read_message(path: Path) -> bytes:
    if str(path) == "-":
        return sys.stdin.buffer.read()
    try:
        return path.read_bytes()
    except OSError as exc:
        raise AdieuError(f"Cannot read {path}: {exc.strerror or exc}.") from None
