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
import json.scanner
import os
import pickle
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Literal, cast

from adieu.addresses import canonical_or_none
from adieu.errors import AdieuError, InvalidInput
from adieu.ledger import ImportResult, Ledger, Reason, SuppressionRecord
from adieu.policy import Category, FilterReport, Policy
from adieu.policy.screen import Screen
from adieu.scopes import TOPIC_KEY
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
#
# A suppression file is read row by row, and whatever is wrong with a row (an
# address that does not parse, a reason or topic that does not exist, a date
# that is not one or is out of range, a JSON value of the wrong type, a line
# nested too deeply or too long) refuses that row alone, with its line number
# and what is wrong: the other rows are imported. Only a file that cannot be
# read at all (a CSV without an e-mail column, an SES document that is not
# JSON) gives nothing but one refusal, at the line where it went wrong.

_MAILCHIMP_REASON = {"clean_time": Reason.HARD_BOUNCE, "unsub_time": Reason.UNSUBSCRIBE}
_SES_REASON = {"BOUNCE": Reason.HARD_BOUNCE, "COMPLAINT": Reason.COMPLAINT}
_REASON_ALIASES = {
    "unsubscribed": Reason.UNSUBSCRIBE,
    "bounce": Reason.HARD_BOUNCE,
    "bounced": Reason.HARD_BOUNCE,
    "spam": Reason.COMPLAINT,
    "spamreport": Reason.COMPLAINT,
    "spam_report": Reason.COMPLAINT,
    "abuse": Reason.COMPLAINT,
}
#: Bounds on a JSON line (an exported row is a flat object of about 200 bytes).
MAX_JSON_LINE = 64 * 1024
MAX_JSON_DEPTH = 16
#: The earliest date a suppression may carry; the latest is a day from now.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


class _Refused(Exception):
    """What is wrong with one row (the message is shown with its line number)."""


def _shown(value: object, limit: int = 80) -> str:
    """A value from the file, safe to print: no control characters or
    undecodable bytes, at most ``limit`` characters."""
    text = value if isinstance(value, str) else json.dumps(value)[:limit]
    clean = "".join(c if c.isprintable() else "?" for c in text[:limit])
    return clean + ("…" if len(text) > limit else "")


def _parse_time(value: object, name: str = "since", *, numbers: bool = False) -> datetime | None:
    """A row's date: ISO 8601 text (no offset: UTC) or Unix seconds in digits
    (or, with ``numbers``, a JSON number); None when empty. ``_Refused`` when
    it is not a date, cannot be put in UTC, or lies before 1970 or more than a
    day ahead."""
    if value is None:
        return None
    allowed = str | int | float if numbers else str
    if isinstance(value, bool) or not isinstance(value, allowed):
        raise _Refused(f"{name} must be a date (ISO 8601 text), not {type(value).__name__}")
    try:
        if isinstance(value, int | float):
            moment = datetime.fromtimestamp(value, UTC)
        else:
            text = value.strip()
            if not text:
                return None
            if text.isascii() and text.isdigit():
                moment = datetime.fromtimestamp(int(text), UTC)
            else:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
                moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        raise _Refused(f"{name} is not a date in range: {_shown(value)}") from None
    if not EARLIEST <= moment <= datetime.now(UTC) + timedelta(days=1):
        raise _Refused(f"{name} is before 1970 or in the future: {_shown(value)}")
    return moment


def _generic_reason(value: object) -> Reason:
    if value is None or value == "":
        return Reason.IMPORT
    if not isinstance(value, str):
        raise _Refused(f"reason must be text, not {type(value).__name__}")
    key = value.strip().lower().replace("-", "_").replace(" ", "_")
    if not key:
        return Reason.IMPORT
    if key in _REASON_ALIASES:
        return _REASON_ALIASES[key]
    try:
        return Reason(key)
    except ValueError:
        raise _Refused(
            f"unknown reason {_shown(value)!r} (use {', '.join(r.value for r in Reason)},"
            " or give the reason for every row)"
        ) from None


