"""The ledger's records: what it is given and what it answers with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, NamedTuple

from adieu.ledger.vocabulary import Channel, EventType, Frequency, Reason
from adieu.scopes import ALL


@dataclass(frozen=True, slots=True)
class Topic:
    key: str
    name: str
    description: str
    default_opt_in: bool
    #: When it was retired: still honoured by every link that names it, refused
    #: for new links and sends, left out of the preference center.
    retired_at: datetime | None = None
    #: Name and description per language (a language tag such as ``ja`` or
    #: ``pt-BR``); a language without its own reads ``name`` and ``description``.
    translations: Mapping[str, TopicText] = field(default_factory=dict, hash=False)

    @property
    def retired(self) -> bool:
        return self.retired_at is not None

    def text(self, locale: str) -> TopicText:
        """The name and description a reader of ``locale`` sees: that locale's,
        else its language's, else another region's of the same language, else
        the default."""
        if self.translations:
            tag = locale.replace("_", "-")
            language = tag.split("-")[0]
            found = self.translations.get(tag) or self.translations.get(language)
            if found is None:
                same = sorted(k for k in self.translations if k.split("-")[0] == language)
                found = self.translations[same[0]] if same else None
            if found is not None:
                return found
        return TopicText(self.name, self.description)

    def in_language(self, locale: str) -> Topic:
        """This topic named and described as a reader of ``locale`` sees it."""
        if not self.translations:
            return self
        text = self.text(locale)
        return replace(self, name=text.name, description=text.description)


@dataclass(frozen=True, slots=True)
class TopicText:
    """A topic's name and description in one language."""

    name: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class Suppression:
    scope: str
    reason: Reason
    since: datetime


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an operation did. ``changed=False`` means it was already so, ``since``."""

    changed: bool
    scope: str
    since: datetime | None = None
    reason: Reason | None = None
    event_id: int | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class UnsubscribeRequest:
    """One unsubscribe, as ``Ledger.unsubscribe_many`` takes them."""

    address: str
    scope: str | None = ALL
    channel: Channel = Channel.API
    campaign: str | None = None
    reason: str | None = None
    details: Mapping[str, Any] | None = None
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    type: EventType
    channel: Channel
    scope: str
    campaign: str | None
    at: datetime
    reason: str | None
    details: dict[str, Any] | None
    recorded_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SendState:
    """What the send policy needs to know about one address, read in one query."""

    known: bool
    suppressions: tuple[Suppression, ...] = ()
    subscribed_topics: frozenset[str] = frozenset()
    frequency: Frequency = Frequency.EVERY
    paused_until: datetime | None = None
    last_marketing_send_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ContactStatus:
    address: str | None  # None once erased
    address_hash: bytes
    state: SendState
    soft_bounces: int = 0
    erased_at: datetime | None = None
    events: tuple[Event, ...] = ()

    @property
    def known(self) -> bool:
        return self.state.known

    @property
    def suppressed_since(self) -> datetime | None:
        """When the address stopped receiving all marketing, if it did."""
        times = [s.since for s in self.state.suppressions if s.scope == ALL]
        return min(times) if times else None


@dataclass(frozen=True, slots=True)
class SuppressionRecord:
    """One suppression as imported or exported."""

    address: str | None
    address_hash: bytes | None = None
    scope: str = ALL
    reason: Reason = Reason.IMPORT
    since: datetime | None = None


@dataclass(slots=True)
class ImportResult:
    added: int = 0
    already: int = 0
    invalid: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Blocklist:
    """Who may not be mailed in one scope now, for bulk screening.

    ``clear`` maps canonical addresses (UTF-8) to the first fact that holds
    for them, in the order the caller asked for; ``hashed`` does the same for
    erased contacts, known only by their keyed hash. When ``allow_only`` is set
    (a topic people must opt into), an address in neither map may be mailed
    only if it is in ``allow_only`` (or its hash in ``allow_only_hashed``).
    """

    clear: dict[bytes, str]
    hashed: dict[bytes, str]
    allow_only: frozenset[bytes] | None = None
    allow_only_hashed: frozenset[bytes] | None = None


class PreferenceChange(NamedTuple):
    """One thing a preference-center save changed: a topic on or off, the
    frequency, or the pause (its end as an ISO time, None when it ended)."""

    setting: Literal["topic", "frequency", "paused_until"]
    old: Any
    new: Any
    topic: str | None = None

    @property
    def recorded(self) -> list[Any]:
        """As the event's details record it (``["topic:news", true, false]``)."""
        name = f"topic:{self.topic}" if self.setting == "topic" else self.setting
        return [name, self.old, self.new]
