"""Files of addresses: filtering send lists, importing and exporting suppressions.

Readers accept one address a line, or CSV with a header (the column named by
the caller, or a usual e-mail column name). Output rows are written exactly as
they were read. Progress is reported in bytes read, for a progress bar.
"""

from __future__ import annotations

import csv
import gc
import io
import itertools
import json
import os
import pickle
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Literal, cast

from adieu.addresses import canonical_or_none
from adieu.errors import InvalidInput
from adieu.ledger import ImportResult, Ledger, Reason, SuppressionRecord
from adieu.policy import Category, FilterReport, Policy
from adieu.policy.screen import Screen
from adieu.times import iso_or_none
from adieu.tokens import ALL

Progress = Callable[[int], None]
ImportFormat = Literal["generic", "mailchimp", "sendgrid", "ses"]
ExportFormat = Literal["csv", "jsonl"]

#: Column names that hold the address, in the services' own exports.
EMAIL_COLUMNS = (
    "email",
    "e-mail",
    "email address",
    "email_address",
    "emailaddress",
    "address",
    "to",
)


@dataclass(slots=True)
class Source:
    """An opened address file: its rows (raw text, address) and its header."""

    header: str | None
    rows: Iterator[tuple[int, str, dict[str, str] | None]]  # line number, raw, record
    address_of: Callable[[dict[str, str] | None, str], str]


def open_text(path: Path) -> IO[str]:
    try:
        return path.open("r", encoding="utf-8-sig", errors="surrogateescape", newline="")
    except OSError as exc:
        raise InvalidInput(f"Cannot read {path}: {exc.strerror or exc}.") from None


class _Counted:
    """Iterates lines, remembering the raw text and reporting progress."""

    def __init__(self, fh: IO[str], progress: Progress | None) -> None:
        self._fh = fh
        self._progress = progress
        self.consumed: list[str] = []
        self.line = 0

    def __iter__(self) -> _Counted:
        return self

    def __next__(self) -> str:
        line = self._fh.readline()
        if not line:
            raise StopIteration
        self.line += 1
        self.consumed.append(line)
        if self._progress is not None:
            self._progress(len(line.encode("utf-8", "surrogateescape")))
        return line