def _text(item: Mapping[str, Any], *names: str) -> str | None:
    """The first of ``names`` that is set in a JSON object, as text."""
    for name in names:
        value = item.get(name)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise _Refused(f"{name} must be text, not {type(value).__name__}")
        return value
    return None


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

    Yields (line number, record) or (line number, what is wrong); never
    raises for what the file holds.
    """
    head = fh.read(1)
    if head in ("{", "[") and fmt in ("generic", "ses"):
        rest = cast(IO[str], _Prefixed(head, fh))
        if fmt == "ses":
            text = head + fh.read()
            if progress is not None:
                progress(len(text.encode("utf-8", "surrogateescape")))
            yield from _read_ses_json(text, scope, reason)
        else:
            yield from _read_json_lines(rest, scope, reason, progress)
        return
    rest = cast(IO[str], _Prefixed(head, fh))
    try:
        source = read_source(rest, None, progress)
    except (InvalidInput, csv.Error) as exc:
        yield 1, _shown(str(exc), 300)
        return
    for number, raw, rec in source.rows:
        try:
            item = _csv_row(source, raw, rec, fmt, scope, reason)
        except _Refused as exc:
            yield number, str(exc)
            continue
        except Exception as exc:  # whatever else: this row only
            yield number, f"cannot be read ({type(exc).__name__})"
            continue
        if item is not None:
            yield number, item


def _csv_row(
    source: Source,
    raw: str,
    rec: dict[str, str] | None,
    fmt: ImportFormat,
    scope: str,
    reason: Reason | None,
) -> SuppressionRecord | None:
    record = rec or {}
    address = source.address_of(rec, raw).strip()
    if not address and not record.get("address_hash"):
        if raw.strip():
            raise _Refused("no address on this line")
        return None
    row_reason = reason
    since: datetime | None = None
    row_scope = (record.get("scope") or record.get("topic") or scope).strip() or scope
    if fmt == "mailchimp":
        for col, why in _MAILCHIMP_REASON.items():
            if record.get(col):
                row_reason = row_reason or why
                since = _parse_time(record[col], col.upper())
        row_reason = row_reason or Reason.UNSUBSCRIBE
    elif fmt == "sendgrid":
        if "status" in record:
            row_reason = row_reason or Reason.HARD_BOUNCE
        elif "ip" in record:
            row_reason = row_reason or Reason.COMPLAINT
        row_reason = row_reason or Reason.UNSUBSCRIBE
        since = _parse_time(record.get("created") or record.get("created_at"), "created")
    elif fmt == "ses":
        row_reason = row_reason or _SES_REASON.get((record.get("reason") or "").strip().upper())
        if row_reason is None:
            raise _Refused("the Reason column must be BOUNCE or COMPLAINT")
        since = _parse_time(record.get("lastupdatetime"), "LastUpdateTime")
    else:
        row_reason = row_reason or _generic_reason(record.get("reason"))
        since = _parse_time(
            record.get("since") or record.get("created") or record.get("created_at")
        )
    return _record(address, record.get("address_hash"), row_scope, row_reason, since)


def _record(
    address: str, address_hash: str | None, scope: str, reason: Reason, since: datetime | None
) -> SuppressionRecord:
    scope = scope.strip() or ALL
    if scope != ALL and not TOPIC_KEY.fullmatch(scope):
        raise _Refused(f"not a topic: {_shown(scope)}")
    if address:
        canon = canonical_or_none(address)
        if canon is None or not _encodable(canon):
            raise _Refused(f"not a valid address: {_shown(address)}")
        return SuppressionRecord(address=canon, scope=scope, reason=reason, since=since)
    text = (address_hash or "").strip()
    try:
        digest = bytes.fromhex(text) if text.isascii() else b""
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise _Refused("address_hash must be 64 hexadecimal characters")
    return SuppressionRecord(
        address=None, address_hash=digest, scope=scope, reason=reason, since=since
    )


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: bytes that were not UTF-8
        return False
    return True


def _read_json_lines(
    fh: IO[str], scope: str, reason: Reason | None, progress: Progress | None
) -> Iterator[tuple[int, SuppressionRecord | str]]:
    """Adieu's own JSON-lines export (or anything shaped like it), one line
    at a time, each bounded in length and in nesting."""
    number = 0
    while True:
        line = fh.readline(MAX_JSON_LINE + 1)
        if not line:
            return
        number += 1
        size = len(line)
        too_long = len(line) > MAX_JSON_LINE and not line.endswith("\n")
        while len(line) > MAX_JSON_LINE and not line.endswith("\n"):  # skip the rest of it
            line = fh.readline(MAX_JSON_LINE + 1)
            size += len(line)
            if not line:
                break
        if progress is not None:
            progress(size)
        if too_long:
            yield number, f"longer than {MAX_JSON_LINE // 1024} KiB"
            continue
        if not line.strip():
            continue
        try:
            item = _json_value(line)
            if not isinstance(item, dict):
                raise _Refused("not a JSON object")
            record = _record(
                _text(item, "address", "email") or "",
                _text(item, "address_hash"),
                _text(item, "scope") or scope,
                reason or _generic_reason(item.get("reason")),
                _parse_time(item.get("since")),
            )
        except _Refused as exc:
            yield number, str(exc)
            continue
        except Exception as exc:  # whatever else: this line only
            yield number, f"cannot be read ({type(exc).__name__})"
            continue
        yield number, record


def _json_value(text: str) -> Any:
    """One JSON value, nested at most MAX_JSON_DEPTH deep. Few lines hold many
    brackets, and those few are read by the bounded decoder."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        try:
            return json.loads(text)
        except ValueError as exc:
            raise _Refused(f"not valid JSON: {_json_error(exc)}") from None
    return _BoundedDecoder(text).value()


