"""Scopes of consent: all marketing, or one topic (by its key)."""

from __future__ import annotations

import re

#: The scope of an unsubscribe from all marketing email.
ALL = "all"
#: What a topic key may look like (it travels inside tokens and URLs).
TOPIC_KEY = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
