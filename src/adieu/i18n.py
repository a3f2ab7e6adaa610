"""Translation catalogs (Babel ``.po`` files, read at start; no compile step).

Three domains: ``messages`` holds every word a recipient sees (pages, the
link in the mail) and is complete in every shipped language (a test checks
this); ``cli`` holds the operator's command-line output and ``admin`` the
dashboard and the API's messages (English for now). The source language is English: a message
without a translation shows its English text. Catalogs live in
``adieu/locale/<lang>/LC_MESSAGES/<domain>.po``; the templates
``adieu/locale/<domain>.pot`` are extracted from the code with
``python -m adieu.i18n`` (a test keeps them current).

A message that shows a number is marked with ``ngettext`` and has every
plural form of its language; each catalog declares its ``Plural-Forms``
(Polish has three, Japanese one) and that rule picks the form. A language
may ship per region (``pt_PT``, ``pt_BR``): negotiation prefers the exact
region, then CLDR's parent locale (``pt-AO`` reads ``pt_PT``), then the
language, then the language's most likely region (``pt`` reads ``pt_BR``).
"""

from __future__ import annotations

import gettext as _gettext
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from babel import Locale

SOURCE_LOCALE = "en"
PAGES = "messages"
CLI = "cli"
ADMIN = "admin"

_ROOT = Path(__file__).parent
_METHODS = {
    PAGES: [
        ("web/admin/**", "ignore"),
        ("web/errors.py", "ignore"),
        ("web/forms.py", "ignore"),
        ("web/**.py", "python"),
        ("mail/**.py", "python"),
        ("web/templates/**.html", "jinja2.ext:babel_extract"),
    ],
    CLI: [
        ("web/**", "ignore"),
        ("mail/**", "ignore"),
        ("esp/hooks/**", "ignore"),
        ("**.py", "python"),
    ],
    ADMIN: [
        ("web/admin/**.py", "python"),
        ("esp/hooks/**.py", "python"),
        ("web/errors.py", "python"),
        ("web/forms.py", "python"),
        ("web/admin/templates/**.html", "jinja2.ext:babel_extract"),
    ],
}


@cache
def available(domain: str = PAGES) -> tuple[str, ...]:
    """Locales with a catalog for ``domain``, plus the source language."""
    root = _ROOT / "locale"
    found = {SOURCE_LOCALE}
    if root.is_dir():
        for entry in root.iterdir():
            if (entry / "LC_MESSAGES" / f"{domain}.po").is_file():
                found.add(entry.name)
    return tuple(sorted(found))


@dataclass(frozen=True, slots=True)
class Loaded:
    """One catalog as the pages use it."""

    singular: dict[str, str] = field(default_factory=dict)
    #: singular msgid -> every plural form of the language, in order
    plural: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: the catalog's ``Plural-Forms`` rule: a count -> the index of its form
    form: Callable[[int], int] = field(default=lambda n: 0 if n == 1 else 1)
    num_plurals: int = 2


@cache
def load(locale: str, domain: str = PAGES) -> Loaded:
    """The translations of one locale (fuzzy and empty entries left out)."""
    if locale == SOURCE_LOCALE or locale not in available(domain):
        return Loaded()
    path = _ROOT / "locale" / locale / "LC_MESSAGES" / f"{domain}.po"
    with path.open("rb") as fh:
        from babel.messages.pofile import read_po

        parsed = read_po(fh, locale=locale)
    singular: dict[str, str] = {}
    plural: dict[str, tuple[str, ...]] = {}
    for m in parsed:
        if not m.id or m.fuzzy:
            continue
        if isinstance(m.id, str):
            if isinstance(m.string, str) and m.string:
                singular[m.id] = m.string
        elif isinstance(m.string, tuple | list):
            forms = tuple(str(f) for f in m.string)
            if len(forms) == parsed.num_plurals and all(forms):
                plural[str(m.id[0])] = forms
    return Loaded(singular, plural, _gettext.c2py(parsed.plural_expr), parsed.num_plurals)


def catalog(locale: str, domain: str = PAGES) -> dict[str, str]:
    """The singular translations of one locale."""
    return load(locale, domain).singular


def gettext(message: str, locale: str = SOURCE_LOCALE, domain: str = PAGES) -> str:
    return load(locale, domain).singular.get(message, message)