def _json_error(exc: ValueError) -> str:
    return exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)


class _Located(dict[str, Any]):
    """A JSON object that remembers the line it starts on."""

    line = 0


class _BoundedDecoder(json.JSONDecoder):
    """Python's own JSON parser with two additions: nesting deeper than
    MAX_JSON_DEPTH is refused (no RecursionError, however deep the input),
    and each object records the line it starts on."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.depth = 0
        self._counted, self._line = 0, 1
        plain_object: Any = getattr(self, "parse_object")  # noqa: B009 (untyped in typeshed)
        plain_array: Any = getattr(self, "parse_array")  # noqa: B009

        def parse_object(state: tuple[str, int], *args: Any) -> tuple[Any, int]:
            start = self._line_at(state[1])
            value, end = self._nested(plain_object, state, *args)
            if not isinstance(value, dict):
                return value, end
            located = _Located(value)
            located.line = start
            return located, end

        def parse_array(state: tuple[str, int], *args: Any) -> tuple[Any, int]:
            return self._nested(plain_array, state, *args)

        # The pure-Python scanner calls these two back (the C one does not).
        self.parse_object = parse_object
        self.parse_array = parse_array
        self.scan_once = getattr(json.scanner, "py_make_scanner")(self)  # noqa: B009

    def _nested(self, parse: Any, state: tuple[str, int], *args: Any) -> tuple[Any, int]:
        self.depth += 1
        try:
            if self.depth > MAX_JSON_DEPTH:
                raise _Refused(f"nested more than {MAX_JSON_DEPTH} deep")
            result: tuple[Any, int] = parse(state, *args)
            return result
        finally:
            self.depth -= 1

    def _line_at(self, position: int) -> int:
        if position > self._counted:
            self._line += self.text.count("\n", self._counted, position)
            self._counted = position
        return self._line

    def value(self) -> Any:
        try:
            return self.decode(self.text)
        except json.JSONDecodeError as exc:
            raise _Refused(f"not valid JSON: {exc.msg} (line {exc.lineno})") from None
        except (ValueError, RecursionError) as exc:
            raise _Refused(f"not valid JSON: {exc}") from None


def _read_ses_json(
    text: str, scope: str, reason: Reason | None
) -> Iterator[tuple[int, SuppressionRecord | str]]:
    """``aws sesv2 list-suppressed-destinations`` output (or a bare list of
    its items); each item's line is the line its object starts on."""
    try:
        data = _BoundedDecoder(text).value()
    except _Refused as exc:
        match = re.search(r"\(line (\d+)\)", str(exc))
        yield (int(match.group(1)) if match else 1), str(exc)
        return
    items = data.get("SuppressedDestinationSummaries") if isinstance(data, dict) else data
    if not isinstance(items, list):
        yield 1, "not a list of suppressed destinations (SuppressedDestinationSummaries)"
        return
    number = 1
    for index, item in enumerate(items, start=1):
        if isinstance(item, _Located):
            number = item.line
        try:
            if not isinstance(item, dict):
                raise _Refused(f"item {index} of the list is not an object")
            why = reason or _SES_REASON.get((_text(item, "Reason") or "").strip().upper())
            if why is None:
                raise _Refused("Reason must be BOUNCE or COMPLAINT")
            record = _record(
                _text(item, "EmailAddress") or "",
                None,
                scope,
                why,
                _parse_time(item.get("LastUpdateTime"), "LastUpdateTime", numbers=True),
            )
        except _Refused as exc:
            yield number, str(exc)
            continue
        except Exception as exc:  # whatever else: this item only
            yield number, f"cannot be read ({type(exc).__name__})"
            continue
        yield number, record


