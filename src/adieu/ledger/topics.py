"""Topics: what people can choose to receive (a topic is a scope of consent)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select, update

from adieu.errors import InvalidInput, TopicExists, TopicInUse, UnknownTopic
from adieu.ledger import schema as t
from adieu.ledger.base import LedgerBase
from adieu.ledger.records import Topic
from adieu.scopes import ALL, TOPIC_KEY


class TopicStore(LedgerBase):
    """Topics, with a cache refreshed every few seconds."""

    def add_topic(
        self, key: str, name: str, description: str = "", default_opt_in: bool = True
    ) -> Topic:
        if key == ALL or not TOPIC_KEY.fullmatch(key):
            raise InvalidInput(
                f"{key!r} cannot be a topic key: use 1-64 lower-case letters, digits, "
                "'.', '_' or '-' (and not 'all')."
            )
        if not name.strip() or len(name) > 200:
            raise InvalidInput("A topic needs a name of 1-200 characters.")
        with self._write() as conn:
            exists = conn.execute(select(t.topics.c.id).where(t.topics.c.key == key)).first()
            if exists:
                raise TopicExists(key)
            conn.execute(
                insert(t.topics).values(
                    key=key,
                    name=name.strip(),
                    description=description.strip(),
                    default_opt_in=default_opt_in,
                    created_at=self.now(),
                )
            )
        self._topics_loaded_at = datetime.min.replace(tzinfo=UTC)
        return Topic(key, name.strip(), description.strip(), default_opt_in)

    def update_topic(
        self, key: str, *, name: str | None = None, description: str | None = None
    ) -> Topic:
        """Rename or re-describe a topic (its key and opt-in default stay)."""
        self.topic(key)
        values: dict[str, str] = {}
        if name is not None:
            if not name.strip() or len(name) > 200:
                raise InvalidInput("A topic needs a name of 1-200 characters.")
            values["name"] = name.strip()
        if description is not None:
            values["description"] = description.strip()
        if values:
            with self._write() as conn:
                conn.execute(update(t.topics).where(t.topics.c.key == key).values(**values))
        self._topics_loaded_at = datetime.min.replace(tzinfo=UTC)
        return self.topic(key)

    def delete_topic(self, key: str) -> None:
        """Remove a topic nobody has a choice or a send recorded for; one in use
        stays (its history is part of people's consent record)."""
        self.topic(key)
        with self._write() as conn:
            used = (
                conn.execute(
                    select(t.suppressions.c.id).where(t.suppressions.c.scope == key).limit(1)
                ).first()
                or conn.execute(
                    select(t.subscriptions.c.topic).where(t.subscriptions.c.topic == key).limit(1)
                ).first()
                or conn.execute(select(t.sends.c.id).where(t.sends.c.topic == key).limit(1)).first()
                or conn.execute(
                    select(t.events.c.id).where(t.events.c.scope == key).limit(1)
                ).first()
            )
            if used:
                raise TopicInUse(key)
            conn.execute(delete(t.topics).where(t.topics.c.key == key))
        self._topics.pop(key, None)
        self._topics_loaded_at = datetime.min.replace(tzinfo=UTC)

    def topics(self) -> list[Topic]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.topics).order_by(t.topics.c.key))
            found = [Topic(r.key, r.name, r.description, r.default_opt_in) for r in rows]
        self._topics = {topic.key: topic for topic in found}
        self._topics_loaded_at = self.now()
        return found

    def topic(self, key: str) -> Topic:
        """A topic by key, from a cache refreshed every few seconds or on a miss."""
        fresh = self.now() - self._topics_loaded_at < timedelta(seconds=5)
        if key not in self._topics or not fresh:
            self.topics()
        try:
            return self._topics[key]
        except KeyError:
            raise UnknownTopic(key) from None

    def check_scope(self, scope: str | None) -> str:
        if scope is None or scope == ALL:
            return ALL
        return self.topic(scope).key
