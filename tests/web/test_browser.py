"""The pages in a real browser: Debian's Chromium driven by Playwright.

Each flow runs at 375 px and 1280 px wide (and the landing page at 320 px),
with JavaScript switched off for the flow itself, saves screenshots under
``test-artifacts/``, and runs axe-core on every page, failing on any serious
or critical accessibility violation. Skipped where Chromium or Playwright is
missing, unless ``ADIEU_REQUIRE_BROWSER`` is set (CI sets it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adieu.i18n import gettext
from adieu.service import Adieu
from adieu.settings import Settings
from support import adieu_env, free_port, wait_for_port

CHROMIUM = Path(os.environ.get("ADIEU_CHROMIUM", "/usr/bin/chromium"))
ROOT = Path(__file__).parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "test-artifacts"
LANGUAGES = ("en", "sv", "de", "fr", "es", "it", "nl", "pt-PT", "pt-BR", "pl", "ja")

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - only where the test extra is missing
    sync_playwright = None  # type: ignore[assignment]

_missing = [
    what
    for what, ok in (
        ("playwright", sync_playwright is not None),
        (str(CHROMIUM), CHROMIUM.exists()),
        ("node_modules/axe-core (npm install)", AXE.exists()),
    )
    if not ok
]
if _missing and os.environ.get("ADIEU_REQUIRE_BROWSER"):
    raise RuntimeError(f"browser tests required but missing: {', '.join(_missing)}")
pytestmark = pytest.mark.skipif(bool(_missing), reason=f"missing: {', '.join(_missing)}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Adieu]:
    data = tmp_path_factory.mktemp("browser")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = Settings(data_dir=data / "data", base_url=base, sender_name="Example News")
    app = Adieu(settings)
    app.ledger.add_topic("news", "Monthly news", "Once a month, the best of what we wrote")
    app.ledger.add_topic("offers", "Offers")
    env = adieu_env(settings, sender_name="Example News")
    proc = subprocess.Popen(
        [sys.executable, "-m", "adieu", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, proc)
    yield app
    proc.terminate()
    proc.wait(timeout=10)
    app.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


def _page(browser: Browser, width: int, *, javascript: bool, locale: str = "en-US") -> Page:
    context = browser.new_context(
        viewport={"width": width, "height": 900},
        java_script_enabled=javascript,
        bypass_csp=True,  # lets the test inject axe-core; the page itself runs no script
        locale=locale,
    )
    return context.new_page()


WCAG_AND_BEST_PRACTICE = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


def _axe(browser: Browser, url: str, width: int, name: str) -> None:
    """Run axe-core on ``url``; fail on serious or critical violations."""
    page = _page(browser, width, javascript=True)
    page.goto(url)
    _axe_here(page, f"{name} at {width}px", WCAG_AND_BEST_PRACTICE)


def _axe_here(page: Page, name: str, tags: list[str] | None = None) -> None:
    """Run axe-core on the page as it is (every rule, or those ``tags``), close
    it, and fail on serious or critical violations."""
    page.add_script_tag(content=AXE.read_text())
    options = "{}" if tags is None else f"{{runOnly: {{type: 'tag', values: {tags!r}}}}}"
    result: dict[str, Any] = page.evaluate(f"async () => await axe.run(document, {options})")
    page.context.close()
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{name}:\n" + "\n".join(bad)


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("width", [375, 1280])
def test_unsubscribe_in_one_click_from_the_landing_page(
    server: Adieu, browser: Browser, width: int
) -> None:
    app = server
    address = f"reader{width}@example.com"
    link = app.link(address, topic="news")
    _axe(browser, link.url, width, "landing page")
    # A second tab, opened before leaving: its button meets the "no" already made.
    confirm = _page(browser, width, javascript=True)
    confirm.goto(link.url)
    page = _page(browser, width, javascript=False)
    page.goto(link.url)
    expect(page.get_by_text("r•••@example.com")).to_be_visible()
    _shot(page, f"landing-{width}")
    page.get_by_role("button", name="Unsubscribe from all marketing email").click()
    expect(page.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
    _shot(page, f"confirmed-{width}")
    assert not app.policy.is_sendable(address)
    # the link, opened again, knows the person left: since when, and the way back
    page.goto(link.url)
    expect(page.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
    expect(page.get_by_text("You unsubscribed on")).to_be_visible()
    expect(page.get_by_role("button", name="Subscribe again")).to_be_visible()
    assert page.get_by_role("button", name="Unsubscribe from all marketing email").count() == 0
    page.context.close()
    # the confirmation page, reached again, says since when (and passes axe)
    confirm.get_by_role("button", name="Unsubscribe from all marketing email").click()
    expect(confirm.get_by_role("heading", name="You were already unsubscribed")).to_be_visible()
    _axe_here(confirm, "the confirmation page, again")


@pytest.mark.parametrize("width", [375, 1280])
def test_preference_center_saves_and_says_what_changed(
    server: Adieu, browser: Browser, width: int
) -> None:
    app = server
    address = f"prefs{width}@example.com"
    link = app.link(address)
    _axe(browser, link.preferences_url, width, "preference center")
    page = _page(browser, width, javascript=False)
    page.goto(link.preferences_url)
    page.get_by_label("Monthly news").uncheck()
    page.get_by_label("At most one email a week").check()
    page.get_by_label("Pause for 30 days").check()
    _shot(page, f"preferences-{width}")
    page.get_by_role("button", name="Save my preferences").click()
    expect(page.get_by_text("Your preferences are saved:")).to_be_visible()
    expect(page.get_by_text("Monthly news: off")).to_be_visible()
    _shot(page, f"preferences-saved-{width}")
    assert app.policy.may_send(address, "news").reason == "topic_opt_out"
    page.context.close()


def test_landing_page_fits_320px(server: Adieu, browser: Browser) -> None:
    app = server
    page = _page(browser, 320, javascript=True)
    page.goto(app.link("a.rather.long.address.for.a.narrow.screen@example.com", topic="news").url)
    assert page.evaluate("document.documentElement.scrollWidth") <= 320
    _shot(page, "landing-320")
    page.context.close()


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_works_end_to_end(server: Adieu, browser: Browser, language: str) -> None:
    app = server
    address = f"lang-{language}@example.com"
    link = app.link(address, locale=language)
    page = _page(browser, 375, javascript=False)
    page.goto(link.url)
    assert page.locator("html").get_attribute("lang") == language
    page.get_by_role(
        "button", name=gettext("Unsubscribe from all marketing email", language.replace("-", "_"))
    ).click()
    heading = gettext("You are unsubscribed", language.replace("-", "_"))
    expect(page.get_by_role("heading", name=heading)).to_be_visible()
    _shot(page, f"confirmed-{language}")
    page.context.close()
    assert not app.policy.is_sendable(address)
    _axe(browser, link.preferences_url, 375, f"preference center ({language})")


@pytest.mark.parametrize("width", [1280, 375])
def test_the_operator_signs_in_sees_the_charts_and_looks_up_a_contact(
    server: Adieu, browser: Browser, width: int
) -> None:
    from datetime import timedelta

    from adieu.ledger import Channel

    ledger = server.ledger
    now = ledger.now()
    if not ledger.status("chart0@example.com").known:
        for day in range(5):
            at = now - timedelta(days=day)
            ledger.record_sends(
                [f"chart{i}@example.com" for i in range(200)], campaign=f"d{day}", at=at
            )
            for i in range(day + 1):
                ledger.unsubscribe(f"chart{day}-{i}@example.com", channel=Channel.ONE_CLICK, at=at)
            ledger.unsubscribe(f"mail{day}@example.com", channel=Channel.MAILTO, at=at)
        ledger.record_complaint("chart1@example.com", campaign="d0")
        ledger.add_reason(
            "chart0-0@example.com", "too_many", choice="too_many", channel=Channel.LANDING_PAGE
        )
    _, key = server.api_keys.create(f"browser {width}")
    base = server.settings.base
    page = _page(browser, width, javascript=False)
    page.goto(f"{base}/admin")
    assert page.url.endswith("/admin/login")
    page.fill("#key", "adieu_wrong")
    page.click("button[type=submit]")
    expect(page.locator("[role=alert]")).to_be_visible()
    page.fill("#key", key)
    page.click("button[type=submit]")
    assert page.url.endswith("/admin")
    charts = page.locator("svg.chart")
    assert charts.count() == 5
    for i in range(5):
        box = charts.nth(i).bounding_box()
        assert box is not None and box["width"] > 250 and box["height"] > 40
    assert page.locator("svg.chart rect.bar").count() >= 5
    assert page.locator("svg.chart rect.band").count() == 3
    _shot(page, f"admin-dashboard-{width}")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    smallest = _smallest_chart_text(page)
    assert smallest >= 11, f"chart text is drawn at {smallest:.1f} px at {width} px wide"
    assert "One-click button" in page.locator("svg.chart").first.evaluate(
        "svg => svg.nextElementSibling.textContent"
    )
    page.fill("#address", "chart0-0@example.com")
    page.click("#lookup button[type=submit]")
    history = page.locator("#history tbody tr")
    assert history.count() == 2
    assert "One-click button" in history.nth(0).inner_text()
    assert "too_many" in history.nth(1).inner_text()
    _shot(page, f"admin-contact-{width}")
    fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert fits, "the contact page fits the screen (tables scroll on their own)"
    cookies = page.context.cookies()
    (session,) = [c for c in cookies if c["name"] == "adieu_admin"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    page.context.close()
    axe_page = _page(browser, width, javascript=True)
    axe_page.goto(f"{base}/admin/login")
    axe_page.fill("#key", key)
    axe_page.click("button[type=submit]")
    _axe_here(axe_page, f"the dashboard at {width}px", WCAG_AND_BEST_PRACTICE)


def _smallest_chart_text(page: Page) -> float:
    """The smallest text in the charts as drawn on screen, in CSS px: its
    computed font size times the drawing's scale (SVG text shrinks with a
    scaled drawing), and the legends' text."""
    sizes: list[float] = page.evaluate(
        """() => [
            ...[...document.querySelectorAll('svg.chart text')].map(t => {
                const m = t.getScreenCTM();
                return parseFloat(getComputedStyle(t).fontSize) * Math.hypot(m.a, m.b);
            }),
            ...[...document.querySelectorAll('.legend li')].map(
                li => parseFloat(getComputedStyle(li).fontSize)),
        ]"""
    )
    assert sizes, "the charts have text"
    return min(sizes)