def ngettext(
    singular: str, plural: str, n: int, locale: str = SOURCE_LOCALE, domain: str = PAGES
) -> str:
    """The form of a message that fits the count ``n`` in ``locale``."""
    loaded = load(locale, domain)
    forms = loaded.plural.get(singular)
    if forms:
        index = loaded.form(n)
        if 0 <= index < len(forms):
            return forms[index]
    return singular if n == 1 else plural


def tag(locale: str) -> str:
    """The BCP 47 tag of a catalog's locale (``pt_BR`` -> ``pt-BR``), for ``lang``."""
    return locale.replace("_", "-")


def _(message: str) -> str:
    """Mark and translate a message of the command line (``cli`` domain)."""
    return gettext(message, SOURCE_LOCALE, CLI)


def admin_text(message: str) -> str:
    """Mark and translate a message of the operator's side (``admin`` domain:
    the dashboard and the API's error messages)."""
    return gettext(message, SOURCE_LOCALE, ADMIN)


def negotiate(*candidates: str | None, default: str = SOURCE_LOCALE) -> str:
    """The first candidate (a tag such as ``sv`` or ``pt-BR``) with a catalog."""
    return _negotiate(candidates[:20], default)


@lru_cache(maxsize=4096)
def _negotiate(candidates: tuple[str | None, ...], default: str) -> str:
    have = available()
    parsed = [_parse(candidate) for candidate in candidates]
    for position, wanted in enumerate(parsed):
        found = _resolve(wanted, have)
        if found is None or wanted is None:
            continue
        if wanted.territory is None:
            # A bare language ("pt" in a link) takes its region from a later
            # candidate of the same language ("pt-PT" from the browser).
            for later in parsed[position + 1 :]:
                if later is not None and later.language == wanted.language and later.territory:
                    regional = f"{later.language}_{later.territory}"
                    if regional in have:
                        return regional
        return found
    return _resolve(_parse(default), have) or SOURCE_LOCALE


def serves(candidate: str) -> str | None:
    """The catalog that would serve a language tag (``pt`` -> ``pt_BR``), or
    None when no shipped language does (for checking a tag an operator gives)."""
    return _resolve(_parse(candidate), available())


def _parse(candidate: str | None) -> Locale | None:
    from babel import Locale, UnknownLocaleError

    if not candidate or len(candidate) > 35:
        return None
    try:
        return Locale.parse(candidate.replace("-", "_"))
    except (ValueError, TypeError, UnknownLocaleError):
        return None


def _resolve(parsed: Locale | None, have: tuple[str, ...]) -> str | None:
    """The catalog that serves one language tag best, if any does."""
    from babel.core import get_global

    if parsed is None:
        return None
    language = parsed.language
    names = [str(parsed)]
    if parsed.territory:
        names.append(f"{language}_{parsed.territory}")
        parent = get_global("parent_exceptions").get(f"{language}_{parsed.territory}")
        if parent:
            names.append(str(parent))
    names.append(language)
    likely = str(get_global("likely_subtags").get(language, ""))
    if likely.count("_") == 2:
        names.append(f"{language}_{likely.rsplit('_', 1)[1]}")
    for name in names:
        if name in have:
            return name
    regional = sorted(name for name in have if name.split("_")[0] == language)
    return regional[0] if regional else None


def extract(domain: str = PAGES) -> list[str | tuple[str, str]]:
    """Every message id of ``domain`` in the code and templates, in order of
    use (a plural message as its singular and plural)."""
    from babel.messages.extract import extract_from_dir

    seen: dict[str | tuple[str, str], None] = {}
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2)}
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(_ROOT), _METHODS[domain], keywords=keywords
    ):
        if isinstance(message, str):
            seen.setdefault(message, None)
        elif isinstance(message, tuple) and len(message) == 2:
            seen.setdefault((str(message[0]), str(message[1])), None)
    return list(seen)


def write_template(domain: str) -> int:
    """Write ``<domain>.pot``; returns the number of messages."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import write_po

    template = Catalog(project="Adieu", charset="utf-8")
    messages = extract(domain)
    for message in messages:
        template.add(message)
    target = _ROOT / "locale" / f"{domain}.pot"
    target.parent.mkdir(exist_ok=True)
    with target.open("wb") as fh:
        write_po(fh, template, omit_header=True, sort_output=True, width=100)
    return len(messages)


if __name__ == "__main__":
    import sys

    for name in (PAGES, CLI, ADMIN):
        sys.stdout.write(f"{name}: {write_template(name)} messages\n")
