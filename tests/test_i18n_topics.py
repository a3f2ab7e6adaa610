"""Topic names and descriptions per language: kept by the ledger, set through
the API and the command line, shown on the pages in the reader's language
(a language without its own reads the default)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adieu.cli import main
from adieu.errors import InvalidInput
from adieu.ledger.database import WRITE, make_engine
from adieu.ledger.records import TopicText
from adieu.ledger.schema import UTCDateTime
from adieu.ledger.vocabulary import Scope
from adieu.service import Adieu
from support import Client

JA = TopicText("ニュース", "月に一度の最新情報")
BR = TopicText("Novidades", "O que há de novo, uma vez por mês.")


def _text(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


@pytest.fixture
def client(adieu: Adieu) -> Iterator[Client]:
    c = Client(adieu)
    yield c
    c.close()


@pytest.fixture
def api(adieu: Adieu) -> Iterator[Client]:
    _, key = adieu.api_keys.create("writer")
    c = Client(adieu, headers={"Authorization": f"Bearer {key}"})
    yield c
    c.close()


# -- the ledger -----------------------------------------------------------------------


def test_a_topic_reads_in_the_readers_language_else_the_default(adieu: Adieu) -> None:
    ledger = adieu.ledger
    ledger.add_topic("news", "News", "Once a month.", translations={"ja": JA, "pt-br": BR})
    topic = ledger.topic("news")
    assert set(topic.translations) == {"ja", "pt-BR"}, "tags in their usual spelling"
    assert topic.text("ja") == JA
    assert topic.text("pt_BR") == BR
    assert topic.text("pt_PT") == BR, "another region of the language before the default"
    assert topic.text("de") == TopicText("News", "Once a month.")
    assert topic.in_language("ja").name == "ニュース" and topic.in_language("en").name == "News"


def test_translations_are_set_and_removed_one_language_at_a_time(adieu: Adieu) -> None:
    ledger = adieu.ledger
    ledger.add_topic("news", "News", translations={"ja": JA})
    ledger.update_topic("news", translations={"de": TopicText(" Neuigkeiten ", "Monatlich")})
    assert ledger.topic("news").translations == {
        "ja": JA,
        "de": TopicText("Neuigkeiten", "Monatlich"),
    }
    ledger.update_topic("news", translations={"ja": None})
    assert set(ledger.topic("news").translations) == {"de"}
    ledger.update_topic("news", name="Weekly news")
    assert set(ledger.topic("news").translations) == {"de"}, "a rename keeps them"


@pytest.mark.parametrize(
    "translations",
    [
        {"not a tag!": JA},
        {"zz-QQ-xx": JA},
        {"x" * 40: JA},
        {"ja": TopicText("", "")},
        {"ja": TopicText("x" * 201)},
        {"ja": TopicText("News\x00")},
        {"ja": TopicText("News", "a\x07b")},
    ],
)
def test_a_bad_translation_is_refused_and_writes_nothing(
    adieu: Adieu, translations: dict[str, TopicText]
) -> None:
    with pytest.raises(InvalidInput):
        adieu.ledger.add_topic("news", "News", translations=translations)
    assert adieu.ledger.topics(retired=True) == []
    adieu.ledger.add_topic("kept", "Kept", translations={"ja": JA})
    with pytest.raises(InvalidInput):
        adieu.ledger.update_topic("kept", translations=dict(translations))
    assert adieu.ledger.topic("kept").translations == {"ja": JA}


# -- the pages ------------------------------------------------------------------------


def test_pages_name_the_topic_in_the_readers_language(adieu: Adieu, client: Client) -> None:
    adieu.ledger.add_topic("news", "News", "Once a month.", translations={"ja": JA})
    ja = adieu.link("ja@example.com", topic="news", locale="ja")
    landing = _text(client.request("GET", f"/u/{ja.token}").text)
    assert "「ニュース」のメールだけ配信を停止する" in landing and "News" not in landing
    prefs = client.request("GET", f"/p/{ja.token}").text
    assert "ニュース" in prefs and JA.description in prefs and "Once a month." not in prefs
    csrf = re.search(r'name="csrf" value="([^"]+)"', prefs)
    assert csrf
    saved = client.request(
        "POST",
        f"/p/{ja.token}",
        data={"csrf": csrf.group(1), "frequency": "every", "pause": "none"},
        headers={"origin": "https://mail.example.net"},
    )
    assert "ニュース：受け取らない" in saved.text
    de = adieu.link("de@example.com", topic="news", locale="de")
    german = _text(client.request("GET", f"/u/{de.token}").text)
    assert "Nur E-Mails zu „News“ abbestellen" in german, "no German name: the default"


# -- the API --------------------------------------------------------------------------


def test_the_api_takes_and_returns_translations(api: Client) -> None:
    r = api.request(
        "POST",
        "/api/v1/topics",
        json={
            "key": "news",
            "name": "News",
            "translations": {"ja": {"name": "ニュース"}, "pt-BR": {"name": "Novidades"}},
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["translations"] == {
        "ja": {"name": "ニュース", "description": ""},
        "pt-BR": {"name": "Novidades", "description": ""},
    }
    r = api.request(
        "PATCH",
        "/api/v1/topics/news",
        json={"translations": {"ja": None, "de": {"name": "Neuigkeiten", "description": "D"}}},
    )
    assert r.status_code == 200, r.text
    assert set(r.json()["translations"]) == {"de", "pt-BR"}
    r = api.request("PATCH", "/api/v1/topics/news", json={"name": "Weekly news"})
    assert r.json()["name"] == "Weekly news" and set(r.json()["translations"]) == {"de", "pt-BR"}
    plain = api.request("POST", "/api/v1/topics", json={"key": "plain", "name": "Plain"})
    assert plain.json()["translations"] == {}, "a topic without them answers as before"


def _error(r: object, status: int) -> None:
    assert r.status_code == status, r.text  # type: ignore[attr-defined]
    body = r.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"} and body["error"]["status"] == status


def test_the_api_refuses_bad_translations_kindly(adieu: Adieu, api: Client) -> None:
    bad_tag = {"key": "news", "name": "News", "translations": {"nope!": {"name": "x"}}}
    _error(api.request("POST", "/api/v1/topics", json=bad_tag), 400)
    no_name = {"key": "news", "name": "News", "translations": {"ja": {"description": "x"}}}
    _error(api.request("POST", "/api/v1/topics", json=no_name), 422)
    extra = {"key": "news", "name": "News", "translations": {"ja": {"name": "x", "colour": 1}}}
    _error(api.request("POST", "/api/v1/topics", json=extra), 422)
    assert adieu.ledger.topics(retired=True) == []


words = st.text(st.characters(codec="utf-8"), max_size=220)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    translations=st.dictionaries(
        st.one_of(st.sampled_from(["ja", "pt-BR", "de", "sv-FI"]), words),
        st.one_of(
            st.none(),
            st.fixed_dictionaries({"name": words}, optional={"description": words}),
            st.integers(),
        ),
        max_size=4,
    )
)
def test_any_translations_get_an_answer_never_a_failure(
    adieu: Adieu, api: Client, translations: dict[str, object]
) -> None:
    """Whatever arrives: 201 with what was kept, or a 4xx with nothing kept."""
    for topic in adieu.ledger.topics(retired=True):
        adieu.ledger.retire_topic(topic.key)
    body = {"key": "fuzz", "name": "Fuzz", "translations": translations}
    r = api.request("POST", "/api/v1/topics", json=body)
    assert r.status_code in (201, 400, 409, 422), r.text
    if r.status_code == 201:
        kept = r.json()["translations"]
        assert len(kept) <= len(translations)
        adieu.ledger.retire_topic("fuzz")
    else:
        assert r.json()["error"]["message"]


def test_the_api_keeps_its_contract(api: Client) -> None:
    """Translations are an addition: the fields that were there stay."""
    schema = api.request("GET", "/openapi.json")
    if schema.status_code != 200:
        schema = api.request("GET", "/api/openapi.json")
    models = schema.json()["components"]["schemas"]
    assert {"key", "name", "description", "default_opt_in", "retired", "retired_at"} <= set(
        models["TopicOut"]["properties"]
    )
    assert set(models["TopicIn"]["required"]) == {"key", "name"}


# -- the command line -----------------------------------------------------------------


@pytest.fixture
def run(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ADIEU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ADIEU_DATABASE_URL", database_url)
    monkeypatch.setenv("ADIEU_BASE_URL", "https://mail.example.net")
    runner = CliRunner()
    return lambda *args: runner.invoke(main, list(args), catch_exceptions=False)


def test_the_command_line_names_topics_per_language(run) -> None:  # type: ignore[no-untyped-def]
    added = run(
        "topic", "add", "news", "--name", "News",
        "--name-in", "ja", "ニュース", "--description-in", "ja", "月に一度",
        "--name-in", "pt-BR", "Novidades",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    said = run("topic", "translate", "news", "de", "--name", "Neuigkeiten")
    assert said.exit_code == 0 and "de" in said.output
    assert run("topic", "translate", "news", "pt-BR", "--remove").exit_code == 0
    (listed,) = json.loads(run("topic", "list", "--json").output)
    assert listed["translations"] == {
        "ja": {"name": "ニュース", "description": "月に一度"},
        "de": {"name": "Neuigkeiten", "description": ""},
    }


def test_the_command_line_refuses_a_bad_translation_clearly(run) -> None:  # type: ignore[no-untyped-def]
    lonely = run("topic", "add", "news", "--name", "N", "--description-in", "ja", "x")
    assert lonely.exit_code != 0 and "--name-in ja" in lonely.output
    assert "Traceback" not in lonely.output
    run("topic", "add", "news", "--name", "News")
    bad = run("topic", "translate", "news", "nope!", "--name", "x")
    assert bad.exit_code != 0 and "language tag" in bad.output
    neither = run("topic", "translate", "news", "ja")
    assert neither.exit_code != 0 and "--name" in neither.output


# -- the migration --------------------------------------------------------------------


def test_0012_gives_every_topic_an_empty_set_of_translations(database_url: str) -> None:
    engine = make_engine(database_url)
    config = Config()
    config.set_main_option("script_location", str(resources.files("adieu") / "migrations"))

    def migrate(target: str, down: bool = False) -> None:
        with engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
            config.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(config, target)

    topics = sa.table(
        "topics",
        sa.column("key", sa.String),
        sa.column("name", sa.String),
        sa.column("description", sa.Text),
        sa.column("default_opt_in", sa.Boolean),
        sa.column("created_at", UTCDateTime),
    )
    try:
        migrate("0011")
        with engine.begin() as conn:
            conn.execute(
                topics.insert().values(
                    key="news",
                    name="News",
                    description="",
                    default_opt_in=True,
                    created_at=datetime(2026, 12, 1, tzinfo=UTC),
                )
            )
        migrate("0012")
        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT name, translations FROM topics")).one()
        assert tuple(row) == ("News", "{}")
        migrate("0011", down=True)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT name FROM topics")).scalar_one() == "News"
    finally:
        engine.dispose()


def test_read_scope_keys_cannot_set_translations(adieu: Adieu) -> None:
    _, reader = adieu.api_keys.create("reader", scope=Scope.READ)
    c = Client(adieu, headers={"Authorization": f"Bearer {reader}"})
    try:
        r = c.request(
            "POST",
            "/api/v1/topics",
            json={"key": "news", "name": "News", "translations": {"ja": {"name": "x"}}},
        )
    finally:
        c.close()
    assert r.status_code == 403 and adieu.ledger.topics(retired=True) == []
