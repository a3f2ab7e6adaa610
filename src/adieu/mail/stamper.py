"""``Stamper``: one recipient's compliant, signed copy of a message.

A sender usually sends the same message to many people, one transaction
each. The first copy is stamped in full with a marker where the token goes;
when every marked part is plain 7-bit text (so the marker stands verbatim in
the output), later copies only swap in their own token and are signed — the
same bytes as a full stamp, at a fraction of the cost. The template is
read and canonicalised for DKIM once too (``DKIMSigner.prepare``), so a
copy is not parsed again to be signed. Otherwise every copy is stamped in
full.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from email.message import EmailMessage

from adieu.mail.dkim import DKIMKey, DKIMSigner, Prepared, key_path, load_key
from adieu.mail.stamp import (
    ALL_LABEL,
    SMTP,
    Footer,
    body_parts,
    cfbl_aligned,
    feedback_id,
    list_id,
    list_id_domain,
    locale_of,
    parse,
    set_headers,
)
from adieu.scopes import ALL
from adieu.service import Adieu, Link
from adieu.tokens import check_campaign

_TEMPLATES = 64
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Template:
    data: bytes | None  # None: this message must be stamped in full every time
    marker: bytes = b""  # where the token goes
    compact_marker: bytes = b""  # where the compact token goes (mailto, CFBL-Feedback-ID)
    locale: str | None = None

    @property
    def markers(self) -> tuple[bytes, ...]:
        return (self.marker, self.compact_marker) if self.compact_marker else (self.marker,)

    #: The template read for signing, by the signer it was read for.
    prepared: Prepared | None = None


class Stamper:
    def __init__(self, adieu: Adieu) -> None:
        self.adieu = adieu
        settings = adieu.settings
        self.footer = Footer(settings.footer_position, settings.emphasis)
        self.signer = signer_for(adieu)
        self.list_id_domain = list_id_domain(settings.base_url)
        self._templates: OrderedDict[tuple[object, ...], _Template] = OrderedDict()
        self._unaligned: set[str] = set()

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
            link = self.adieu.link(to, topic=topic, campaign=campaign, locale=template.locale)
            values = [link.token.encode("ascii")]
            if template.compact_marker:
                assert link.compact is not None  # the same settings asked for one
                values.append(link.compact.encode("ascii"))
            prepared = template.prepared
            if prepared is not None and self.signer is prepared.signer:
                return prepared.sign(values)
            out = template.data
            for marker, value in zip(template.markers, values, strict=False):
                out = out.replace(marker, value)
        return self.signer.sign(out) if self.signer else out

    def _stamp_in_full(
        self, data: bytes, to: str, topic: str | None, campaign: str | None, locale: str | None
    ) -> bytes:
        settings = self.adieu.settings
        message = parse(data)
        locale = locale or locale_of(message, settings.default_locale)
        link = self.adieu.link(to, topic=topic, campaign=campaign, locale=locale)
        self._set_headers(message, link, topic, campaign)
        self.footer.apply(message, link, locale)
        return message.as_bytes(policy=SMTP)

    def _set_headers(
        self, message: EmailMessage, link: Link, topic: str | None, campaign: str | None
    ) -> bool:
        """The list headers of one copy; whether CFBL-Address was set."""
        settings = self.adieu.settings
        if topic is None or topic == ALL:
            name, label = settings.sender_name, ALL_LABEL
        else:
            name, label = self.adieu.ledger.topic(topic).name, topic
        cfbl = None
        complaint = settings.complaint_address
        if complaint and link.compact is not None:
            if cfbl_aligned(complaint, message):
                cfbl = (complaint, link.compact)
            else:
                self._say_unaligned(complaint, message)
        set_headers(
            message,
            link,
            feedback_id(campaign, topic, settings.feedback_sender),
            list_id=list_id(name, label, self.list_id_domain),
            cfbl=cfbl,
        )
        return cfbl is not None

    def _say_unaligned(self, complaint: str, message: EmailMessage) -> None:
        author = str(message.get("From", ""))
        if author not in self._unaligned:  # once per sender, not once per copy
            self._unaligned.add(author)
            log.warning(
                "CFBL-Address left out: the domain of %s is not the From domain or below it "
                "(RFC 9477 §3.1), in mail from %s",
                complaint,
                author,
            )

    def _prepare(
        self, data: bytes, topic: str | None, campaign: str | None, locale: str | None
    ) -> _Template:
        settings = self.adieu.settings
        message = parse(data)
        locale = locale or locale_of(message, settings.default_locale)
        # hex: nothing any encoding would change
        marker = secrets.token_hex(16)
        compact = secrets.token_hex(16)
        self.adieu.ledger.send_scope(topic)
        check_campaign(campaign)
        wants_compact = bool(settings.mailto_domain or settings.complaint_address)
        link = self.adieu.link_for_token(marker, compact if wants_compact else None)
        with_cfbl = self._set_headers(message, link, topic, campaign)
        linked = self.footer.apply(message, link, locale)
        parts = list(body_parts(message))
        out = message.as_bytes(policy=SMTP)
        expected = 1 + sum(str(part.get_payload()).count(marker) for part in parts)
        expected_compact = (bool(settings.mailto_domain) + with_cfbl) if wants_compact else 0
        safe = (
            linked == len(parts)
            and all(
                str(part.get("Content-Transfer-Encoding", "7bit")).lower() in ("7bit", "8bit")
                for part in parts
            )
            and out.count(marker.encode()) == expected
            and out.count(compact.encode()) == expected_compact
            and data.count(marker.encode()) == data.count(compact.encode()) == 0
        )
        if not safe:
            return _Template(None)
        template = _Template(
            out, marker.encode(), compact.encode() if wants_compact else b"", locale
        )
        if self.signer is None:
            return template
        return dataclasses.replace(template, prepared=self.signer.prepare(out, template.markers))


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
