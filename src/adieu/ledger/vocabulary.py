"""The ledger's vocabulary: the names of what it records (enums only).

Light on purpose: every layer above (policy, doors, the CLI's option lists)
names these without importing the store. The records it answers with are in
``adieu.ledger.records``.
"""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    """Through which door a change came (docs/ARCHITECTURE.md "Storage")."""

    ONE_CLICK = "one_click"
    LANDING_PAGE = "landing_page"
    PREFERENCES = "preferences"
    MAILTO = "mailto"
    COMPLAINT = "complaint"
    BOUNCE = "bounce"
    API = "api"
    CLI = "cli"
    IMPORT = "import"
    #: An email service provider's webhook (``POST /hooks/{provider}``).
    ESP = "esp"


class Reason(StrEnum):
    """Why an address is suppressed."""

    UNSUBSCRIBE = "unsubscribe"
    COMPLAINT = "complaint"
    HARD_BOUNCE = "hard_bounce"
    MANUAL = "manual"
    IMPORT = "import"


#: Reasons that are a "no" to marketing (what "already unsubscribed" reports).
CONSENT_REASONS = frozenset({Reason.UNSUBSCRIBE, Reason.COMPLAINT, Reason.MANUAL, Reason.IMPORT})
#: The "no"s a resubscribe lifts: the person's own through their link, or an
#: operator's for them (docs/REQUIREMENTS.md, "Who may change consent").
PERSON_REASONS = frozenset({Reason.UNSUBSCRIBE, Reason.MANUAL, Reason.IMPORT})
#: What only an operator lifts, on purpose, naming it and giving a note: a
#: complaint (the person told their mailbox provider) and a hard bounce (a
#: fact about the mailbox that can be wrong). Both hold for all mail.
LIFTABLE_FACTS = frozenset({Reason.COMPLAINT, Reason.HARD_BOUNCE})
#: The channels through which an operator acts (and may lift a fact).
OPERATOR_CHANNELS = frozenset({Channel.API, Channel.CLI})


class EventType(StrEnum):
    UNSUBSCRIBE = "unsubscribe"
    RESUBSCRIBE = "resubscribe"
    PREFERENCES = "preferences"
    REASON = "reason"
    COMPLAINT = "complaint"
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    SUPPRESS = "suppress"
    ERASE = "erase"
    NOT_SPAM = "not_spam"
    REJECTION = "rejection"
    #: A returned report that did not prove itself (``ADIEU_INBOUND_TRUST``):
    #: recorded, and nothing changed.
    UNVERIFIED = "unverified"


class Fact(StrEnum):
    """Something the ledger holds that can stop a send. The ledger only reports
    facts; the send policy (``adieu.policy.rules``) names and orders them."""

    # A suppression of all marketing, by its reason (the values of ``Reason``).
    HARD_BOUNCE = "hard_bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    MANUAL = "manual"
    IMPORT = "import"
    #: Any suppression in the scope of the topic being sent.
    TOPIC_OPT_OUT = "topic_opt_out"
    #: A topic people must opt into, and this person has not.
    NOT_SUBSCRIBED = "not_subscribed"
    #: A pause that has not ended.
    PAUSED = "paused"
    #: A chosen frequency whose window since the last marketing send has not passed.
    FREQUENCY_CAP = "frequency_cap"


#: What a webhook may subscribe to.
EVENT_TYPES = tuple(e.value for e in EventType)
#: The states of a webhook delivery.
PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"


class Category(StrEnum):
    """What a message is: marketing (every rule applies) or transactional."""

    MARKETING = "marketing"
    TRANSACTIONAL = "transactional"


class Frequency(StrEnum):
    EVERY = "every"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class Scope(StrEnum):
    """What an API key may do. Each scope allows everything the ones before it do:
    ``read`` (reports, events, looking contacts up), ``send`` (what a sending
    application needs: links, send checks, recorded sends), ``admin`` (changing
    consent, topics, suppression lists and webhooks)."""

    READ = "read"
    SEND = "send"
    ADMIN = "admin"

    def allows(self, needed: Scope) -> bool:
        """Whether a key of this scope may do what needs ``needed``."""
        order = tuple(Scope)
        return order.index(self) >= order.index(needed)
