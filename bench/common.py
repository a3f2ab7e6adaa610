"""What the benchmark scripts share: a private PostgreSQL schema, the table."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import quote

from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text

console = Console()


@contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """A URL for ``url`` whose search_path is a fresh schema, dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        separator = "&" if "?" in url else "?"
        yield f"{url}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def print_table(title: str, rows: Sequence[Sequence[str]]) -> None:
    """The results as a rich table, then as Markdown for the README."""
    table = Table("benchmark", "Adieu", "baseline (same run)", "notes", title=title)
    for r in rows:
        table.add_row(*r)
    console.print(table)
    print("\n| benchmark | Adieu | baseline (same run) | notes |\n|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
