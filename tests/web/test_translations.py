"""Every public page in every language: no catalog entry missing, plural forms
declared and used, no template text that bypasses the catalog, dates a person
reads, and the wording a native reader of each language expects."""

from __future__ import annotations

import gettext as stdlib_gettext
import html
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po
from jinja2 import Environment, nodes

from adieu.i18n import PAGES, SOURCE_LOCALE, available, load, negotiate, ngettext, tag
from adieu.ledger import Channel
from adieu.service import Adieu
from adieu.settings import Settings
from adieu.web import oneclick
from adieu.web import pages as page_code
from adieu.web import render as renderer
from support import Client

LOCALES = available(PAGES)
TRANSLATED = tuple(locale for locale in LOCALES if locale != SOURCE_LOCALE)
LOCALE_DIR = Path(str(resources.files("adieu") / "locale"))
TEMPLATES = Path(str(resources.files("adieu") / "web" / "templates"))


def _pot() -> set[str]:
    """Every message id the code and templates mark (singulars of plurals too)."""
    with (LOCALE_DIR / f"{PAGES}.pot").open("rb") as fh:
        return {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(fh) if m.id}


def _po(locale: str) -> Any:
    with (LOCALE_DIR / locale / "LC_MESSAGES" / f"{PAGES}.po").open("rb") as fh:
        return read_po(fh, locale=locale)


