"""``/api/v1``: Suppression lists: import (streamed, spooled to disk) and export (streamed)."""

# No ``from __future__ import annotations`` here: FastAPI reads these
# signatures at run time, and they name objects local to ``routes``.

import io
import tempfile
from collections.abc import Iterator
from itertools import islice
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from adieu import lists
from adieu.i18n import admin_text as _
from adieu.ledger.apikeys import ApiKey
from adieu.service import Adieu
from adieu.tokens import ALL
from adieu.web.admin import schemas as s
from adieu.web.admin.api.common import (
    MAX_IMPORT_BYTES,
    Access,
    by,
)
from adieu.web.errors import ApiError


def routes(api: APIRouter, adieu: Adieu, access: Access) -> None:
    # Whole lists of addresses, in and out: admin only.
    admin = access.admin
    ledger = adieu.ledger
    caller = Annotated[ApiKey, Depends(access.caller)]

    @api.post(
        "/suppressions/import",
        dependencies=admin,
        tags=["suppressions"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "text/csv": {"schema": {"type": "string"}},
                    "application/x-ndjson": {"schema": {"type": "string"}},
                },
            }
        },
    )
    async def import_suppressions(
        request: Request,
        key: caller,
        format: Literal["generic", "mailchimp", "sendgrid", "ses"] = "generic",
        topic: Annotated[str | None, Query(max_length=64)] = None,
    ) -> s.ImportOut:
        """A suppression list streamed in as CSV or JSON lines (the formats of
        `adieu import`). Each new suppression is an event of channel "import".
        A row that cannot be imported is refused on its own (counted in
        `invalid`; the first 100 in `invalid_lines`, by line number, with why)
        and the others are imported: the answer is 200 whatever the rows hold."""
        spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
        try:
            size = 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_IMPORT_BYTES:
                    raise ApiError(413, "too_large", _("Send at most 512 MiB per import."))
                spool.write(chunk)
            spool.seek(0)
            text = io.TextIOWrapper(spool, encoding="utf-8-sig", errors="replace", newline="")

            def run() -> tuple[Any, int]:
                return lists.import_file(ledger, text, format, scope=topic or ALL, details=by(key))

            result, bad = await run_in_threadpool(run)
        finally:
            spool.close()
        return s.ImportOut(
            added=result.added,
            already=result.already,
            invalid=bad,
            invalid_lines=[s.ItemError(index=n, message=m) for n, m in result.invalid],
        )

    @api.get(
        "/suppressions/export",
        dependencies=admin,
        tags=["suppressions"],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {}}}},
    )
    async def export_suppressions(
        format: Literal["csv", "jsonl"] = "csv",
    ) -> StreamingResponse:
        """Every suppression (erased ones by keyed hash), streamed."""

        def lines() -> Iterator[str]:
            buffer = io.StringIO()
            records = iter(ledger.export_suppressions())
            first = True
            while True:
                chunk = list(islice(records, 1000))
                if not chunk and not first:
                    return
                lists.write_export(chunk, buffer, format)
                text = buffer.getvalue()
                if format == "csv" and not first:
                    text = text.split("\n", 1)[1]  # the header once, at the top
                first = False
                buffer.seek(0)
                buffer.truncate()
                yield text

        media = "text/csv" if format == "csv" else "application/x-ndjson"
        return StreamingResponse(iterate_in_threadpool(lines()), media_type=media)
