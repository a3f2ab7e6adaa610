from __future__ import annotations

import re
from importlib import resources

import pytest
from babel.messages.pofile import read_po
from hypothesis import given
from hypothesis import strategies as st

from adieu.i18n import ADMIN, CLI, PAGES, available, extract, gettext, load, negotiate, serves

LANGUAGES = ("en", "sv", "de", "fr", "es", "it", "nl", "pt_PT", "pt_BR", "pl", "ja")


def _template(domain: str) -> set[str | tuple[str, str]]:
    with (resources.files("adieu") / "locale" / f"{domain}.pot").open("rb") as fh:
        return {
            m.id if isinstance(m.id, str) else (str(m.id[0]), str(m.id[1]))
            for m in read_po(fh)
            if m.id
        }


@pytest.mark.parametrize("domain", [PAGES, CLI, ADMIN])
def test_message_templates_are_current(domain: str) -> None:
    """`python -m adieu.i18n` regenerates them; translators work from them."""
    assert set(extract(domain)) == _template(domain)


def test_all_eleven_languages_ship() -> None:
    assert set(LANGUAGES) <= set(available(PAGES))


@pytest.mark.parametrize("language", LANGUAGES[1:])
def test_every_catalog_translates_every_page_message(language: str) -> None:
    loaded = load(language, PAGES)
    for message in _template(PAGES):
        if isinstance(message, tuple):
            forms = loaded.plural.get(message[0])
            assert forms and len(forms) == loaded.num_plurals, f"{language} lacks {message!r}"
            placeholders = set(re.findall(r"\{(\w+)\}", message[1]))
            for form in forms:
                assert set(re.findall(r"\{(\w+)\}", form)) == placeholders, message
            continue
        translated = loaded.singular
        assert translated.get(message), f"{language} lacks {message!r}"
        placeholders = set(re.findall(r"\{(\w+)\}", message))
        assert set(re.findall(r"\{(\w+)\}", translated[message])) == placeholders, message


def test_source_language_and_negotiation() -> None:
    assert gettext("You are unsubscribed.", "en") == "You are unsubscribed."
    assert gettext("You are unsubscribed.", "sv") == "Du är avregistrerad."
    assert gettext("You are unsubscribed.", "xx") == "You are unsubscribed."
    assert negotiate(None, "zz-ZZ", "pt-BR") == "pt_BR"
    assert negotiate("de-AT") == "de"
    assert negotiate("not a tag!") == "en"


@given(st.lists(st.one_of(st.none(), st.text(max_size=40)), max_size=25), st.text(max_size=40))
def test_negotiation_takes_any_header_and_answers_a_shipped_language(
    candidates: list[str | None], default: str
) -> None:
    """Accept-Language and a link's locale come from outside: whatever they
    say, the answer is a language that has a catalog."""
    assert negotiate(*candidates, default=default) in available(PAGES)


@pytest.mark.parametrize(
    ("wanted", "served"),
    [
        (("pt-BR",), "pt_BR"),
        (("pt-br",), "pt_BR"),
        (("pt_PT",), "pt_PT"),
        (("pt-MZ",), "pt_PT"),  # CLDR: Mozambique reads European Portuguese
        (("pt",), "pt_BR"),  # CLDR: Portuguese is most likely Brazil's
        (("pt", "pt-PT"), "pt_PT"),  # a link's bare language, the browser's region
        (("pt", "de"), "pt_BR"),
        (("fr-CA",), "fr"),
        (("zh-TW", "ja-JP"), "ja"),
    ],
)
def test_negotiation_prefers_the_exact_region(wanted: tuple[str, ...], served: str) -> None:
    assert negotiate(*wanted) == served


def test_the_default_language_is_negotiated_too() -> None:
    assert negotiate(None, default="pt") == "pt_BR"
    assert negotiate(None, default="pt-PT") == "pt_PT"
    assert negotiate(None, default="xx") == "en"


def test_serves_says_which_catalog_a_tag_reads() -> None:
    assert serves("pt") == "pt_BR" and serves("sv-FI") == "sv" and serves("en-GB") == "en"
    assert serves("xx-YY") is None and serves("not a tag!") is None
