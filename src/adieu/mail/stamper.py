"""``Stamper``: one recipient's compliant, signed copy of a message.

A sender usually sends the same message to many people, one transaction
each. The first copy is stamped in full with a marker where the token goes;
when every marked part is plain 7-bit text (so the marker stands verbatim in
the output), later copies only swap in their own token and are signed — the
same bytes as a full stamp, at a fraction of the cost. Otherwise every copy
is stamped in full.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict
from dataclasses import dataclass

from adieu.mail.dkim import DKIMKey, DKIMSigner, key_path, load_key
from adieu.mail.stamp import (
    SMTP,
    Footer,
    body_parts,
    feedback_id,
    locale_of,
    parse,
    set_headers,
)
from adieu.service import Adieu
from adieu.tokens import check_campaign

_TEMPLATES = 64


@dataclass(frozen=True, slots=True)
class _Template:
    data: bytes | None  # None: this message must be stamped in full every time
    marker: bytes = b""
    locale: str | None = None


class Stamper:
    def __init__(self, adieu: Adieu) -> None:
        self.adieu = adieu
        settings = adieu.settings
        self.footer = Footer(settings.footer_position, settings.emphasis)
        self.signer = signer_for(adieu)
        self._templates: OrderedDict[tuple[object, ...], _Template] = OrderedDict()

    def stamp(
        self,
        data: bytes,
        to: str,
        *,
        topic: str | None = None,
        campaign: str | None = None,
        locale: str | None = None,
    ) -> bytes:
        """Headers, visible link and (when configured) DKIM, for recipient ``to``."""
        key = (hashlib.sha256(data).digest(), topic, campaign, locale)
        template = self._templates.get(key)
        if template is None:
            template = self._prepare(data, topic, campaign, locale)
            self._templates[key] = template
            while len(self._templates) > _TEMPLATES:
                self._templates.popitem(last=False)
        if template.data is None:
            out = self._stamp_in_full(data, to, topic, campaign, locale)
        else:
            token = self.adieu.link(
                to, topic=topic, campaign=campaign, locale=template.locale
            ).token
            out = template.data.replace(template.marker, token.encode("ascii"))
        return self.signer.sign(out) if self.signer else out

    def _stamp_in_full(
        self, data: bytes, to: str, topic: str | None, campaign: str | None, locale: str | None
    ) -> bytes:
        settings = self.adieu.settings
        message = parse(data)
        locale = locale or locale_of(message, settings.default_locale)
        link = self.adieu.link(to, topic=topic, campaign=campaign, locale=locale)
        set_headers(message, link, feedback_id(campaign, topic, settings.feedback_sender))
        self.footer.apply(message, link, locale)
        return message.as_bytes(policy=SMTP)

    def _prepare(
        self, data: bytes, topic: str | None, campaign: str | None, locale: str | None
    ) -> _Template:
        settings = self.adieu.settings
        message = parse(data)
        locale = locale or locale_of(message, settings.default_locale)
        marker = secrets.token_hex(16)  # hex: nothing any encoding would change
        self.adieu.ledger.check_scope(topic)
        check_campaign(campaign)
        link = self.adieu.link_for_token(marker)
        set_headers(message, link, feedback_id(campaign, topic, settings.feedback_sender))
        linked = self.footer.apply(message, link, locale)
        parts = list(body_parts(message))
        out = message.as_bytes(policy=SMTP)
        expected = (1 + bool(settings.mailto_domain)) + sum(
            str(part.get_payload()).count(marker) for part in parts
        )
        safe = (
            linked == len(parts)
            and all(
                str(part.get("Content-Transfer-Encoding", "7bit")).lower() in ("7bit", "8bit")
                for part in parts
            )
            and out.count(marker.encode()) == expected
            and data.count(marker.encode()) == 0
        )
        return _Template(out, marker.encode(), locale) if safe else _Template(None)


def signer_for(adieu: Adieu) -> DKIMSigner | None:
    """The signer for the configured domain: the RSA key, plus Ed25519 if present."""
    settings = adieu.settings
    if not settings.dkim_domain:
        return None
    selector = settings.dkim_selector
    keys = [DKIMKey(selector, load_key(key_path(settings.data_dir, selector)))]
    ed = key_path(settings.data_dir, selector, ed25519_key=True)
    if ed.exists():
        keys.append(DKIMKey(f"{selector}-ed25519", load_key(ed)))
    return DKIMSigner(settings.dkim_domain, keys)