def read_source(fh: IO[str], column: str | None, progress: Progress | None = None) -> Source:
    """Open ``fh`` as a list of addresses (one a line) or a CSV with a header."""
    tap = _Counted(fh, progress)
    first = next(tap, None)
    if first is None:
        return Source(header=None, rows=iter(()), address_of=lambda rec, raw: raw)
    looks_csv = column is not None or any(sep in first for sep in ",;\t")
    if not looks_csv:
        header = first if first.strip().lower() in EMAIL_COLUMNS else None
        tap.consumed.clear()

        def lines() -> Iterator[tuple[int, str, dict[str, str] | None]]:
            if header is None:
                yield 1, first, None
            for line in tap:
                tap.consumed.clear()
                yield tap.line, line, None

        return Source(header=header, rows=lines(), address_of=lambda rec, raw: raw)
    try:
        dialect = csv.Sniffer().sniff(first, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    names = next(csv.reader([first], dialect))
    lowered = [n.strip().lower() for n in names]
    if column is not None:
        if column.strip().lower() not in lowered:
            raise InvalidInput(
                f"The file has no column named {column!r}; its columns are: {', '.join(names)}."
            )
        index = lowered.index(column.strip().lower())
    else:
        found = [i for i, n in enumerate(lowered) if n in EMAIL_COLUMNS]
        if not found:
            raise InvalidInput(
                "The file has no e-mail column; name it with --column "
                f"(its columns are: {', '.join(names)})."
            )
        index = found[0]
    tap.consumed.clear()
    reader = csv.reader(tap, dialect)

    def records() -> Iterator[tuple[int, str, dict[str, str] | None]]:
        while True:
            start = tap.line + 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error:
                raw = "".join(tap.consumed)
                tap.consumed.clear()
                yield start, raw, {}
                continue
            raw = "".join(tap.consumed)
            tap.consumed.clear()
            if not fields:
                continue
            yield start, raw, dict(zip(lowered, fields, strict=False))

    key = lowered[index]
    return Source(
        header=first,
        rows=records(),
        address_of=lambda rec, raw: (rec or {}).get(key, ""),
    )


CHUNK = 1 << 16  # small enough to stay in the CPU cache (measured: 64 KiB best)
PARALLEL_MIN_BYTES = 16 << 20
_BOM = b"\xef\xbb\xbf"


def filter_file(
    policy: Policy,
    source: IO[bytes],
    out: IO[bytes],
    *,
    column: str | None = None,
    topic: str | None = None,
    category: Category | str = Category.MARKETING,
    progress: Progress | None = None,
    workers: int | None = None,
) -> FilterReport:
    """Write the rows of ``source`` that may be mailed now to ``out``, unchanged.

    A list with one address a line is screened in chunks, on several cores
    when the file is large and can be read at any offset; a CSV file row by row.
    """
    first = source.readline()
    if not first:
        return FilterReport()
    if first.startswith(_BOM):
        out.write(_BOM)
        first = first[len(_BOM) :]
    if progress is not None:
        progress(len(first))
    text = first.decode("utf-8", "surrogateescape")
    if column is not None or any(sep in text for sep in ",;\t"):
        lines = cast(IO[str], _Lines(first, source))
        return _filter_csv(policy, lines, out, column, topic, category, progress)
    screen = policy.screen(topic, category)
    report = FilterReport()
    before = 0  # lines before the part being screened
    if text.strip().lower() in EMAIL_COLUMNS:
        out.write(first)
        first, before = b"", 1
    if first and not first.endswith(b"\n"):
        first += b"\n"
    part = _screen_stream(screen, first, b"", out, progress)
    _merge(report, part, before)
    before += part.lines
    span = _remaining_span(source)
    count = _workers(workers, span)
    if span is not None and count > 1:
        for part, offset in _screen_parallel(screen, source.fileno(), span, count, out, progress):
            _merge(report, part, before + offset)
        return report
    _merge(report, _screen_stream(screen, b"", source.read, out, progress), before)
    return report


def _remaining_span(source: IO[bytes]) -> tuple[int, int] | None:
    """(start, end) of what is left to read, for a regular file; else None."""
    try:
        if not source.seekable():
            return None
        start, end = source.tell(), os.fstat(source.fileno()).st_size
    except (OSError, ValueError, io.UnsupportedOperation):
        return None
    return start, end


def _workers(asked: int | None, span: tuple[int, int] | None) -> int:
    if span is None or not hasattr(os, "fork"):
        return 1
    if asked is not None:
        return max(1, asked)
    if span[1] - span[0] < PARALLEL_MIN_BYTES:
        return 1
    return max(1, min(4, len(os.sched_getaffinity(0))))


def _screen_parallel(
    screen: Screen,
    fd: int,
    span: tuple[int, int],
    workers: int,
    out: IO[bytes],
    progress: Progress | None,
) -> Iterator[tuple[_Partial, int]]:
    """Screen a file's byte range in ``workers`` forked processes.

    Each child screens a slice that starts and ends on a line boundary, into a
    file of its own; the parent then appends the slices in order, so the
    output is exactly what one process would have written. Yields each
    slice's report with the number of lines before it.
    """
    start, end = span
    cuts = [start]
    for i in range(1, workers):
        cut = _next_line_start(fd, start + (end - start) * i // workers, end)
        cuts.append(max(cut, cuts[-1]))
    cuts.append(end)
    with tempfile.TemporaryDirectory(prefix="adieu-filter-") as tmp:
        children = []
        for i in range(workers):
            path = Path(tmp) / f"part{i}"
            children.append((path, *_fork_slice(screen, fd, cuts[i], cuts[i + 1], path)))
        parts = []
        for path, pid, pipe in children:
            with os.fdopen(pipe, "rb") as fh:
                payload = fh.read()
            _, status = os.waitpid(pid, 0)
            result = pickle.loads(payload) if payload else None
            if status != 0 or not isinstance(result, _Partial):
                raise InvalidInput(f"Filtering failed in a worker process: {result or status}.")
            parts.append((path, result))
        lines_before = 0
        for (path, part), (a, b) in zip(parts, itertools.pairwise(cuts), strict=True):
            with path.open("rb") as fh:
                shutil.copyfileobj(fh, out, CHUNK)
            if progress is not None:
                progress(b - a)
            yield part, lines_before
            lines_before += part.lines


def _next_line_start(fd: int, pos: int, end: int) -> int:
    while pos < end:
        block = os.pread(fd, 65536, pos)
        if not block:
            return end
        found = block.find(b"\n")
        if found >= 0:
            return pos + found + 1
        pos += len(block)
    return end


def _fork_slice(screen: Screen, fd: int, start: int, end: int, path: Path) -> tuple[int, int]:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid:  # parent
        os.close(write_end)
        return pid, read_end
    os.close(read_end)  # pragma: no cover - runs in the child
    gc.disable()  # a short-lived child that makes no reference cycles: skip the collector
    status = 0
    try:
        position = start

        def read(size: int) -> bytes:
            nonlocal position
            block = os.pread(fd, min(size, end - position), position) if position < end else b""
            position += len(block)
            return block

        with path.open("wb") as sink:
            part = _screen_stream(screen, b"", read, sink, None)
        payload = pickle.dumps(part)
    except BaseException as exc:  # report, never leave the parent waiting
        payload, status = pickle.dumps(f"{type(exc).__name__}: {exc}"), 1
    with os.fdopen(write_end, "wb") as fh:
        fh.write(payload)
    os._exit(status)


def _filter_csv(
    policy: Policy,
    source: IO[str],
    out: IO[bytes],
    column: str | None,
    topic: str | None,
    category: Category | str,
    progress: Progress | None,
) -> FilterReport:
    opened = read_source(source, column, None)
    report = FilterReport()
    if opened.header is not None:
        out.write(opened.header.encode("utf-8", "surrogateescape"))
    address_of = opened.address_of
    numbered = ((n, raw, address_of(rec, raw)) for n, raw, rec in opened.rows)
    kept = policy.filter(
        numbered,
        lambda row: row[2],
        line_of=lambda row: row[0],
        topic=topic,
        category=category,
        report=report,
    )
    for _, raw, _ in kept:
        data = raw.encode("utf-8", "surrogateescape")
        out.write(data)
        if progress is not None:
            progress(len(data))
    return report


@dataclass(slots=True)
class _Partial:
    lines: int = 0
    kept: int = 0
    removed: Counter[str] = field(default_factory=Counter)
    invalid: list[tuple[int, str]] = field(default_factory=list)
    invalid_count: int = 0


def _merge(report: FilterReport, part: _Partial, line_offset: int = 0, limit: int = 100) -> None:
    report.kept += part.kept
    for why, n in part.removed.items():
        report.count(why, n)
    report.invalid_count += part.invalid_count
    room = limit - len(report.invalid)
    report.invalid.extend((n + line_offset, what) for n, what in part.invalid[: max(room, 0)])


def _screen_stream(
    screen: Screen,
    pending: bytes,
    read: Callable[[int], bytes] | bytes,
    out: IO[bytes],
    progress: Progress | None,
) -> _Partial:
    """Screen ``pending`` and then what ``read`` returns, chunk by chunk.

    Line numbers in the result count from 1 at the start of this stream; the
    caller adds the lines before it.
    """
    part = _Partial()
    carry = pending
    while True:
        block = read(CHUNK) if callable(read) else b""
        if progress is not None and block:
            progress(len(block))
        data = carry + block
        if not block:
            if data and not data.endswith(b"\n"):
                data += b"\n"
            carry = b""
        else:
            cut = data.rfind(b"\n") + 1
            data, carry = data[:cut], data[cut:]
        if data:
            result = screen.chunk(data, part.lines + 1, max_listed=100 - len(part.invalid))
            if result.kept:
                out.write(b"\n".join(result.kept))
                out.write(b"\n")
            part.lines += result.lines
            part.kept += len(result.kept)
            part.removed.update(result.removed)
            part.invalid.extend(result.invalid)
            part.invalid_count += result.invalid_count
        if not block:
            return part


class _Lines(io.TextIOBase):
    """Text lines of a binary stream whose first line was already read."""

    def __init__(self, first: bytes, rest: IO[bytes]) -> None:
        self._first: bytes | None = first
        self._rest = rest

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        if self._first is not None:
            line, self._first = self._first, None
        else:
            line = self._rest.readline()
        return line.decode("utf-8", "surrogateescape")


# -- import -------------------------------------------------------------------

_MAILCHIMP_REASON = {"clean_time": Reason.HARD_BOUNCE, "unsub_time": Reason.UNSUBSCRIBE}
_SES_REASON = {"BOUNCE": Reason.HARD_BOUNCE, "COMPLAINT": Reason.COMPLAINT}


def _parse_time(text: str | None) -> datetime | None:
    if not text or not text.strip():
        return None
    text = text.strip()
    if text.isdigit():
        return datetime.fromtimestamp(int(text), UTC)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _generic_reason(text: str | None) -> Reason:
    if not text:
        return Reason.IMPORT
    value = text.strip().lower().replace("-", "_").replace(" ", "_")
    aliases = {
        "unsubscribed": Reason.UNSUBSCRIBE,
        "bounce": Reason.HARD_BOUNCE,
        "bounced": Reason.HARD_BOUNCE,
        "spam": Reason.COMPLAINT,
        "spamreport": Reason.COMPLAINT,
        "spam_report": Reason.COMPLAINT,
        "abuse": Reason.COMPLAINT,
    }
    if value in aliases:
        return aliases[value]
    try:
        return Reason(value)
    except ValueError:
        return Reason.IMPORT


def read_suppressions(
    fh: IO[str],
    fmt: ImportFormat = "generic",
    *,
    scope: str = ALL,
    reason: Reason | None = None,
    progress: Progress | None = None,
) -> Iterator[tuple[int, SuppressionRecord | str]]:
    """Records from a suppression export, by the services' own column names.

    - generic: one address a line, CSV with an e-mail column (optional
      ``reason``, ``scope``/``topic``, ``since``/``created``), or Adieu's own
      JSON-lines export (``address`` or ``address_hash``).
    - mailchimp: an audience export ("Email Address"; ``CLEAN_TIME`` marks
      cleaned, i.e. bounced, contacts; ``UNSUB_TIME`` unsubscribed ones).
    - sendgrid: suppression CSVs (``email``, ``created``; ``status`` marks
      bounces, ``ip`` marks spam reports, otherwise unsubscribes).
    - ses: ``aws sesv2 list-suppressed-destinations`` JSON, or CSV with
      ``EmailAddress`` and ``Reason`` (BOUNCE, COMPLAINT).

    Yields (line number, record) or (line number, what is wrong).
    """
    head = fh.read(1)
    if head in ("{", "[") and fmt in ("generic", "ses"):
        text = head + fh.read()
        if progress is not None:
            progress(len(text.encode("utf-8", "surrogateescape")))
        yield from _read_json(text, fmt, scope, reason)
        return
    rest = cast(IO[str], _Prefixed(head, fh))
    source = read_source(rest, None, progress)
    for number, raw, rec in source.rows:
        address = source.address_of(rec, raw).strip()
        if not address and not (rec or {}).get("address_hash"):
            if raw.strip():
                yield number, "no address on this line"
            continue
        record = rec or {}
        row_reason = reason
        since: datetime | None = None
        row_scope = (record.get("scope") or record.get("topic") or scope).strip() or scope
        if fmt == "mailchimp":
            for col, why in _MAILCHIMP_REASON.items():
                if record.get(col):
                    row_reason = row_reason or why
                    since = _parse_time(record[col])
            row_reason = row_reason or Reason.UNSUBSCRIBE
        elif fmt == "sendgrid":
            if "status" in record:
                row_reason = row_reason or Reason.HARD_BOUNCE
            elif "ip" in record:
                row_reason = row_reason or Reason.COMPLAINT
            row_reason = row_reason or Reason.UNSUBSCRIBE
            since = _parse_time(record.get("created") or record.get("created_at"))
        elif fmt == "ses":
            row_reason = row_reason or _SES_REASON.get((record.get("reason") or "").strip().upper())
            if row_reason is None:
                yield number, "the Reason column must be BOUNCE or COMPLAINT"
                continue
            since = _parse_time(record.get("lastupdatetime"))
        else:
            row_reason = row_reason or _generic_reason(record.get("reason"))
            since = _parse_time(
                record.get("since") or record.get("created") or record.get("created_at")
            )
        yield number, _record(address, record.get("address_hash"), row_scope, row_reason, since)


def _record(
    address: str, address_hash: str | None, scope: str, reason: Reason, since: datetime | None
) -> SuppressionRecord | str:
    if address:
        canon = canonical_or_none(address)
        if canon is None:
            return f"not a valid address: {address[:80]}"
        return SuppressionRecord(address=canon, scope=scope, reason=reason, since=since)
    try:
        digest = bytes.fromhex(address_hash or "")
    except ValueError:
        digest = b""
    if len(digest) != 32:
        return "address_hash must be 64 hexadecimal characters"
    return SuppressionRecord(
        address=None, address_hash=digest, scope=scope, reason=reason, since=since
    )


def _read_json(
    text: str, fmt: ImportFormat, scope: str, reason: Reason | None
) -> Iterator[tuple[int, SuppressionRecord | str]]:
    if fmt == "ses":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"The file is not valid JSON: {exc.msg} (line {exc.lineno})."
            ) from None
        items = data.get("SuppressedDestinationSummaries", []) if isinstance(data, dict) else data
        for number, item in enumerate(items if isinstance(items, list) else [], start=1):
            if not isinstance(item, dict):
                yield number, "not an object"
                continue
            why = reason or _SES_REASON.get(str(item.get("Reason", "")).upper())
            if why is None:
                yield number, "Reason must be BOUNCE or COMPLAINT"
                continue
            yield (
                number,
                _record(
                    str(item.get("EmailAddress", "")),
                    None,
                    scope,
                    why,
                    _parse_time(str(item.get("LastUpdateTime", ""))),
                ),
            )
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            yield number, "not a JSON object"
            continue
        if not isinstance(item, dict):
            yield number, "not a JSON object"
            continue
        yield (
            number,
            _record(
                str(item.get("address") or item.get("email") or ""),
                item.get("address_hash"),
                str(item.get("scope") or scope),
                reason or _generic_reason(item.get("reason")),
                _parse_time(item.get("since")),
            ),
        )


class _Prefixed(io.TextIOBase):
    """A text stream with one already-read character put back in front."""

    def __init__(self, head: str, rest: IO[str]) -> None:
        self._head = head
        self._rest = rest

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        line = self._rest.readline()
        if self._head:
            line, self._head = self._head + line, ""
        return line


def import_file(
    ledger: Ledger,
    fh: IO[str],
    fmt: ImportFormat = "generic",
    *,
    scope: str = ALL,
    reason: Reason | None = None,
    progress: Progress | None = None,
    max_invalid_listed: int = 100,
) -> tuple[ImportResult, int]:
    """Import a suppression file; returns the result and the count of bad rows."""
    scope = ledger.check_scope(scope)
    bad = 0
    invalid: list[tuple[int, str]] = []

    def good() -> Iterator[SuppressionRecord]:
        nonlocal bad
        for number, item in read_suppressions(
            fh, fmt, scope=scope, reason=reason, progress=progress
        ):
            if isinstance(item, str):
                bad += 1
                if len(invalid) < max_invalid_listed:
                    invalid.append((number, item))
                continue
            ledger.check_scope(item.scope)
            yield item

    result = ledger.import_suppressions(good(), source=fmt)
    result.invalid = invalid
    return result, bad


# -- export -------------------------------------------------------------------

EXPORT_COLUMNS = ("address", "address_hash", "scope", "reason", "since")


def write_export(
    records: Iterable[SuppressionRecord], out: IO[str], fmt: ExportFormat = "csv"
) -> int:
    count = 0
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(EXPORT_COLUMNS)
        for r in records:
            writer.writerow("" if v is None else v for v in _export_fields(r).values())
            count += 1
    else:
        for r in records:
            out.write(json.dumps(_export_fields(r)) + "\n")
            count += 1
    return count


def _export_fields(r: SuppressionRecord) -> dict[str, str | None]:
    return {
        "address": r.address,
        "address_hash": r.address_hash.hex() if r.address_hash else None,
        "scope": r.scope,
        "reason": r.reason.value,
        "since": iso_or_none(r.since),
    }
