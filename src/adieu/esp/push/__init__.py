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
RESEND, SPARKPOST, BREVO, MAILJET = "resend", "sparkpost", "brevo", "mailjet"
PROVIDERS: Final = (SES, SENDGRID, MAILGUN, POSTMARK, RESEND, SPARKPOST, BREVO, MAILJET)

ADD, REMOVE = "add", "remove"
#: What an added entry stands for.
UNSUBSCRIBE, COMPLAINT, BOUNCE = "unsubscribe", "complaint", "bounce"


def configured(settings: Settings) -> tuple[str, ...]:
    """The providers whose push settings are set, in a fixed order (what
    ``providers.providers`` builds, without importing any of them)."""
    present = {
        SES: bool(
            settings.ses_region
            and os.environ.get("AWS_ACCESS_KEY_ID")
            and os.environ.get("AWS_SECRET_ACCESS_KEY")
        ),
        SENDGRID: settings.sendgrid_api_key is not None,
        MAILGUN: bool(settings.mailgun_api_key and settings.mailgun_domain),
        POSTMARK: settings.postmark_server_token is not None,
        RESEND: settings.resend_api_key is not None,
        SPARKPOST: settings.sparkpost_api_key is not None,
        BREVO: settings.brevo_api_key is not None,
        MAILJET: bool(settings.mailjet_api_key and settings.mailjet_api_secret),
    }
    return tuple(name for name in PROVIDERS if present[name])
