"""``Adieu``: the one object every door talks to (settings, keys, ledger, policy).

Like datasette's ``Datasette``, it is built from settings once; the CLI, the web
app and the mail doors only turn their input into calls on it. Each part is
built (and its modules imported) on first use, so a command starts with only
what it needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from adieu import keys
from adieu.addresses import AddressHasher, canonical
from adieu.scopes import ALL
from adieu.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from adieu.ledger import Ledger
    from adieu.ledger.apikeys import ApiKeys
    from adieu.ledger.outbox import Outbox
    from adieu.ledger.relaylog import RelayLog
    from adieu.ledger.stats import Stats
    from adieu.policy import Policy
    from adieu.tokens import TokenCodec

ONE_CLICK = "List-Unsubscribe=One-Click"
#: The local part of a return path before its compact token (``Adieu.return_path``);
#: with the token, 56 octets (RFC 5321 allows 64).
RETURN_PATH_PREFIX = "bounces+"


@dataclass(frozen=True, slots=True)
class Link:
    """An unsubscribe link and the header values that carry it (RFC 2369, RFC 8058)."""

    token: str
    url: str
    preferences_url: str
    headers: dict[str, str]
    #: The compact token (``adieu.tokens``) of the mailto and CFBL-Feedback-ID,
    #: when ``ADIEU_MAILTO_DOMAIN`` or ``ADIEU_COMPLAINT_ADDRESS`` is set.
    compact: str | None = None


class Adieu:
    def __init__(self, settings: Settings | None = None, *, migrate: bool = True) -> None:
        self.settings = settings or Settings()
        self._migrate = migrate

    @cached_property
    def keyring(self) -> keys.KeyRing:
        return keys.load_or_create(self.settings.key_path)

    @cached_property
    def codec(self) -> TokenCodec:
        from adieu.tokens import TokenCodec  # AES-GCM: only where links are made or opened

        return TokenCodec(self.keyring.token_keys)

    @cached_property
    def hasher(self) -> AddressHasher:
        return AddressHasher(self.keyring.hash_key)

    @cached_property
    def engine(self) -> Engine:
        from adieu.ledger.database import make_engine, upgrade

        engine = make_engine(self.settings.sqlalchemy_url)
        if self._migrate:
            upgrade(engine)
        return engine

    @cached_property
    def ledger(self) -> Ledger:
        from adieu.ledger.store import Ledger

        ledger = Ledger(
            self.engine,
            self.hasher,
            soft_bounce_limit=self.settings.soft_bounce_limit,
            soft_bounce_days=self.settings.soft_bounce_days,
        )
        from adieu.esp.push import configured

        if configured(self.settings):
            from adieu.esp.push.queue import Targets

            ledger.esp_targets = Targets.from_settings(self.settings)
        return ledger

    @cached_property
    def policy(self) -> Policy:
        from adieu.policy.gate import Policy

        return Policy(self.ledger)

    @cached_property
    def api_keys(self) -> ApiKeys:
        from adieu.ledger.apikeys import ApiKeys

        return ApiKeys(self.engine, self.ledger.now)

    @cached_property
    def outbox(self) -> Outbox:
        from adieu.ledger.outbox import Outbox

        return Outbox(self.engine, self.ledger.now)

    @cached_property
    def relay_log(self) -> RelayLog:
        from adieu.ledger.relaylog import RelayLog

        return RelayLog(self.engine, self.hasher, self.ledger.now)

    @cached_property
    def stats(self) -> Stats:
        from adieu.ledger.stats import Stats

        return Stats(self.engine)

    def link(
        self,
        address: str,
        topic: str | None = None,
        campaign: str | None = None,
        locale: str | None = None,
    ) -> Link:
        """Mint a link for one recipient. Writes nothing to the ledger, and
        reads it only to check that a named topic exists and is not retired."""
        from adieu.tokens import check_campaign, check_locale

        scope = self.ledger.send_scope(topic) or ALL
        address = canonical(address)
        campaign = check_campaign(campaign)
        token = self.codec.mint(address, scope, campaign, check_locale(locale))
        compact = None
        if self.settings.mailto_domain or self.settings.complaint_address:
            compact = self.codec.mint_compact(self.hasher.hash(address), scope, campaign)
        return self.link_for_token(token, compact)

    def link_for_token(self, token: str, compact: str | None = None) -> Link:
        """The link and header values for ``token``; the mailto carries
        ``compact`` (the full token when none is given)."""
        base = self.settings.base
        url = f"{base}/u/{token}"
        targets = [f"<{url}>"]
        if self.settings.mailto_domain:
            local = f"unsubscribe+{compact or token}"
            targets.append(f"<mailto:{local}@{self.settings.mailto_domain}>")
        return Link(
            token=token,
            url=url,
            preferences_url=f"{base}/p/{token}",
            headers={
                "List-Unsubscribe": ", ".join(targets),
                "List-Unsubscribe-Post": ONE_CLICK,
            },
            compact=compact,
        )

    def return_path(
        self, address: str, topic: str | None = None, campaign: str | None = None
    ) -> str | None:
        """The envelope sender for one recipient's copy: ``bounces+TOKEN@`` the
        ``ADIEU_BOUNCE_DOMAIN``, with a compact token (``adieu.tokens``) naming
        the recipient, topic and campaign, so a bounce to it names its
        recipient exactly and cannot be forged (VERP). ``None`` when the
        setting is unset (keep the sender's own). Writes nothing; reads the
        ledger only for a named topic (cached)."""
        domain = self.settings.bounce_domain
        if not domain:
            return None
        from adieu.tokens import RETURN_PATH, check_campaign

        scope = self.ledger.check_scope(topic)
        digest = self.hasher.hash(canonical(address))
        token = self.codec.mint_compact(
            digest, scope, check_campaign(campaign), purpose=RETURN_PATH
        )
        return f"{RETURN_PATH_PREFIX}{token}@{domain}"

    def close(self) -> None:
        if "ledger" in self.__dict__:
            self.ledger.close()
        if "relay_log" in self.__dict__:
            self.relay_log.close()
        if "engine" in self.__dict__:
            self.engine.dispose()