class _Prefixed(io.TextIOBase):
    """A text stream with one already-read character put back in front."""

    def __init__(self, head: str, rest: IO[str]) -> None:
        self._head = head
        self._rest = rest

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        limit = -1 if size is None or size < 0 else size
        if not self._head:
            return self._rest.readline(limit)
        head, self._head = self._head, ""
        if head == "\n" or limit == 1:
            return head
        return head + self._rest.readline(limit - 1 if limit > 0 else -1)


def import_file(
    ledger: Ledger,
    fh: IO[str],
    fmt: ImportFormat = "generic",
    *,
    scope: str = ALL,
    reason: Reason | None = None,
    progress: Progress | None = None,
    max_invalid_listed: int = 100,
    details: Mapping[str, Any] | None = None,
) -> tuple[ImportResult, int]:
    """Import a suppression file; returns the result and the count of refused
    rows (the first ``max_invalid_listed`` of them, with their line numbers,
    in ``result.invalid``). ``details`` (who imported it) go into every event
    the import records. A row that names a topic the ledger does not know is
    refused like any other bad row."""
    scope = ledger.check_scope(scope)
    bad = 0
    invalid: list[tuple[int, str]] = []
    scopes: dict[str, str | None] = {}  # a row's scope → what is wrong with it

    def refuse(number: int, why: str) -> None:
        nonlocal bad
        bad += 1
        if len(invalid) < max_invalid_listed:
            invalid.append((number, why))

    def good() -> Iterator[SuppressionRecord]:
        for number, item in read_suppressions(
            fh, fmt, scope=scope, reason=reason, progress=progress
        ):
            if isinstance(item, str):
                refuse(number, item)
                continue
            if item.scope not in scopes:
                try:
                    ledger.check_scope(item.scope)
                    scopes[item.scope] = None
                except AdieuError as exc:
                    scopes[item.scope] = str(exc)
            problem = scopes[item.scope]
            if problem is not None:
                refuse(number, problem)
                continue
            yield item

    result = ledger.import_suppressions(good(), source=fmt, details=details)
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
