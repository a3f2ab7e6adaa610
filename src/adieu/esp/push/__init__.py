"""Adieu's decisions out to the email service providers' suppression lists.

Every unsubscribe, complaint and hard bounce the ledger records, by any door,
is queued in ``esp_pushes`` in the same transaction as its event, once for
each configured provider (``queue``); a resubscribe or an operator's lift
that leaves nothing held queues the removal of the provider's entry. A
deliverer (``deliver``, inside ``adieu serve`` beside the webhook deliverer,
or ``adieu esp run``) makes the provider's documented API call
(``providers``): leased, in order per address, retried with backoff on 5xx,
timeouts and 429 (after its ``Retry-After``), kept as a dead letter when
the provider refuses it for good or the attempts run out.

This module stays light: the ledger asks it which providers are configured
on every write that records such a decision.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from adieu.settings import Settings

SES, SENDGRID, MAILGUN, POSTMARK = "ses", "sendgrid", "mailgun", "postmark"
PROVIDERS: Final = (SES, SENDGRID, MAILGUN, POSTMARK)

ADD, REMOVE = "add", "remove"
#: What an added entry stands for.
UNSUBSCRIBE, COMPLAINT, BOUNCE = "unsubscribe", "complaint", "bounce"


def configured(settings: Settings) -> tuple[str, ...]:
    """The providers whose push settings are set, in a fixed order."""
    found: list[str] = []
    if settings.ses_region and os.environ.get("AWS_ACCESS_KEY_ID"):
        found.append(SES)
    if settings.sendgrid_api_key:
        found.append(SENDGRID)
    if settings.mailgun_api_key and settings.mailgun_domain:
        found.append(MAILGUN)
    if settings.postmark_server_token:
        found.append(POSTMARK)
    return tuple(found)


def sendgrid_groups(settings: Settings) -> dict[str, int]:
    """``ADIEU_SENDGRID_GROUPS`` as {topic: group id}."""
    groups: dict[str, int] = {}
    for part in settings.sendgrid_groups.split(","):
        topic, sep, group = part.partition("=")
        if sep:
            groups[topic.strip()] = int(group.strip())
    return groups
