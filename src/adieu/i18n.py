"""Translation catalogs (Babel ``.po`` files, read at start; no compile step).

Three domains: ``messages`` holds every word a recipient sees (pages, the
link in the mail) and is complete in every shipped language (a test checks
this); ``cli`` holds the operator's command-line output and ``admin`` the
dashboard and the API's messages (English for now). The source language is English: a message
without a translation shows its English text. Catalogs live in
``adieu/locale/<lang>/LC_MESSAGES/<domain>.po``; the templates
``adieu/locale/<domain>.pot`` are extracted from the code with
``python -m adieu.i18n`` (a test keeps them current).
"""

from __future__ import annotations

from functools import cache, lru_cache
from pathlib import Path

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
    CLI: [("web/**", "ignore"), ("mail/**", "ignore"), ("**.py", "python")],
    ADMIN: [
        ("web/admin/**.py", "python"),
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


@cache
def catalog(locale: str, domain: str = PAGES) -> dict[str, str]:
    """The translations of one locale (fuzzy and empty entries left out)."""
    if locale == SOURCE_LOCALE or locale not in available(domain):
        return {}
    path = _ROOT / "locale" / locale / "LC_MESSAGES" / f"{domain}.po"
    with path.open("rb") as fh:
        from babel.messages.pofile import read_po

        parsed = read_po(fh, locale=locale)
    return {
        str(m.id): str(m.string)
        for m in parsed
        if m.id and isinstance(m.id, str) and m.string and not m.fuzzy
    }


def gettext(message: str, locale: str = SOURCE_LOCALE, domain: str = PAGES) -> str:
    return catalog(locale, domain).get(message, message)


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
    from babel import Locale, UnknownLocaleError

    have = available()
    for tag in candidates:
        if not tag or len(tag) > 35:
            continue
        try:
            parsed = Locale.parse(tag.replace("-", "_"))
        except (ValueError, TypeError, UnknownLocaleError):
            continue
        for name in (str(parsed), parsed.language):
            if name in have:
                return name
    return default if default in have else SOURCE_LOCALE


def extract(domain: str = PAGES) -> list[str]:
    """Every message id of ``domain`` in the code and templates, in order of use."""
    from babel.messages.extract import extract_from_dir

    seen: dict[str, None] = {}
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(_ROOT), _METHODS[domain], keywords={"_": None, "gettext": None}
    ):
        if isinstance(message, str):
            seen.setdefault(message, None)
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
