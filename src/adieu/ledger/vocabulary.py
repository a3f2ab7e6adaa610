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


class Reason(StrEnum):
    """Why an address is suppressed."""

    UNSUBSCRIBE = "unsubscribe"
    COMPLAINT = "complaint"
    HARD_BOUNCE = "hard_bounce"
    MANUAL = "manual"
    IMPORT = "import"


#: Reasons that are the person's (or operator's) "no": a resubscribe lifts
#: them. A hard bounce is a fact about the mailbox and stays.
CONSENT_REASONS = frozenset({Reason.UNSUBSCRIBE, Reason.COMPLAINT, Reason.MANUAL, Reason.IMPORT})


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
