"""What the commands share: options, output (never a partial file), tables."""

from __future__ import annotations

import io
import os
import re
import sys
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import click

from adieu.errors import AdieuError
from adieu.i18n import _
from adieu.ledger.vocabulary import Category
from adieu.scopes import ALL


def say(message: str) -> None:
    """A line for the person at the terminal, on standard error (standard
    output carries only the data a command produces)."""
    click.echo(message, err=True)


def error(message: str) -> None:
    """One error sentence on standard error."""
    click.echo(click.style(_("Error"), fg="red", bold=True) + ": " + message, err=True)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _width(text: str) -> int:
    plain = _ANSI.sub("", text)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in plain)


class Table:
    """A table at its natural width, so that nothing is ever cut (a long URL or
    key stays whole on a narrow terminal and in a pipe), drawn as rich draws
    its tables. Cells may carry click styles; colour is dropped when the
    output is not a terminal."""

    def __init__(self, *columns: str, title: str | None = None) -> None:
        self.columns = list(columns)
        self.rows: list[list[str]] = []
        self.title = title

    def add_row(self, *cells: str) -> None:
        self.rows.append([str(cell) for cell in cells])

    def render(self) -> str:
        widths = [max(map(_width, column)) for column in zip(self.columns, *self.rows, strict=True)]

        def rule(left: str, middle: str, right: str, fill: str) -> str:
            return left + middle.join(fill * (w + 2) for w in widths) + right

        def row(cells: list[str], bar: str) -> str:
            padded = (f" {c}{' ' * (w - _width(c))} " for c, w in zip(cells, widths, strict=True))
            return bar + bar.join(padded) + bar

        lines = [rule("┏", "┳", "┓", "━"), row(self.columns, "┃"), rule("┡", "╇", "┩", "━")]
        if self.title:
            lines.insert(0, self.title.center(sum(widths) + 3 * len(widths) + 1).rstrip())
        lines += [row(cells, "│") for cells in self.rows]
        lines.append(rule("└", "┴", "┘", "─"))
        return "\n".join(lines)


def serving() -> None:
    """A command that runs until stopped: the garbage collector back on (it
    is off while a command starts; see ``adieu._entry``)."""
    import gc

    gc.enable()


def _table(*columns: str) -> Table:
    return Table(*columns)


def show(table: Table) -> None:
    """A table on standard output."""
    click.echo(table.render())


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
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    columns = (label, BarColumn(), DownloadColumn(), TimeRemainingColumn())
    console = Console(stderr=True, highlight=False)
    with Progress(*columns, console=console, transient=True) as progress:
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
    say(_("Skipped {count} rows without a valid address:").format(count=count))
    for number, what in listed:
        say(_("  line {number}: {what}").format(number=number, what=what))
    if count > len(listed):
        say(_("  … and {more} more").format(more=count - len(listed)))


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
