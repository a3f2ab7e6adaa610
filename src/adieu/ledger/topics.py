"""Topics: what people can choose to receive (a topic is a scope of consent).

A topic is never deleted, only retired: links name their topic inside the
token and are never recorded, so any link ever sent may name it years later.
Two ways in, then: ``topic`` finds a topic retired or not (what a link names
is always honoured), and ``sendable_topic``/``send_scope`` refuse a retired
one (new links and sends). ``topics`` lists those people can choose from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from adieu.errors import InvalidInput, TopicExists, TopicRetired, UnknownTopic
from adieu.ledger import schema as t
from adieu.ledger.base import LedgerBase
from adieu.ledger.records import Topic, TopicText
from adieu.scopes import ALL, TOPIC_KEY
from adieu.text import checked


class TopicStore(LedgerBase):
    """Topics, with a cache refreshed every few seconds."""

    def add_topic(
        self,
        key: str,
        name: str,
        description: str = "",
        default_opt_in: bool = True,
        translations: Mapping[str, TopicText] | None = None,
    ) -> Topic:
        """A new topic, or a retired one back in use (with this name and
        description; its opt-in default cannot change, so that the choices
        people made about it keep their meaning). ``translations`` names and
        describes it per language (a language without one reads the default)."""
        if key == ALL or not TOPIC_KEY.fullmatch(key):
            raise InvalidInput(
                f"{key!r} cannot be a topic key: use 1-64 lower-case letters, digits, "
                "'.', '_' or '-' (and not 'all')."
            )
        if not name.strip() or len(name) > 200:
            raise InvalidInput("A topic needs a name of 1-200 characters.")
        checked(name, "A topic's name")
        checked(description, "A topic's description", lines=True)
        values = {
            "name": name.strip(),
            "description": description.strip(),
            "translations": _dump(_merged({}, translations or {})),
        }
        with self._write() as conn:
            found = conn.execute(
                select(t.topics.c.default_opt_in, t.topics.c.retired_at).where(
                    t.topics.c.key == key
                )
            ).first()
            if found is None:
                conn.execute(
                    insert(t.topics).values(
                        key=key, default_opt_in=default_opt_in, created_at=self.now(), **values
                    )
                )
            elif found.retired_at is None:
                raise TopicExists(key)
            elif bool(found.default_opt_in) != default_opt_in:
                was = "opt-in" if found.default_opt_in else "opt-out"
                raise InvalidInput(
                    f"The retired topic {key!r} was {was}; add it again as {was}, so that "
                    "the choices people made about it keep their meaning."
                )
            else:
                conn.execute(
                    update(t.topics).where(t.topics.c.key == key).values(retired_at=None, **values)
                )
        self._forget_topics()
        return self.topic(key)

    def update_topic(
        self,
        key: str,
        *,
        name: str | None = None,
        description: str | None = None,
        translations: Mapping[str, TopicText | None] | None = None,
    ) -> Topic:
        """Rename or re-describe a topic (its key and opt-in default stay).
        ``translations`` sets the given languages' name and description and
        removes those given as ``None``; other languages stay."""
        current = self.topic(key)
        values: dict[str, str] = {}
        if name is not None:
            if not name.strip() or len(name) > 200:
                raise InvalidInput("A topic needs a name of 1-200 characters.")
            values["name"] = checked(name, "A topic's name").strip()
        if description is not None:
            checked(description, "A topic's description", lines=True)
            values["description"] = description.strip()
        if translations:
            values["translations"] = _dump(_merged(current.translations, translations))
        if values:
            with self._write() as conn:
                conn.execute(update(t.topics).where(t.topics.c.key == key).values(**values))
        self._forget_topics()
        return self.topic(key)

    def retire_topic(self, key: str) -> Topic:
        """What deleting a topic does: it leaves the preference center and takes
        no new links or sends, while every link that names it still
        unsubscribes. Retiring a retired topic changes nothing."""
        self.topic(key)
        with self._write() as conn:
            conn.execute(
                update(t.topics)
                .where(t.topics.c.key == key, t.topics.c.retired_at.is_(None))
                .values(retired_at=self.now())
            )
        self._forget_topics()
        return self.topic(key)

    def topics(self, *, retired: bool = False) -> list[Topic]:
        """The topics people can choose from and new sends may name; with
        ``retired``, the retired ones too (an operator's listing)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.topics).order_by(t.topics.c.key))
            found = [_topic(r) for r in rows]
        self._topics = {topic.key: topic for topic in found}
        self._topics_loaded_at = self.now()
        return found if retired else [topic for topic in found if not topic.retired]

    def topic(self, key: str) -> Topic:
        """A topic by key, retired or not (a link that names a retired topic is
        honoured), from a cache refreshed every few seconds or on a miss."""
        fresh = self.now() - self._topics_loaded_at < timedelta(seconds=5)
        if key not in self._topics or not fresh:
            self.topics()
        try:
            return self._topics[key]
        except KeyError:
            raise UnknownTopic(key) from None

    def sendable_topic(self, key: str) -> Topic:
        """A topic a new link or send may name: one that exists and is not retired."""
        topic = self.topic(key)
        if topic.retired:
            raise TopicRetired(key)
        return topic

    def check_scope(self, scope: str | None) -> str:
        """The scope of a consent record ("all" or a topic, retired or not)."""
        if scope is None or scope == ALL:
            return ALL
        return self.topic(scope).key

    def send_scope(self, scope: str | None) -> str:
        """The scope of a new link or send ("all" or a topic that is not retired)."""
        if scope is None or scope == ALL:
            return ALL
        return self.sendable_topic(scope).key

    def _forget_topics(self) -> None:
        self._topics_loaded_at = datetime.min.replace(tzinfo=UTC)


def _topic(row: Any) -> Topic:
    return Topic(
        row.key,
        row.name,
        row.description,
        row.default_opt_in,
        row.retired_at,
        _load(row.translations),
    )


def topic_locale(tag: str) -> str:
    """A language tag (``pt-br``, ``ja_JP``) in its usual spelling (``pt-BR``)."""
    from babel import Locale, UnknownLocaleError

    try:
        if len(tag) > 35:
            raise ValueError(tag)
        parsed = Locale.parse(tag.replace("-", "_"))
    except (ValueError, TypeError, UnknownLocaleError):
        raise InvalidInput(f"{tag[:40]!r} is not a language tag such as 'ja' or 'pt-BR'.") from None
    return f"{parsed.language}-{parsed.territory}" if parsed.territory else parsed.language


def _merged(
    current: Mapping[str, TopicText], changes: Mapping[str, TopicText | None]
) -> dict[str, TopicText]:
    merged = dict(current)
    for tag, text in changes.items():
        locale = topic_locale(tag)
        if text is None:
            merged.pop(locale, None)
            continue
        if not text.name.strip() or len(text.name) > 200:
            raise InvalidInput(f"A topic needs a name of 1-200 characters (in {tag!r} too).")
        if len(text.description) > 2000:
            raise InvalidInput(f"A topic's description has at most 2000 characters ({tag!r}).")
        checked(text.name, "A topic's name")
        checked(text.description, "A topic's description", lines=True)
        merged[locale] = TopicText(text.name.strip(), text.description.strip())
    return merged


def _dump(translations: Mapping[str, TopicText]) -> str:
    return json.dumps(
        {
            k: {"name": v.name, "description": v.description}
            for k, v in sorted(translations.items())
        },
        ensure_ascii=False,
    )


def _load(stored: str | None) -> dict[str, TopicText]:
    if not stored:
        return {}
    return {
        k: TopicText(str(v.get("name", "")), str(v.get("description", "")))
        for k, v in json.loads(stored).items()
    }
