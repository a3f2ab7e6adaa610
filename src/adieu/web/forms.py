"""Forms posted to Adieu's own pages (the recipient's and the dashboard): one
reader and one cross-site check for both.

A form is read only as ``application/x-www-form-urlencoded`` (what our pages
send), up to a size and a number of fields no page of ours comes near; more
is refused (413, 400) rather than cut. A state-changing form must come from
our own page: the browser's ``Sec-Fetch-Site`` and ``Origin`` say where it was
posted from, and a CSRF value bound to the link or the session says it was
our page that made it.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from urllib.parse import parse_qs, urlsplit

from fastapi import Request

from adieu.i18n import admin_text as _
from adieu.web.errors import ApiError

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FORM = 64 * 1024
MAX_FIELDS = 200


async def read_body(request: Request, limit: int = MAX_FORM) -> bytes:
    """The body, or a 413 as soon as it passes ``limit`` (nothing more is read)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, "too_large", _("That form is too large."))
    return body


def parse_form(request: Request, body: bytes, max_fields: int = MAX_FIELDS) -> dict[str, str]:
    """A form's fields (the last value of each); other content types read as empty."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != FORM_TYPE:
        return {}
    try:
        fields = parse_qs(
            body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=max_fields
        )
    except ValueError:  # more fields than any of our forms has
        raise ApiError(400, "bad_form", _("That form could not be read.")) from None
    return {key: values[-1] for key, values in fields.items()}


async def read_form(
    request: Request, limit: int = MAX_FORM, max_fields: int = MAX_FIELDS
) -> dict[str, str]:
    return parse_form(request, await read_body(request, limit), max_fields)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def from_own_site(request: Request, origins: Iterable[str]) -> bool:
    """False when the browser says the form was posted from another site."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin and origin != "null":
        own = {_origin(str(request.base_url)), *(_origin(o) for o in origins)}
        return _origin(origin) in own
    return True


def csrf_ok(request: Request, form: dict[str, str], expected: str, origins: Iterable[str]) -> bool:
    """The form came from our own page: the right site and the right CSRF value."""
    given = form.get("csrf", "")
    return (
        bool(expected)
        and from_own_site(request, origins)
        and hmac.compare_digest(given.encode(), expected.encode())
    )
