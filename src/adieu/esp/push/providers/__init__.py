"""Each provider's documented API calls, one module per provider: the
requests that add or remove an entry of its suppression list, how its answers
are read, and the pages of its lists that ``adieu esp sync`` reads. What they
share is in ``base``.

- ``ses``: Amazon SES's account-level suppression list (API v2, SigV4).
- ``sendgrid``: global suppressions and unsubscribe groups.
- ``mailgun``: the domain's unsubscribes, complaints and bounces.
- ``postmark``: the message stream's suppressions.
- ``resend``: contacts' unsubscribed flag and topics.
- ``sparkpost``: the account's suppression list.
- ``brevo``: the contacts' blocklist and lists, and transactional blocks.
- ``mailjet``: contacts excluded from campaigns, and contact lists.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from adieu.esp.push.providers.base import (
    MAX_RETRY_AFTER_S,
    Call,
    Entry,
    Page,
    Provider,
    Unreadable,
    Verdict,
    error_message,
    pages,
    retry_after,
    utc_now,
    verdict,
)
from adieu.settings import Settings

__all__ = [
    "MAX_RETRY_AFTER_S",
    "Call",
    "Entry",
    "Page",
    "Provider",
    "Unreadable",
    "Verdict",
    "error_message",
    "kinds",
    "pages",
    "providers",
    "retry_after",
    "verdict",
]


def kinds() -> list[type[Provider]]:
    """Every provider Adieu can push to, in the fixed order of
    ``adieu.esp.push.PROVIDERS``."""
    from adieu.esp.push.providers.brevo import Brevo
    from adieu.esp.push.providers.mailgun import Mailgun
    from adieu.esp.push.providers.mailjet import Mailjet
    from adieu.esp.push.providers.postmark import Postmark
    from adieu.esp.push.providers.resend import Resend
    from adieu.esp.push.providers.sendgrid import SendGrid
    from adieu.esp.push.providers.ses import SES
    from adieu.esp.push.providers.sparkpost import SparkPost

    return [SES, SendGrid, Mailgun, Postmark, Resend, SparkPost, Brevo, Mailjet]


def providers(settings: Settings, clock: Callable[[], datetime] | None = None) -> list[Provider]:
    """The configured providers."""
    now = clock or utc_now
    found = (kind.from_settings(settings, now) for kind in kinds())
    return [provider for provider in found if provider is not None]