def _text(page: str) -> str:
    """What a reader sees: tags out, entities decoded, spaces collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "the page has a form"
    return match.group(1)


# -- every page in every language -----------------------------------------------------


class Misses:
    """The message ids asked for while rendering, and those a catalog lacks."""

    def __init__(self) -> None:
        self.missing: set[tuple[str, str]] = set()
        self.unmarked: set[str] = set()
        self.asked: set[str] = set()

    def check(self, message: str, locale: str, plural: bool) -> None:
        self.asked.add(message)
        if message not in _pot():
            self.unmarked.add(message)
        if locale == SOURCE_LOCALE:
            return
        loaded = load(locale, PAGES)
        if (loaded.plural if plural else loaded.singular).get(message) is None:
            self.missing.add((locale, message))


@pytest.fixture
def misses(monkeypatch: pytest.MonkeyPatch) -> Misses:
    """Watches every lookup the pages make (templates and page code)."""
    seen = Misses()
    from adieu.i18n import gettext as real_gettext
    from adieu.i18n import ngettext as real_ngettext

    def watched_gettext(message: str, locale: str = SOURCE_LOCALE, domain: str = PAGES) -> str:
        seen.check(message, locale, plural=False)
        return real_gettext(message, locale, domain)

    def watched_ngettext(
        singular: str, plural: str, n: int, locale: str = SOURCE_LOCALE, domain: str = PAGES
    ) -> str:
        seen.check(singular, locale, plural=True)
        return real_ngettext(singular, plural, n, locale, domain)

    monkeypatch.setattr(renderer, "gettext", watched_gettext)
    monkeypatch.setattr(renderer, "ngettext", watched_ngettext)
    monkeypatch.setattr(page_code, "gettext", watched_gettext)
    monkeypatch.setattr(oneclick, "gettext", watched_gettext)
    return seen


@pytest.fixture
def client(adieu: Adieu) -> Iterator[Client]:
    c = Client(adieu)
    yield c
    c.close()


@pytest.fixture
def full(make_settings: Callable[..., Settings]) -> Iterator[Adieu]:
    """An Adieu that shows everything a page may show (a privacy policy link)."""
    app = Adieu(make_settings(privacy_url="https://example.com/privacy"))
    yield app
    app.close()


def visit_every_page(adieu: Adieu, client: Client, locale: str) -> dict[str, str]:
    """Open every public page a recipient can reach, in ``locale``: the pages
    and each of their states (first unsubscribe and a repeat, by the person
    and by a complaint, a topic, the reason and its retry, subscribing again
    and the refusal, the preference center fresh, saved, paused and left)."""
    adieu.ledger.add_topic("news", "News", "What is new, once a month.")
    language = tag(locale)
    pages: dict[str, str] = {}

    def get(name: str, url: str, status: int = 200) -> str:
        r = client.request("GET", url, headers={"accept-language": language})
        assert r.status_code == status, (name, r.status_code)
        pages[name] = r.text
        return r.text

    def post(name: str, url: str, data: dict[str, str], status: int = 200) -> str:
        r = client.request(
            "POST",
            url,
            data=data,
            headers={"accept-language": language, "origin": "https://mail.example.net"},
        )
        assert r.status_code == status, (name, r.status_code)
        pages[name] = r.text
        return r.text

    person = adieu.link(f"person-{locale}@example.com", locale=language)
    topic = adieu.link(f"topic-{locale}@example.com", topic="news", locale=language)
    complained = adieu.link(f"complaint-{locale}@example.com", locale=language)
    get("home", "/")
    get("landing", f"/u/{person.token}")
    get("landing with a topic", f"/u/{topic.token}")
    prefs = get("preferences", f"/p/{person.token}")
    saved = post(
        "preferences saved",
        f"/p/{person.token}",
        {"csrf": _csrf(prefs), "frequency": "weekly", "pause": "30"},
    )
    post(
        "pause ended",
        f"/p/{person.token}",
        {"csrf": _csrf(saved), "topic-news": "1", "frequency": "weekly", "pause": "none"},
    )
    post(
        "preferences, nothing changed",
        f"/p/{person.token}",
        {"csrf": _csrf(saved)} | {"topic-news": "1", "frequency": "weekly", "pause": "keep"},
    )
    confirmed = post("confirmed", f"/u/{person.token}", {"adieu-page": "1", "scope": "all"})
    post("confirmed again", f"/u/{person.token}", {"adieu-page": "1", "scope": "all"})
    post("confirmed, a topic", f"/u/{topic.token}", {"adieu-page": "1", "scope": "topic"})
    get("preferences when out", f"/p/{person.token}")
    get("landing when out", f"/u/{person.token}")
    get("landing when out of a topic", f"/u/{topic.token}")
    post(
        "reason again",
        f"/u/{person.token}/reason",
        {"csrf": _csrf(confirmed), "text": "a\x00b"},
        400,
    )
    post("thanks", f"/u/{person.token}/reason", {"csrf": _csrf(confirmed), "choice": "other"})
    post(
        "resubscribed", f"/u/{person.token}/resubscribe", {"csrf": _csrf(confirmed), "scope": "all"}
    )
    post(
        "resubscribed to a topic",
        f"/u/{topic.token}/resubscribe",
        {"csrf": _csrf(pages["confirmed, a topic"]), "scope": "topic"},
    )
    adieu.ledger.record_complaint(f"complaint-{locale}@example.com")
    get("landing when out by complaint", f"/u/{complained.token}")
    held = post("already out by complaint", f"/u/{complained.token}", {"adieu-page": "1"})
    post(
        "not restarted", f"/u/{complained.token}/resubscribe", {"csrf": _csrf(held), "scope": "all"}
    )
    post("expired form", f"/p/{person.token}", {"csrf": "forged"}, 403)
    get("invalid link", "/u/not-a-token", 400)
    # RFC 8058 one-click answers are plain text a mail client may show.
    one_click = {"content-type": "application/x-www-form-urlencoded"}
    for name, token, status in (("one-click", topic.token, 200), ("one-click, bad", "x", 400)):
        r = client.request(
            "POST",
            f"/u/{token}",
            content=b"List-Unsubscribe=One-Click",
            headers={**one_click, "accept-language": language},
        )
        assert r.status_code == status, name
        pages[name] = r.text
    # Pages whose state is hard to reach by a request: rendered as the app does.
    render = renderer.Pages(adieu)
    for name, template, context in (
        ("error", "error.html", {}),
        ("missing", "missing.html", {}),
        ("locked", "preferences.html", _locked_context(person.token)),
    ):
        pages[name] = bytes(render.render(template, locale, **context).body).decode()
    return pages


def _locked_context(token: str) -> dict[str, Any]:
    return {
        "token": token,
        "address": "j***@example.com",
        "csrf": "x",
        "locked": True,
        "changes": None,
        "topics": [],
        "frequency": "every",
        "paused_until": "",
        "suppressed_since": "",
        "pauses": page_code.PAUSES,
    }


@pytest.mark.parametrize("locale", LOCALES)
def test_every_page_in_every_language_is_fully_translated(
    full: Adieu, misses: Misses, locale: str
) -> None:
    client = Client(full)
    try:
        pages = visit_every_page(full, client, locale)
    finally:
        client.close()
    assert not misses.unmarked, f"asked for but not in messages.pot: {misses.unmarked}"
    assert not misses.missing, f"no {locale} translation for: {misses.missing}"
    # Every page message was asked for by some page (nothing dead in the catalog
    # that a reader could never see, nothing reachable left unvisited).
    assert _pot() <= misses.asked, "pages not visited: " + repr(_pot() - misses.asked)
    if locale != SOURCE_LOCALE:
        assert plural_problems(locale) == []
    bypassing = {t.name: _literal_text(t.read_text()) for t in TEMPLATES.glob("*.html")}
    assert not any(bypassing.values()), f"text outside the catalog: {bypassing}"
    for name, page in pages.items():
        if name.startswith("one-click"):
            continue
        assert f'<html lang="{tag(locale)}">' in page, name
        assert "{" not in _text(page), f"{name}: a placeholder was not filled in"


@pytest.mark.parametrize("locale", TRANSLATED)
def test_no_english_sentence_shows_on_a_translated_page(
    adieu: Adieu, client: Client, locale: str
) -> None:
    pages = visit_every_page(adieu, client, locale)
    english = {m for m in _pot() if len(m.split()) >= 3} - {
        "Adieu is running"  # the product's name reads the same, the sentence does not
    }
    for name, page in pages.items():
        seen = _text(page)
        leaked = [m for m in english if m.split("{")[0].strip() and m.split("{")[0] in seen]
        assert not leaked, f"{locale} {name}: {leaked}"


# -- plural forms ---------------------------------------------------------------------


def plural_problems(locale: str) -> list[str]:
    """What is wrong with the plural forms a catalog declares and gives."""
    catalog = _po(locale)
    header = dict(catalog.mime_headers)
    if "Plural-Forms" not in header:
        return [f"{locale}: no Plural-Forms header"]
    expected = get_plural(locale)
    declared = re.search(r"nplurals\s*=\s*(\d+)", header["Plural-Forms"])
    if not declared or int(declared.group(1)) != expected.num_plurals:
        return [f"{locale}: nplurals is not {expected.num_plurals}"]
    problems = []
    rule = stdlib_gettext.c2py(catalog.plural_expr)
    cldr = stdlib_gettext.c2py(expected.plural_expr)
    if [rule(n) for n in range(0, 1200)] != [cldr(n) for n in range(0, 1200)]:
        problems.append(f"{locale}: the plural rule is not the language's")
    plurals = [m for m in catalog if m.id and not isinstance(m.id, str)]
    if not plurals:
        problems.append(f"{locale}: no plural messages, yet the pages show counts")
    for message in plurals:
        if len(message.string) != expected.num_plurals or not all(message.string):
            problems.append(f"{locale}: {message.id[0]!r} lacks plural forms")
    return problems


@pytest.mark.parametrize("locale", TRANSLATED)
def test_every_catalog_declares_the_plural_forms_of_its_language(locale: str) -> None:
    assert plural_problems(locale) == []


def test_a_count_of_one_is_singular(make_settings: Callable[..., Settings]) -> None:
    """``ADIEU_HONOUR_HOURS=1`` said "within 1 hours"."""
    app = Adieu(make_settings(honour_hours=1))
    c = Client(app)
    try:
        link = app.link("one@example.com")
        page = _text(c.request("POST", f"/u/{link.token}", data={"adieu-page": "1"}).text)
    finally:
        c.close()
        app.close()
    assert "within 1 hour." in page and "1 hours" not in page


def test_polish_has_three_forms_and_japanese_one() -> None:
    days = ("Pause for {days} day", "Pause for {days} days")
    shown = {n: ngettext(*days, n, "pl").format(days=n) for n in (1, 2, 5, 22, 25)}
    assert shown == {
        1: "Wstrzymaj na 1 dzień",
        2: "Wstrzymaj na 2 dni",
        5: "Wstrzymaj na 5 dni",
        22: "Wstrzymaj na 22 dni",
        25: "Wstrzymaj na 25 dni",
    }
    hours = (
        "This takes effect now. A message that was already on its way may still "
        "arrive within {hours} hour.",
        "This takes effect now. A message that was already on its way may still "
        "arrive within {hours} hours.",
    )
    assert ngettext(*hours, 1, "pl").endswith("1 godziny.".replace("1", "{hours}"))
    assert ngettext(*hours, 5, "pl").endswith("{hours} godzin.")
    assert len({ngettext(*days, n, "ja") for n in (1, 2, 30)}) == 1
    assert ngettext(*days, 1, "en") == days[0] and ngettext(*days, 0, "en") == days[1]


# -- no text around the catalog -------------------------------------------------------


class _Visible(HTMLParser):
    """Text a reader sees in a piece of markup: text nodes and the attributes
    that are read out or shown (alt, title, placeholder, aria-label, value of
    a button)."""

    SHOWN = frozenset({"alt", "title", "placeholder", "aria-label"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_data(self, data: str) -> None:
        self.found.append(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        kinds = dict(attrs).get("type")
        for name, value in attrs:
            if value and (
                name in self.SHOWN or (name == "value" and kinds in {"submit", "button"})
            ):
                self.found.append(value)


def _literal_text(source: str) -> list[str]:
    """Visible words written straight into a template (outside ``{{ }}``)."""
    tree = Environment(extensions=["jinja2.ext.i18n"]).parse(source)
    markup = "".join(
        # A marker where an expression goes, so that text on either side of it
        # is not read as one word and attributes stay well formed.
        node.data if isinstance(node, nodes.TemplateData) else "\x00"
        for output in tree.find_all(nodes.Output)
        for node in output.nodes
    )
    parser = _Visible()
    parser.feed(markup)
    return [
        text
        for text in (piece.replace("\x00", " ").strip() for piece in parser.found)
        if re.search(r"[^\W\d_]", text)
    ]


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES.glob("*.html")))
def test_no_template_text_bypasses_the_catalog(template: str) -> None:
    assert _literal_text((TEMPLATES / template).read_text()) == []


def test_the_bypass_check_sees_text_outside_the_catalog() -> None:
    assert _literal_text("<h1>Hello</h1>") == ["Hello"]
    assert _literal_text('<img alt="Logo" src="x.png">') == ["Logo"]
    assert _literal_text('<p>{{ _("Hi") }}</p><input type="submit" value="Go">') == ["Go"]
    assert _literal_text('<a href="/p/{{ token }}#frequency">{{ _("x") }}</a> ·') == []


# -- dates ----------------------------------------------------------------------------

AT = datetime(2026, 12, 4, 14, 7, 9, tzinfo=UTC)


@pytest.fixture
def stockholm(make_settings: Callable[..., Settings]) -> Iterator[Adieu]:
    app = Adieu(make_settings(display_timezone="Europe/Stockholm"))
    yield app
    app.close()


def _out_and_paused(app: Adieu, address: str) -> None:
    app.ledger.set_preferences(
        address, paused_until=AT + timedelta(days=30), at=AT - timedelta(days=1)
    )
    app.ledger.unsubscribe(address, channel=Channel.LANDING_PAGE, at=AT)


@pytest.mark.parametrize(
    ("locale", "moment", "zone"),
    [
        ("en", "4 December 2026, 15:07", "Central European Standard Time"),
        ("de", "4. Dezember 2026, 15:07", "Mitteleuropäische Normalzeit"),
        ("fr", "4 décembre 2026, 15:07", "heure normale d’Europe centrale"),
        ("sv", "den 4 december 2026 15:07", "centraleuropeisk normaltid"),
        ("ja", "2026年12月4日 15:07", "中央ヨーロッパ標準時"),
    ],
)
def test_dates_show_hours_and_minutes_and_the_zone_by_name(
    stockholm: Adieu, locale: str, moment: str, zone: str
) -> None:
    app = stockholm
    _out_and_paused(app, "dated@example.com")
    link = app.link("dated@example.com", locale=locale)
    c = Client(app)
    again = c.request("POST", f"/u/{link.token}", data={"adieu-page": "1"}).text
    prefs = c.request("GET", f"/p/{link.token}").text
    c.close()
    for page in (_text(again), _text(prefs)):
        assert moment in page and zone in page
        assert not re.search(r"\d:\d\d:\d\d", page), "no seconds"
        assert not re.search(r"[+-]\d\d:?\d\d\b|\bGMT|\bUTC\b|\bTU\b", page), "no raw offset"


def test_a_pause_shows_its_day_only(stockholm: Adieu) -> None:
    app = stockholm
    app.ledger.set_preferences("paused@example.com", paused_until=AT + timedelta(days=30))
    link = app.link("paused@example.com", locale="en")
    c = Client(app)
    page = _text(c.request("GET", f"/p/{link.token}").text)
    c.close()
    assert "Paused until 3 January 2027." in page


def test_english_dates_are_british(adieu: Adieu, client: Client) -> None:
    adieu.ledger.unsubscribe("gb@example.com", channel=Channel.LANDING_PAGE, at=AT)
    link = adieu.link("gb@example.com")
    page = _text(client.request("POST", f"/u/{link.token}", data={"adieu-page": "1"}).text)
    assert "You unsubscribed on 4 December 2026, 14:07 (Coordinated Universal Time)." in page
    assert "PM" not in page and "December 4" not in page


# -- English -------------------------------------------------------------------------


def test_who_unsubscribed_is_said_right(adieu: Adieu, client: Client) -> None:
    mine = adieu.link("mine@example.com")
    first = _text(client.request("POST", f"/u/{mine.token}", data={"adieu-page": "1"}).text)
    assert "We will not send you an email to confirm this." in first
    again = _text(client.request("POST", f"/u/{mine.token}", data={"adieu-page": "1"}).text)
    assert "You unsubscribed on " in again
    assert "We will not send you an email" not in again, "nothing happened to confirm"
    adieu.ledger.record_complaint("theirs@example.com")
    theirs = adieu.link("theirs@example.com")
    held = _text(client.request("POST", f"/u/{theirs.token}", data={"adieu-page": "1"}).text)
    assert "You have been unsubscribed since " in held and "You unsubscribed" not in held
    prefs = _text(client.request("GET", f"/p/{mine.token}").text)
    assert "You have been unsubscribed from all marketing email since " in prefs
    assert "You are unsubscribed from all marketing email since" not in prefs


def test_the_pause_reads_as_a_pause(adieu: Adieu, client: Client) -> None:
    link = adieu.link("rest@example.com")
    page = _text(client.request("GET", f"/p/{link.token}").text)
    assert "Pause emails" in page and "Don't pause" in page and "Pause for 30 days" in page
    assert "Take a break" not in page and "No break" not in page


# -- each language as its readers expect it --------------------------------------------


def _entries(locale: str) -> list[str]:
    out: list[str] = []
    for message in _po(locale):
        if message.id:
            strings = [message.string] if isinstance(message.string, str) else message.string
            out.extend(s for s in strings if s)
    return out


def test_spanish_says_what_the_buttons_do(adieu: Adieu, client: Client) -> None:
    adieu.ledger.add_topic("news", "Noticias")
    link = adieu.link("es@example.com", topic="news", locale="es")
    page = _text(client.request("GET", f"/u/{link.token}").text)
    assert "Dejar de recibir solo los correos sobre «Noticias»" in page
    assert "Cancelar la suscripción a todos los correos de marketing" in page
    # One variety (Spain): "vosotros" and Latin American "ustedes"-only forms
    # are out, and so is the Latin American "computadora/celular" vocabulary.
    assert not any(re.search(r"\bustedes\b|\bcelular\b", s) for s in _entries("es"))


def test_swedish_says_alla_and_den_before_dates(adieu: Adieu, client: Client) -> None:
    link = adieu.link("sv@example.com", locale="sv")
    landing = _text(client.request("GET", f"/u/{link.token}").text)
    assert "Avregistrera dig från alla marknadsföringsmejl" in landing
    client.request("POST", f"/u/{link.token}", data={"adieu-page": "1"})
    again = _text(client.request("POST", f"/u/{link.token}", data={"adieu-page": "1"}).text)
    prefs = _text(client.request("GET", f"/p/{link.token}").text)
    assert re.search(r"avregistrerade dig den \d", again)
    assert "från alla marknadsföringsmejl sedan den " in prefs
    assert not any(re.search(r"\ball marknadsföringsmejl", s) for s in _entries("sv"))


@pytest.mark.parametrize(
    ("accept", "lang", "button"),
    [
        ("pt-BR,pt;q=0.8", "pt-BR", "Cancelar inscrição de todos os e-mails de marketing"),
        ("pt-PT", "pt-PT", "Cancelar a subscrição de todos os emails de marketing"),
        ("pt-AO", "pt-PT", "Cancelar a subscrição de todos os emails de marketing"),
        ("pt", "pt-BR", "Cancelar inscrição de todos os e-mails de marketing"),
    ],
)
def test_portuguese_by_region(
    adieu: Adieu, client: Client, accept: str, lang: str, button: str
) -> None:
    link = adieu.link("pt@example.com")
    page = client.request("GET", f"/u/{link.token}", headers={"accept-language": accept}).text
    assert f'<html lang="{lang}">' in page and button in _text(page)


def test_a_link_minted_for_pt_still_opens_in_portuguese(adieu: Adieu, client: Client) -> None:
    link = adieu.link("old-pt@example.com", locale="pt")
    page = client.request("GET", f"/u/{link.token}").text
    assert '<html lang="pt-' in page and "Cancelar inscrição" in page
    # The browser's region wins over a link that names only the language.
    portugal = client.request("GET", f"/u/{link.token}", headers={"accept-language": "pt-PT"})
    assert '<html lang="pt-PT">' in portugal.text
    assert negotiate("pt", "pt-PT") == "pt_PT" and negotiate("pt", "de") == "pt_BR"


def test_brazilian_portuguese_is_its_own_text() -> None:
    brazil, portugal = load("pt_BR", PAGES).singular, load("pt_PT", PAGES).singular
    same = [m for m in brazil if brazil[m] == portugal.get(m)]
    assert len(same) < len(brazil) / 3, same
    assert not any(re.search(r"\bsubscri|\bguardar|\bligação", s) for s in _entries("pt_BR"))
    assert not any(re.search(r"\binscrição|\bsalvar|\bvocê", s, re.I) for s in _entries("pt_PT"))


def test_polish_says_wypisac_and_zapisac() -> None:
    for entry in _entries("pl"):
        assert not re.search(r"subskrypc|rezygnac|anulow|Bez przerwy", entry), entry


def test_italian_on_and_off_are_a_pair() -> None:
    catalog = load("it", PAGES).singular
    assert catalog["{topic}: on"] == "{topic}: attivato"
    assert catalog["{topic}: off"] == "{topic}: disattivato"
    assert not any("in viaggio" in s for s in _entries("it"))


def test_japanese_pauses_and_restarts() -> None:
    entries = _entries("ja")
    assert not any("再度登録" in s for s in entries)
    pause = load("ja", PAGES).plural["Pause for {days} day"]
    assert all("一時停止" in form for form in pause)
    assert load("ja", PAGES).singular["Subscribe again"] == "配信を再開する"


def test_french_keeps_its_spaces_unbroken() -> None:
    for entry in _entries("fr"):
        assert not re.search(r" [:;?!»]|« ", entry), f"breakable space: {entry!r}"
        assert not re.search(r"[^\s\u00a0\u202f]([:;?!])(\s|$)", entry.replace("://", "")), entry
        assert "(e)" not in entry, entry
