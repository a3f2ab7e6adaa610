"""SparkPost's webhooks (batched; HTTP Basic or a bearer token).

Authentication: the webhook's "Basic Auth" (``ADIEU_SPARKPOST_WEBHOOK_USER``
and ``_PASSWORD``) or, set in the webhook's custom headers,
``Authorization: Bearer`` with ``ADIEU_SPARKPOST_WEBHOOK_TOKEN``; compared in
constant time. A batch SparkPost redelivers carries the same
``X-MessageSystems-Batch-ID``: a batch recorded already is answered at once.

The body is an array of ``{"msys": {…}}``: ``message_event`` ``bounce`` and
``out_of_band`` by their ``bounce_class`` (SparkPost's table: 10, 30 and 90
are hard; 20–24, 40, 60, 70 and 100 soft; 25 and 80 administrative and
50–54 blocks, the sender's side), with ``error_code`` and ``raw_reason``
weighed as an inbound DSN's; ``spam_complaint``; ``unsubscribe_event``
``list_unsubscribe`` and ``link_unsubscribe``. Each event's ``event_id``
is kept.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from adieu.esp.hooks import (
    BLOCK,
    HARD,
    SOFT,
    UNSAID,
    Context,
    EspFinding,
    HookRequest,
    Item,
    Kind,
    Parsed,
    Provider,
    Refused,
    basic_auth,
    bearer_token,
    check_basic,
    check_bearer,
    collect,
    header,
    items_of,
    judge,
    opening,
    text,
)
from adieu.settings import Settings

BATCH = "X-MessageSystems-Batch-ID"
#: How long a batch id is remembered (SparkPost retries a batch for 8 hours).
BATCH_KEPT = timedelta(days=2)

#: SparkPost's bounce classes and what each says about the address.
BOUNCE_CLASSES: dict[int, str] = {
    1: UNSAID,  # Undetermined
    10: HARD,  # Invalid Recipient
    20: SOFT,  # Soft Bounce
    21: SOFT,  # DNS Failure
    22: SOFT,  # Mailbox Full
    23: SOFT,  # Too Large
    24: SOFT,  # Timeout
    25: BLOCK,  # Admin Failure (SparkPost's own policy)
    30: HARD,  # Generic Bounce: No RCPT
    40: SOFT,  # Generic Bounce
    50: BLOCK,  # Mail Block
    51: BLOCK,  # Spam Block
    52: BLOCK,  # Spam Content
    53: BLOCK,  # Prohibited Attachment
    54: BLOCK,  # Relaying Denied
    60: SOFT,  # Auto-Reply
    70: SOFT,  # Transient Failure
    80: BLOCK,  # Subscribe
    90: HARD,  # Unsubscribe
    100: SOFT,  # Challenge-Response
}


class SparkPost(Provider):
    name = "sparkpost"

    def configured(self, settings: Settings) -> bool:
        return bool(settings.sparkpost_webhook_password or settings.sparkpost_webhook_token)

    def verify(self, request: HookRequest, context: Context) -> None:
        settings = context.settings
        token = settings.sparkpost_webhook_token
        password = settings.sparkpost_webhook_password
        if token and bearer_token(request) is not None:
            check_bearer(request, token.reveal())
        elif password and basic_auth(request) is not None:
            check_basic(request, settings.sparkpost_webhook_user, password.reveal())
        else:
            raise Refused("no credentials")

    def duplicate(self, request: HookRequest, context: Context) -> bool:
        batch = header(request, BATCH).strip()
        return bool(batch) and context.seen(self.name, batch)

    def settle(self, request: HookRequest, context: Context) -> None:
        batch = header(request, BATCH).strip()
        if batch:
            context.use(self.name, batch, BATCH_KEPT)

    def parse(self, request: HookRequest) -> Parsed:
        return collect(items_of(request.body), _event)


#: The events that say something about consent or a mailbox.
EVENTS = frozenset(
    {"bounce", "out_of_band", "spam_complaint", "list_unsubscribe", "link_unsubscribe"}
)


def _event(item: Any) -> Item:
    msys = item.get("msys") if isinstance(item, dict) else None
    if not isinstance(msys, dict):
        return None
    if not msys:
        return False  # the console's test ping
    event: Any = None
    for group in ("message_event", "unsubscribe_event"):
        if isinstance(msys.get(group), dict):
            event = msys[group]
    if event is None:
        return False  # track, gen, relay, ingest events: nothing about consent
    opened = opening(event, "type", EVENTS, "rcpt_to", "event_id")
    if not opened:
        return opened
    kind, address, ident = opened
    details: dict[str, Any] = {"event": kind}
    if kind == "spam_complaint":
        fbtype = text(event.get("fbtype"), 40).lower()
        details["feedback-type"] = fbtype
        found = Kind.NOT_SPAM if fbtype == "not-spam" else Kind.COMPLAINT
        return EspFinding(found, address, ident, details)
    if kind in ("list_unsubscribe", "link_unsubscribe"):
        return EspFinding(Kind.UNSUBSCRIBE, address, ident, details)
    raw = event.get("bounce_class")
    bounce_class = int(raw) if isinstance(raw, (int, str)) and str(raw).isdigit() else None
    if bounce_class is None or bounce_class > 1000:
        return None
    says = BOUNCE_CLASSES.get(bounce_class, UNSAID)
    said = text(event.get("raw_reason")) or text(event.get("reason"))
    status = text(event.get("error_code"), 10)
    found, why = judge(says, "", f"{status} {said}".strip())
    details.update(why, bounce_class=bounce_class)
    return EspFinding(found, address, ident, details)


PROVIDER = SparkPost()
