from __future__ import annotations

import re
from importlib import resources

import pytest
from babel.messages.pofile import read_po

from adieu.i18n import ADMIN, CLI, PAGES, available, catalog, extract, gettext, negotiate

LANGUAGES = ("en", "sv", "de", "fr", "es", "it", "nl", "pt", "pl", "ja")


def _template(domain: str) -> set[str]:
    with (resources.files("adieu") / "locale" / f"{domain}.pot").open("rb") as fh:
        return {m.id for m in read_po(fh) if isinstance(m.id, str) and m.id}


@pytest.mark.parametrize("domain", [PAGES, CLI, ADMIN])
def test_message_templates_are_current(domain: str) -> None:
    """`python -m adieu.i18n` regenerates them; translators work from them."""
    assert set(extract(domain)) == _template(domain)


def test_all_ten_languages_ship() -> None:
    assert set(LANGUAGES) <= set(available(PAGES))


@pytest.mark.parametrize("language", LANGUAGES[1:])
def test_every_catalog_translates_every_page_message(language: str) -> None:
    translated = catalog(language, PAGES)
    for message in _template(PAGES):
        assert translated.get(message), f"{language} lacks {message!r}"
        placeholders = set(re.findall(r"\{(\w+)\}", message))
        assert set(re.findall(r"\{(\w+)\}", translated[message])) == placeholders, message


def test_source_language_and_negotiation() -> None:
    assert gettext("You are unsubscribed.", "en") == "You are unsubscribed."
    assert gettext("You are unsubscribed.", "sv") == "Du är avregistrerad."
    assert gettext("You are unsubscribed.", "xx") == "You are unsubscribed."
    assert negotiate(None, "zz-ZZ", "pt-BR") == "pt"
    assert negotiate("de-AT") == "de"
    assert negotiate("not a tag!") == "en"
