from __future__ import annotations

from importlib import resources

from babel.messages.pofile import read_po

from adieu.i18n import available, extract, gettext, negotiate


def test_message_template_is_current() -> None:
    """`python -m adieu.i18n` regenerates it; translators work from it."""
    path = resources.files("adieu") / "locale" / "messages.pot"
    with path.open("rb") as fh:
        catalog = read_po(fh)
    in_template = {m.id for m in catalog if m.id}
    assert set(extract()) == in_template


def test_source_language_and_negotiation() -> None:
    assert "en" in available()
    assert gettext("You are unsubscribed.", "en") == "You are unsubscribed."
    assert gettext("You are unsubscribed.", "xx") == "You are unsubscribed."
    assert negotiate(None, "zz-ZZ", "en-GB") == "en"
    assert negotiate("not a tag!") == "en"