SHOTS = ARTIFACTS / "screenshots"
#: Three languages for the screenshots: the source, one with long words and
#: typographic spaces, and one in another script.
SHOT_LANGUAGES = (("en", "en-GB"), ("fr", "fr-FR"), ("ja", "ja-JP"))


@pytest.mark.parametrize("width", [375, 1280])
@pytest.mark.parametrize(("language", "browser_locale"), SHOT_LANGUAGES)
def test_every_public_page_in_three_languages(
    server: Adieu, browser: Browser, width: int, language: str, browser_locale: str
) -> None:
    """Walks every page a recipient can meet and saves a screenshot of each
    under ``test-artifacts/screenshots/`` (<language>-<width>-<page>.png);
    each page says in its language what it is, and fits the screen."""
    app = server
    base = app.settings.base
    address = f"pages-{language}-{width}@example.com"
    link = app.link(address, topic="news", locale=language)
    seen: list[str] = []

    def t(message: str) -> str:
        return gettext(message, language)

    def shot(page: Page, name: str, heading: str) -> None:
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        assert page.locator("html").get_attribute("lang") == language
        fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert fits, f"{name} fits {width} px"
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{language}-{width}-{name}.png"), full_page=True)
        seen.append(name)

    page = _page(browser, width, javascript=False, locale=browser_locale)
    page.goto(f"{base}/")
    shot(page, "home", t("Adieu is running"))
    page.goto(link.url)
    shot(page, "landing", t("Unsubscribe"))
    page.get_by_role("button", name=t("Unsubscribe from all marketing email")).click()
    shot(page, "confirmed", t("You are unsubscribed"))
    page.get_by_label(t("I receive too many emails")).check()
    page.get_by_role("button", name=t("Send")).click()
    shot(page, "thanks", t("Thank you"))
    page.goto(link.url)
    shot(page, "landing-after-leaving", t("You are unsubscribed"))
    page.goto(link.preferences_url)
    shot(page, "preferences-after-leaving", t("Your email preferences"))
    page.goto(link.url)
    page.get_by_role("button", name=t("Subscribe again")).click()
    shot(page, "resubscribed", t("You are subscribed again"))
    page.goto(link.preferences_url)
    shot(page, "preferences", t("Your email preferences"))
    page.get_by_role("button", name=t("Save my preferences")).click()
    shot(page, "preferences-saved", t("Your email preferences"))
    page.goto(link.url)
    page.get_by_role("button", name=t("Unsubscribe from all marketing email")).click()
    page.goto(link.url)
    page.get_by_role("button", name=t("Subscribe again")).click()
    app.ledger.record_complaint(address)
    page.goto(link.url)
    shot(page, "landing-after-a-complaint", t("You are unsubscribed"))
    page.get_by_role("link", name=t("Change my preferences")).click()
    shot(page, "preferences-after-a-complaint", t("Your email preferences"))
    page.goto(f"{base}/u/{link.token[:20]}")
    shot(page, "invalid-link", t("This link is not valid"))
    page.goto(f"{base}/u/")
    shot(page, "cut-link", t("This link is not valid"))
    page.goto(f"{base}/nothing-here")
    shot(page, "missing", t("Page not found"))
    page.context.close()
    # Forms that cannot be taken: changed in the page with a script first.
    page = _page(browser, width, javascript=True, locale=browser_locale)
    other = app.link(f"forms-{language}-{width}@example.com", locale=language)
    page.goto(other.preferences_url)
    page.locator("input[name=csrf]").first.evaluate("input => input.value = 'stale'")
    page.get_by_role("button", name=t("Save my preferences")).click()
    shot(page, "form-refused", t("Please try again"))
    page.goto(other.url)
    page.get_by_role("button", name=t("Unsubscribe from all marketing email")).click()
    page.locator("#reason-text").evaluate("area => area.value = 'bell \\u0007'")
    page.get_by_role("button", name=t("Send")).click()
    shot(page, "reason-again", t("Please try again"))
    page.locator("#reason-text").evaluate("area => area.value = 'x'.repeat(200000)")
    page.get_by_role("button", name=t("Send")).click()
    shot(page, "error", t("Something went wrong"))
    page.context.close()
    assert len(seen) == 17
    if width == 375 and language == "en":
        for url in (f"{base}/u/", link.url, f"{base}/nothing-here"):
            _axe(browser, url, width, url.rsplit("/", 1)[-1] or "a cut link")
