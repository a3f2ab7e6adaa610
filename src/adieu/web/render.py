"""The public pages' one renderer: templates, language, dates, brand, and the
CSRF value bound to each link."""

from __future__ import annotations

import base64
import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import escape

from adieu.i18n import gettext, negotiate, ngettext, tag
from adieu.secret import KeyedHash
from adieu.service import Adieu
from adieu.times import local_day, local_moment
from adieu.tokens import TokenPayload
from adieu.web import forms

_TOKEN_MARK = "adieu-token-7f3c2a"
_ADDRESS_MARK = "adieu-address-7f3c2a"
_CSRF_MARK = "adieu-csrf-7f3c2a"
_TOKEN_BYTES, _ADDRESS_BYTES, _CSRF_BYTES = (
    m.encode() for m in (_TOKEN_MARK, _ADDRESS_MARK, _CSRF_MARK)
)
#: Splits a page rendered with the markers into text and markers (odd pieces).
_MARKS = re.compile(b"(" + b"|".join((_TOKEN_BYTES, _ADDRESS_BYTES, _CSRF_BYTES)) + b")")


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    """WCAG 2.1 contrast ratio of two #rrggbb colours."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


@dataclass(frozen=True, slots=True)
class Palette:
    """Brand colours adjusted to meet WCAG 2.1 AA (4.5:1 for text)."""

    accent: str
    on_accent: str
    link: str

    @classmethod
    def from_brand(cls, brand: str, ink: str = "#1f2328", paper: str = "#ffffff") -> Palette:
        brand = brand.lower()
        on_accent = paper if contrast(brand, paper) >= contrast(brand, ink) else ink
        if contrast(brand, on_accent) < 4.5:  # neither reads well on it: fall back
            brand, on_accent = "#0b5cad", paper
        link = brand if contrast(brand, paper) >= 4.5 else ink
        return cls(accent=brand, on_accent=on_accent, link=link)

    def css(self) -> str:
        return (
            f":root {{ --accent: {self.accent}; --on-accent: {self.on_accent}; "
            f"--link: {self.link}; }}\n"
        )


class Pages:
    """Renders the public pages in the reader's language."""

    def __init__(self, adieu: Adieu) -> None:
        self.adieu = adieu
        self.settings = adieu.settings
        self.zone = ZoneInfo(self.settings.display_timezone)
        self.env = Environment(
            loader=FileSystemLoader(str(resources.files("adieu") / "web" / "templates")),
            autoescape=select_autoescape(["html"]),
            auto_reload=False,  # templates ship with the package; no stat per page
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._csrf = KeyedHash(hmac.digest(adieu.keyring.hash_key, b"adieu csrf v1", "sha256"))
        self._per_token: dict[tuple[Any, ...], tuple[bytes, ...]] = {}

    def locale(self, request: Request, payload: TokenPayload | None = None) -> str:
        """The link's language, then the browser's, then the configured default."""
        return self.locale_from(request.headers.get("accept-language", ""), payload)

    def locale_from(self, accept: str, payload: TokenPayload | None = None) -> str:
        return _negotiated(
            payload.locale if payload else None, accept[:500], self.settings.default_locale
        )

    def when(self, moment: datetime | None, locale: str) -> str:
        """A date and time in the reader's language, in the display time zone
        (hours and minutes, and the zone's name in that language)."""
        if moment is None:
            return ""
        return local_moment(moment, locale, self.zone)

    def day(self, moment: datetime | None, locale: str) -> str:
        """A date in the reader's language, in the display time zone."""
        if moment is None:
            return ""
        return local_day(moment, locale, self.zone)

    def render(self, name: str, locale: str, status: int = 200, **context: Any) -> HTMLResponse:
        def translate(message: str, **values: Any) -> str:
            text = gettext(message, locale)
            return text.format(**values) if values else text

        def translate_plural(singular: str, plural: str, n: int, **values: Any) -> str:
            return ngettext(singular, plural, n, locale).format(**values)

        html = self.env.get_template(name).render(
            _=translate,
            ngettext=translate_plural,
            lang=tag(locale),
            sender=self.settings.sender_name,
            has_logo=self.settings.logo_file is not None,
            privacy_url=self.settings.privacy_url,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def fill_per_token(
        self, name: str, locale: str, token: str, address: str, **context: Any
    ) -> bytes:
        """The HTML of a page whose only per-link parts are the token, the
        address and the CSRF value bound to the token.

        The page is rendered once per language and context, with markers where
        the token and address go; each request then only fills them in (the
        landing page is the one every link scanner fetches). The token is
        URL-safe base64 and the address is escaped, as the template would.
        """
        try:
            key: tuple[Any, ...] = (name, locale, *context.items())
            parts = self._per_token.get(key)
        except TypeError:  # a value that cannot be a key: by its text
            key = (name, locale, *((k, repr(v)) for k, v in context.items()))
            parts = self._per_token.get(key)
        if parts is None:
            rendered = self.render(
                name, locale, token=_TOKEN_MARK, address=_ADDRESS_MARK, csrf=_CSRF_MARK, **context
            )
            parts = tuple(_MARKS.split(bytes(rendered.body)))
            if len(self._per_token) > 512:
                self._per_token.clear()
            self._per_token[key] = parts
        # The page's pieces, each marker (every odd piece) filled in.
        values = {
            _TOKEN_BYTES: token.encode("ascii"),
            _ADDRESS_BYTES: str(escape(address)).encode(),
        }
        if len(parts) > 1 and _CSRF_BYTES in parts:
            values[_CSRF_BYTES] = self.csrf_for(token).encode("ascii")
        return b"".join(values[piece] if i % 2 else piece for i, piece in enumerate(parts))

    # -- forms and cross-site protection -------------------------------------

    def csrf_for(self, token: str) -> str:
        digest = self._csrf.digest(token.encode("ascii", "replace"))
        return base64.urlsafe_b64encode(digest[:18]).decode("ascii")

    def csrf_ok(self, request: Request, token: str, form: dict[str, str]) -> bool:
        return forms.csrf_ok(request, form, self.csrf_for(token), [self.settings.base_url])


@lru_cache(maxsize=2048)
def _negotiated(linked: str | None, accept: str, default: str) -> str:
    """The language for a link's own and a browser's (a few combinations
    make up nearly every request)."""
    return negotiate(linked, *_accepted(accept), default=default)


@lru_cache(maxsize=2048)
def _accepted(header: str) -> tuple[str, ...]:
    """Language tags of an Accept-Language header, most wanted first."""
    weighted = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0:
            weighted.append((-quality, position, tag.strip()))
    return tuple(tag for _, _, tag in sorted(weighted))
