"""``Stamper``: one recipient's compliant, signed copy of a message."""

from __future__ import annotations

from adieu.mail.dkim import DKIMKey, DKIMSigner, key_path, load_key
from adieu.mail.stamp import SMTP, Footer, feedback_id, locale_of, parse, set_headers
from adieu.service import Adieu


class Stamper:
    def __init__(self, adieu: Adieu) -> None:
        self.adieu = adieu
        settings = adieu.settings
        self.footer = Footer(settings.footer_position, settings.emphasis)
        self.signer = signer_for(adieu)

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
        settings = self.adieu.settings
        message = parse(data)
        locale = locale or locale_of(message, settings.default_locale)
        link = self.adieu.link(to, topic=topic, campaign=campaign, locale=locale)
        set_headers(message, link, feedback_id(campaign, topic, settings.feedback_sender))
        self.footer.apply(message, link, locale)
        out = message.as_bytes(policy=SMTP)
        return self.signer.sign(out) if self.signer else out


def signer_for(adieu: Adieu) -> DKIMSigner | None:
    """The signer for the configured domain: the RSA key, plus Ed25519 if present."""
    settings = adieu.settings
    if not settings.dkim_domain:
        return None
    keys = [
        DKIMKey(
            settings.dkim_selector, load_key(key_path(settings.data_dir, settings.dkim_selector))
        )
    ]
    ed = key_path(settings.data_dir, settings.dkim_selector, ed25519_key=True)
    if ed.exists():
        keys.append(DKIMKey(f"{settings.dkim_selector}-ed25519", load_key(ed)))
    return DKIMSigner(settings.dkim_domain, keys)
