"""Names that travel in links and the ledger: the scope of consent (all
marketing, or one topic by its key) and campaign ids. Light on purpose: the
ledger checks them without loading the token cipher."""

from __future__ import annotations

import re

from adieu.errors import InvalidInput

#: The scope of an unsubscribe from all marketing email.
ALL = "all"
#: What a topic key may look like (it travels inside tokens and URLs).
TOPIC_KEY = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")

_CAMPAIGN_MAX = 100


def check_campaign(campaign: str | None) -> str | None:
    if campaign is None or campaign == "":
        return None
    if len(campaign) > _CAMPAIGN_MAX or not campaign.isprintable():
        raise InvalidInput("A campaign id is at most 100 printable characters.")
    return campaign
