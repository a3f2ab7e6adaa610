"""The send rule, defined once (R7, R13): may this message go to this address now?

The ledger reports facts (``adieu.ledger.vocabulary.Fact``); this table says
which of them stop which mail, under what name, and in what order they are
reported when several hold. ``decide`` reads it for one address; bulk
screening hands the same table to the ledger (``Ledger.blocklist``), so every
door (``Policy.may_send``, ``/api/v1/check``, ``adieu filter``, the relay) gives
the same answer with the same reason.

Marketing is stopped by every rule. Transactional mail is stopped only by a
hard bounce: a receipt still reaches someone who left the newsletter, but
nothing goes to a dead mailbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from adieu.ledger.vocabulary import Category as Category
from adieu.ledger.vocabulary import Fact, Frequency
from adieu.scopes import ALL

if TYPE_CHECKING:
    from adieu.ledger.records import SendState, Topic


@dataclass(frozen=True, slots=True)
class Rule:
    fact: Fact
    #: The reason reported when this rule stops a send (part of the public API).
    reason: str
    #: Whether it stops transactional mail too.
    transactional: bool = False


#: Most telling first: when several hold, the first is the reason given.
RULES: tuple[Rule, ...] = (
    Rule(Fact.HARD_BOUNCE, "hard_bounce", transactional=True),
    Rule(Fact.COMPLAINT, "complaint"),
    Rule(Fact.UNSUBSCRIBE, "unsubscribed"),
    Rule(Fact.MANUAL, "suppressed"),
    Rule(Fact.IMPORT, "suppressed"),
    Rule(Fact.TOPIC_OPT_OUT, "topic_opt_out"),
    Rule(Fact.NOT_SUBSCRIBED, "not_subscribed"),
    Rule(Fact.PAUSED, "paused"),
    Rule(Fact.FREQUENCY_CAP, "frequency_cap"),
)

#: How long a chosen frequency keeps the next marketing send waiting.
FREQUENCY_WINDOW = {Frequency.WEEKLY: timedelta(days=7), Frequency.MONTHLY: timedelta(days=30)}

_REASON_OF = {rule.fact.value: rule.reason for rule in RULES}
_RULES = {
    category: tuple(rule for rule in RULES if category is Category.MARKETING or rule.transactional)
    for category in Category
}
_FACTS = {category: tuple(rule.fact for rule in rules) for category, rules in _RULES.items()}
_STATE_FACTS = frozenset({Fact.NOT_SUBSCRIBED, Fact.PAUSED, Fact.FREQUENCY_CAP})


def facts_for(category: Category) -> tuple[Fact, ...]:
    """The facts that stop mail of ``category``, in the order they are reported."""
    return _FACTS[category]


def reason_of(fact: str) -> str:
    """The reported reason for a fact (other values, such as "invalid", pass through)."""
    return _REASON_OF.get(fact, fact)


@dataclass(frozen=True, slots=True)
class Decision:
    """``allowed`` with a machine-readable ``reason`` ("ok" when allowed)."""

    allowed: bool
    reason: str = "ok"
    since: datetime | None = None
    until: datetime | None = None

    def __bool__(self) -> bool:
        return self.allowed


ALLOWED = Decision(True)
INVALID_ADDRESS = Decision(False, "invalid_address")


def _state_fact(fact: Fact, state: SendState, topic: Topic | None, at: datetime) -> Decision | None:
    """The refusal a fact of the contact's state gives, or None when it does not hold."""
    reason = _REASON_OF[fact.value]
    if fact is Fact.NOT_SUBSCRIBED:
        if topic is None or topic.default_opt_in or topic.key in state.subscribed_topics:
            return None
        return Decision(False, reason)
    if fact is Fact.PAUSED:
        until = state.paused_until
        return Decision(False, reason, until=until) if until is not None and until > at else None
    # Fact.FREQUENCY_CAP
    window = FREQUENCY_WINDOW.get(state.frequency)
    last = state.last_marketing_send_at
    if window is None or last is None or at - last >= window:
        return None
    return Decision(False, reason, since=last, until=last + window)


def decide(state: SendState, topic: Topic | None, category: Category, at: datetime) -> Decision:
    """The rule table applied to one address's state: the first rule that holds.

    The suppressions are indexed once (a suppression of all marketing is the
    fact of its reason; one of the topic being sent, a topic opt-out), then the
    rules are walked in order; this runs for every address of a batch check.
    """
    held: dict[str, datetime] = {}
    for s in state.suppressions:
        if s.scope == ALL:
            fact = s.reason.value
        elif topic is not None and s.scope == topic.key:
            fact = Fact.TOPIC_OPT_OUT.value
        else:
            continue
        since = held.get(fact)
        if since is None or s.since < since:
            held[fact] = s.since
    if not held and not (
        state.paused_until is not None
        or (state.last_marketing_send_at is not None and state.frequency in FREQUENCY_WINDOW)
        or (topic is not None and not topic.default_opt_in)
    ):
        return ALLOWED  # nothing any rule reads is set (most contacts, most of the time)
    for rule in _RULES[category]:
        fact = rule.fact
        since = held.get(fact.value)
        if since is not None:
            return Decision(False, rule.reason, since=since)
        if fact in _STATE_FACTS:
            refused = _state_fact(fact, state, topic, at)
            if refused is not None:
                return refused
    return ALLOWED
