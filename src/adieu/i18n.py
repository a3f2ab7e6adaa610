"""Translation catalogs (Babel ``.po`` files, read at start; no compile step).

The source language is English: a message without a translation shows its
English text. Catalogs live in ``adieu/locale/<lang>/LC_MESSAGES/messages.po``;
``adieu/locale/messages.pot`` is extracted from the code (a test keeps it current).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from babel import Locale, UnknownLocaleError
from babel.messages.pofile import read_po

SOURCE_LOCALE = "en"


@cache
def available() -> tuple[str, ...]:
    """Locales with a catalog, plus the source language."""
    root = resources.files("adieu") / "locale"
    found = {SOURCE_LOCALE}
    if root.is_dir():
        for entry in root.iterdir():
            if (entry / "LC_MESSAGES" / "messages.po").is_file():
                found.add(entry.name)
    return tuple(sorted(found))


@cache
def _catalog(locale: str) -> dict[str, str]:
    if locale == SOURCE_LOCALE:
        return {}
    path = resources.files("adieu") / "locale" / locale / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as fh:
        catalog = read_po(fh, locale=locale)
    return {
        str(m.id): str(m.string)
        for m in catalog
        if m.id and isinstance(m.id, str) and m.string and not m.fuzzy
    }


def gettext(message: str, locale: str = SOURCE_LOCALE) -> str:
    if locale not in available():
        return message
    return _catalog(locale).get(message, message)


def _(message: str) -> str:
    """Mark and translate a message in the source language (CLI output)."""
    return gettext(message, SOURCE_LOCALE)


def negotiate(*candidates: str | None, default: str = SOURCE_LOCALE) -> str:
    """The first candidate (a tag such as ``sv`` or ``pt-BR``) with a catalog."""
    have = available()
    for tag in candidates:
        if not tag:
            continue
        try:
            parsed = Locale.parse(tag.replace("-", "_"))
        except (ValueError, UnknownLocaleError):
            continue
        for name in (str(parsed), parsed.language):
            if name in have:
                return name
    return default if default in have else SOURCE_LOCALE


def extract() -> list[str]:
    """Every message id in the code and templates, in order of first use."""
    from pathlib import Path

    from babel.messages.extract import extract_from_dir

    root = Path(__file__).parent
    method_map = [("**.py", "python"), ("web/templates/**.html", "jinja2.ext:babel_extract")]
    seen: dict[str, None] = {}
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(root), method_map, keywords={"_": None, "gettext": None}
    ):
        if isinstance(message, str):
            seen.setdefault(message, None)
    return list(seen)


def write_template(path: str) -> int:
    """Write ``messages.pot`` (``python -m adieu.i18n``); returns the count."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import write_po

    catalog = Catalog(project="Adieu", charset="utf-8")
    messages = extract()
    for message in messages:
        catalog.add(message)
    with open(path, "wb") as fh:
        write_po(fh, catalog, omit_header=False, sort_output=True, width=100)
    return len(messages)


if __name__ == "__main__":
    import sys
    from pathlib import Path

    target = Path(__file__).parent / "locale" / "messages.pot"
    target.parent.mkdir(exist_ok=True)
    count = write_template(str(target))
    sys.stdout.write(f"{count} messages written to {target}\n")
