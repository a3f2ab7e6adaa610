"""``POST /hooks/{provider}``: bounces, complaints and unsubscribes that email
service providers post, turned into the findings inbound mail produces.

One small module per provider (``ses``, ``sendgrid``, ``mailgun``,
``postmark``, ``resend``, ``sparkpost``, ``brevo``, ``mailjet``) does two
things: ``verify`` checks the request the way the provider documents it
(a signature, a shared secret), raising ``Refused`` (401, nothing recorded);
then ``parse`` reads the verified payload into ``EspFinding``s. A provider
whose secret is not set answers 404: the door does not exist.

Diagnostic texts and status codes go through the verdict inbound DSNs get
(``adieu.feedback.vocabulary.decide``), weighed with what the provider says
(``judge``): a provider's "permanent" bounce whose text says a blocklist or a
policy refused the mail is the sender's side, never a dead address.

Each finding is recorded through the ledger like inbound mail's (channel
``esp``; the provider and its event id in the event's details), so the
ledger's consent rules hold: a resubscribe lifts only the person's own "no",
never a complaint or a hard bounce, and never an erasure. The provider's event
id and the recipient's keyed hash are claimed in ``esp_events`` first, so a
redelivered event is recorded once; a request's claims, findings and marks
are one transaction, and the answer is a 2xx only after it is committed
(providers retry anything else). A batch with a malformed item records the
others and counts it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from adieu.addresses import canonical_or_none, mask_all
from adieu.errors import Erased, InvalidAddress, InvalidInput, UnknownTopic
from adieu.i18n import admin_text as _
from adieu.ledger import Channel, EventType
from adieu.scopes import ALL
from adieu.settings import Settings

if TYPE_CHECKING:
    from fastapi import Request, Response
    from sqlalchemy.engine import Connection

    from adieu.service import Adieu

#: How far a signed timestamp may be from now, either way (seconds).
WINDOW_S = 600
#: A pending claim older than this belongs to a process that died: taken over.
STALE_CLAIM = timedelta(minutes=5)
#: The longest event id kept as is (longer ones are kept as their SHA-256).
_ID_LIMIT = 200


class Kind(StrEnum):
    """What one provider event means for one recipient."""

    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    REJECTION = "rejection"  # the sender's side: recorded, nobody suppressed
    COMPLAINT = "complaint"
    NOT_SPAM = "not_spam"
    UNSUBSCRIBE = "unsubscribe"
    RESUBSCRIBE = "resubscribe"


@dataclass(frozen=True, slots=True)
class EspFinding:
    """One recipient of one provider event, and what it means."""

    kind: Kind
    address: str  # canonical
    event_id: str
    details: dict[str, Any] = field(default_factory=dict)
    #: For an unsubscribe or resubscribe: a topic key the event names, if any.
    topic: str | None = None
    #: The event is about one of the provider's lists (a SendGrid group): when
    #: no Adieu topic stands for it, an unsubscribe stops all marketing and a
    #: resubscribe lifts nothing.
    listed: bool = False


@dataclass(slots=True)
class Parsed:
    """What a verified payload holds."""

    findings: list[EspFinding] = field(default_factory=list)
    #: Events with nothing to record (deliveries, opens, a test ping).
    ignored: int = 0
    #: Items that could not be read (the others are recorded).
    malformed: int = 0
    #: SNS: the SubscribeURL of a subscription to confirm.
    confirm: str | None = None


@dataclass(frozen=True, slots=True)
class HookRequest:
    """What a provider's check and reader see: headers (lower-case names) and the raw body."""

    headers: Mapping[str, str]
    body: bytes


class Refused(Exception):
    """The request did not prove it came from the provider (401)."""


class Malformed(Exception):
    """The payload, as a whole, is not the provider's (400)."""


class Context:
    """What a provider's check may consult: the settings, the clock, the
    single-use values already seen, and (SNS) the certificate fetcher."""

    def __init__(self, adieu: Adieu, fetch: Callable[[str], bytes] | None = None) -> None:
        self.adieu = adieu
        self.settings: Settings = adieu.settings
        self._fetch = fetch

    def now(self) -> datetime:
        return self.adieu.ledger.now()

    def fresh(self, timestamp: str) -> bool:
        """Whether a signed Unix ``timestamp`` is within the window of now."""
        try:
            value = int(timestamp.strip())
        except (ValueError, AttributeError):
            return False
        return abs(self.now().timestamp() - value) <= WINDOW_S

    def fetch(self, url: str) -> bytes:
        """GET ``url`` over verified HTTPS (the caller checked its host)."""
        if self._fetch is not None:
            return self._fetch(url)
        import ssl

        import httpx

        ca = self.settings.sns_test_ca_file
        verify = ssl.create_default_context(cafile=str(ca)) if ca else True
        response = httpx.get(url, timeout=10.0, verify=verify, follow_redirects=False)
        response.raise_for_status()
        return response.content

    def seen(self, provider: str, value: str) -> bool:
        """Whether single-use ``value`` was used already (and has not expired)."""
        from sqlalchemy import select

        from adieu.ledger import schema as t

        nonces = t.esp_nonces
        with self.adieu.engine.connect() as conn:
            row = conn.execute(
                select(nonces.c.until).where(
                    nonces.c.provider == provider, nonces.c.nonce == _digest(value)
                )
            ).first()
        return row is not None and row.until > self.now()

    def use(self, provider: str, value: str, keep: timedelta) -> None:
        """Remember ``value`` as used until ``keep`` from now (and forget expired ones)."""
        from sqlalchemy import delete, update

        from adieu.ledger import schema as t
        from adieu.ledger.base import _dialect_insert
        from adieu.ledger.database import WRITE

        nonces = t.esp_nonces
        now = self.now()
        engine = self.adieu.engine
        with engine.execution_options(**{WRITE: True}).begin() as conn:
            conn.execute(delete(nonces).where(nonces.c.until < now))
            inserted = conn.execute(
                _dialect_insert(engine.dialect.name)(nonces)
                .values(provider=provider, nonce=_digest(value), until=now + keep)
                .on_conflict_do_nothing(index_elements=["provider", "nonce"])
                .returning(nonces.c.until)
            ).first()
            if inserted is None:
                conn.execute(
                    update(nonces)
                    .where(nonces.c.provider == provider, nonces.c.nonce == _digest(value))
                    .values(until=now + keep)
                )


class Provider:
    """One provider's door. Subclasses set ``name`` and implement the three steps."""

    name = ""

    def configured(self, settings: Settings) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def verify(self, request: HookRequest, context: Context) -> None:  # pragma: no cover
        """Raise ``Refused`` unless the request is the provider's own."""
        raise NotImplementedError

    def parse(self, request: HookRequest) -> Parsed:  # pragma: no cover - abstract
        """The findings of a verified request; ``Malformed`` when it is not the
        provider's shape at all. Never anything else."""
        raise NotImplementedError

    def settle(self, request: HookRequest, context: Context) -> None:
        """After the findings are committed: remember single-use values."""

    def duplicate(self, request: HookRequest, context: Context) -> bool:
        """Whether the whole request was handled already (SparkPost's batch id)."""
        return False

    def topic_of(self, finding: EspFinding, settings: Settings) -> str | None:
        """The Adieu topic an (un)subscribe names (its key), if any."""
        return finding.topic


# -- helpers the providers share -------------------------------------------------------------


def header(request: HookRequest, name: str) -> str:
    return request.headers.get(name.lower(), "")


def same(given: str | bytes, expected: str | bytes) -> bool:
    """Constant-time comparison (of text as UTF-8)."""
    a = given.encode("utf-8", "surrogateescape") if isinstance(given, str) else given
    b = expected.encode("utf-8", "surrogateescape") if isinstance(expected, str) else expected
    return hmac.compare_digest(a, b)


def basic_auth(request: HookRequest) -> tuple[str, str] | None:
    """The user and password of an ``Authorization: Basic`` header."""
    scheme, _, value = header(request, "authorization").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def bearer_token(request: HookRequest) -> str | None:
    scheme, _, value = header(request, "authorization").strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def check_basic(request: HookRequest, user: str | None, password: str) -> None:
    """Refuse unless Basic credentials match (both compared, in constant time)."""
    given = basic_auth(request)
    if given is None:
        raise Refused("no Basic credentials")
    good_user = same(given[0], user or "")
    good_password = same(given[1], password)
    if not (good_user and good_password):
        raise Refused("wrong Basic credentials")


def check_bearer(request: HookRequest, token: str) -> None:
    given = bearer_token(request)
    if given is None or not same(given, token):
        raise Refused("no or wrong bearer token")


def json_of(body: bytes) -> Any:
    """The body as JSON, or ``Malformed``."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise Malformed("not JSON") from None


def items_of(body: bytes) -> list[Any]:
    """A JSON array's items, or a single object as one item."""
    data = json_of(body)
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        return [data]
    raise Malformed("neither a JSON object nor an array")


#: What reading one item gives: a finding, ``False`` (nothing to record:
#: a delivery, an open) or ``None`` (malformed).
Item = EspFinding | Literal[False] | None


def collect(items: Iterable[Any], read: Callable[[Any], Item]) -> Parsed:
    """The findings of a batch, read item by item; malformed ones are counted."""
    parsed = Parsed()
    for item in items:
        found = read(item)
        if found is None:
            parsed.malformed += 1
        elif found is False:
            parsed.ignored += 1
        else:
            parsed.findings.append(found)
    return parsed


def text(value: Any, limit: int = 2000) -> str:
    """A value from a payload as text (numbers too), or ""."""
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, (str, int, float)):
        return str(value)[:limit]
    return ""


def address_of(value: Any) -> str | None:
    """A recipient's canonical address (``Name <a@b>`` too), or ``None``."""
    raw = text(value, 400).strip()
    if "<" in raw and raw.endswith(">"):
        raw = raw[raw.rfind("<") + 1 : -1]
    return canonical_or_none(raw) if raw else None


def event_id(*parts: Any) -> str:
    """The provider's event id, kept as given (joined with ``/`` when it is
    made of several fields); a long one is kept as its SHA-256."""
    joined = "/".join(text(p, 10_000) for p in parts)
    if len(joined) <= _ID_LIMIT:
        return joined
    return "sha256:" + hashlib.sha256(joined.encode("utf-8", "surrogateescape")).hexdigest()


def content_id(item: Any) -> str:
    """An id for an event that carries none: its content's SHA-256 (a
    redelivery carries the same content)."""
    canon = json.dumps(item, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canon.encode("utf-8", "surrogateescape")).hexdigest()


def opening(
    event: Mapping[str, Any], kind_field: str, kinds: frozenset[str], to: str, id_field: str
) -> tuple[str, str, str] | Literal[False] | None:
    """The steps an event of one of the providers that name each event's
    kind, recipient and id in fields of their own starts with: the kind (one
    of ``kinds``; another: ``False``, nothing to record; none: ``None``,
    malformed), the recipient's address from ``to`` (none: malformed), and
    the provider's id for the event (or one made from its content)."""
    kind = text(event.get(kind_field)).lower()
    if kind not in kinds:
        return False if kind else None
    address = address_of(event.get(to))
    if address is None:
        return None
    ident = event_id(event[id_field]) if text(event.get(id_field)) else content_id(event)
    return kind, address, ident


#: What a provider says a bounce is: hard, soft, a block (the sender's side), or nothing.
HARD, SOFT, BLOCK, UNSAID = "hard", "soft", "block", ""


def judge(says: str, status: str = "", diagnostic: str = "") -> tuple[Kind, dict[str, Any]]:
    """A bounce's kind from what the provider ``says`` and the verdict the
    status code and diagnostic text get as an inbound DSN would. A provider's
    hard bounce whose text names a sender-side cause (a blocklist, a policy)
    is a rejection, and one whose evidence is temporary (a full mailbox) soft;
    a soft one is never made hard; a block is always the sender's side."""
    from adieu.feedback import vocabulary

    verdict = vocabulary.decide(status, diagnostic)
    sender_side = verdict.kind == vocabulary.REJECTION and verdict.basis != "default"
    found: str
    if says == BLOCK:
        found = vocabulary.REJECTION
    elif says == HARD:
        if sender_side:
            found = vocabulary.REJECTION
        elif verdict.kind == vocabulary.SOFT and verdict.basis != "default":
            found = vocabulary.SOFT
        else:
            found = vocabulary.HARD
    elif says == SOFT:
        found = vocabulary.REJECTION if sender_side else vocabulary.SOFT
    else:
        found = vocabulary.REJECTION if verdict.kind == vocabulary.DELIVERED else verdict.kind
    details: dict[str, Any] = verdict.details()
    if found != verdict.kind:
        details["basis"] = "provider"
    if diagnostic.strip():
        details["diagnostic"] = mask_all(" ".join(diagnostic.split()))[:300]
    return Kind(found), details


# -- the registry ---------------------------------------------------------------------------


def providers() -> dict[str, Provider]:
    """Every provider's door, by the name in its URL."""
    from adieu.esp.hooks import (
        brevo,
        mailgun,
        mailjet,
        postmark,
        resend,
        sendgrid,
        ses,
        sparkpost,
    )

    found = (
        ses.PROVIDER,
        sendgrid.PROVIDER,
        mailgun.PROVIDER,
        postmark.PROVIDER,
        resend.PROVIDER,
        sparkpost.PROVIDER,
        brevo.PROVIDER,
        mailjet.PROVIDER,
    )
    return {p.name: p for p in found}


def configured(settings: Settings) -> list[str]:
    """The providers whose webhooks this installation takes."""
    return [name for name, p in providers().items() if p.configured(settings)]


# -- recording -----------------------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    """What one request did (the answer's body)."""

    recorded: int = 0
    duplicates: int = 0
    ignored: int = 0
    malformed: int = 0

    def body(self) -> dict[str, int]:
        return {
            "recorded": self.recorded,
            "duplicates": self.duplicates,
            "ignored": self.ignored,
            "malformed": self.malformed,
        }


class Hooks:
    """The door: authenticate, read, record (see the module)."""

    def __init__(self, adieu: Adieu, fetch: Callable[[str], bytes] | None = None) -> None:
        self.adieu = adieu
        self.context = Context(adieu, fetch)
        self._providers = providers()

    def handle(self, name: str, headers: Mapping[str, str], body: bytes) -> Outcome:
        """Everything for one request, synchronously. ``ApiError`` for what
        the caller is answered (404, 401, 400); database trouble raises."""
        from adieu.web.errors import ApiError

        provider = self._providers.get(name)
        if provider is None or not provider.configured(self.adieu.settings):
            raise ApiError(404, "not_found", _("There is nothing at this address."))
        request = HookRequest({k.lower(): v for k, v in headers.items()}, body)
        try:
            provider.verify(request, self.context)
        except Refused:
            raise ApiError(
                401,
                "unauthorized",
                _("This request does not carry the provider's valid signature or credentials."),
            ) from None
        if provider.duplicate(request, self.context):
            return Outcome(duplicates=1)
        try:
            parsed = provider.parse(request)
        except Malformed:
            raise ApiError(
                400, "invalid_payload", _("The request's body is not this provider's payload.")
            ) from None
        if parsed.confirm is not None:
            self._confirm(parsed.confirm)
        outcome = self.record(provider.name, parsed.findings)
        outcome.ignored += parsed.ignored
        outcome.malformed += parsed.malformed
        provider.settle(request, self.context)
        return outcome

    def _confirm(self, url: str) -> None:
        from adieu.web.errors import ApiError

        try:
            self.context.fetch(url)
        except Exception:
            raise ApiError(
                503,
                "unavailable",
                _("The subscription could not be confirmed just now; please retry."),
                headers={"Retry-After": "60"},
            ) from None

    def record(self, provider: str, findings: Iterable[EspFinding]) -> Outcome:
        """Record each finding once (see the module), all of one request in
        one transaction (``Ledger.together``): the claims of its (event id,
        recipient) pairs, every finding through the ledger, and the claims
        marked recorded. One commit for a batch of any size; and a crash or a
        database failure anywhere in it leaves nothing, so the provider's
        retry records everything, once. A finding the ledger refuses as
        invalid (an address it cannot take) writes nothing and is counted
        as malformed; the others stand."""
        outcome = Outcome()
        ledger = self.adieu.ledger
        keyed: dict[tuple[str, bytes], EspFinding] = {}
        for finding in findings:
            key = (finding.event_id, ledger.hasher.hash(finding.address))
            if key in keyed:
                outcome.duplicates += 1  # the same event twice in one request
            else:
                keyed[key] = finding
        if not keyed:
            return outcome
        with ledger.together() as conn:
            claimed = self._claim(conn, provider, list(keyed))
            outcome.duplicates += len(keyed) - len(claimed)
            for key in claimed:
                try:
                    with conn.begin_nested():  # a refused one leaves nothing
                        applied = self._apply(provider, keyed[key])
                except (InvalidAddress, InvalidInput):
                    outcome.malformed += 1
                    continue
                if applied:
                    outcome.recorded += 1
                else:
                    outcome.ignored += 1
            self._settle(conn, provider, claimed)
        return outcome

    def _apply(self, provider: str, finding: EspFinding) -> bool:
        """Record one finding through the ledger; whether anything was recorded."""
        ledger = self.adieu.ledger
        details = {
            **finding.details,
            "provider": provider,
            "event_id": finding.event_id,
            "recipient_from": f"{provider} webhook",  # what ``adieu status`` says named them
        }
        address = finding.address
        kind = finding.kind
        if kind in (Kind.HARD_BOUNCE, Kind.SOFT_BOUNCE):
            ledger.record_bounce(
                address, hard=kind == Kind.HARD_BOUNCE, channel=Channel.ESP, details=details
            )
        elif kind == Kind.COMPLAINT:
            ledger.record_complaint(address, channel=Channel.ESP, details=details)
        elif kind == Kind.NOT_SPAM:
            ledger.record_event(address, EventType.NOT_SPAM, channel=Channel.ESP, details=details)
        elif kind == Kind.REJECTION:
            ledger.record_event(address, EventType.REJECTION, channel=Channel.ESP, details=details)
        elif kind == Kind.UNSUBSCRIBE:
            topic = self._topic(self._providers[provider].topic_of(finding, self.adieu.settings))
            ledger.unsubscribe(address, topic or ALL, channel=Channel.ESP, details=details)
        elif kind == Kind.RESUBSCRIBE:
            topic = self._topic(self._providers[provider].topic_of(finding, self.adieu.settings))
            if finding.listed and topic is None:
                return False  # a list Adieu does not know: lifting all marketing is too much
            try:
                ledger.resubscribe(address, topic or ALL, channel=Channel.ESP, details=details)
            except Erased:
                return False  # erasure is final
        return True

    def _topic(self, key: str | None) -> str | None:
        if not key:
            return None
        try:
            return self.adieu.ledger.topic(key).key
        except UnknownTopic:
            return None

    # -- claims (esp_events) --

    def _claim(
        self, conn: Connection, provider: str, keys: list[tuple[str, bytes]]
    ) -> list[tuple[str, bytes]]:
        """Claim each (event id, recipient) for recording in ``conn``'s
        transaction: the ones claimed, in the order given. Not claimed:
        recorded already, or being recorded by another request right now
        (its transaction holds the rows until it commits or rolls back). A
        pending claim older than ``STALE_CLAIM``, which only a process that
        died between steps could have left, is taken over."""
        from sqlalchemy import and_, or_, update

        from adieu.ledger import schema as t
        from adieu.ledger.base import _dialect_insert

        rows = t.esp_events
        now = self.adieu.ledger.now()
        insert = _dialect_insert(self.adieu.engine.dialect.name)
        got: set[tuple[str, bytes]] = set()
        for start in range(0, len(keys), 200):
            part = keys[start : start + 200]
            inserted = conn.execute(
                insert(rows)
                .values(
                    [
                        {
                            "provider": provider,
                            "event_id": event,
                            "recipient": digest,
                            "state": "pending",
                            "claimed_at": now,
                        }
                        for event, digest in part
                    ]
                )
                .on_conflict_do_nothing(index_elements=["provider", "event_id", "recipient"])
                .returning(rows.c.event_id, rows.c.recipient)
            )
            got.update((event, bytes(digest)) for event, digest in inserted)
            rest = [key for key in part if key not in got]
            if not rest:
                continue
            taken = conn.execute(
                update(rows)
                .where(
                    rows.c.provider == provider,
                    or_(*(and_(rows.c.event_id == e, rows.c.recipient == d) for e, d in rest)),
                    rows.c.state == "pending",
                    rows.c.claimed_at < now - STALE_CLAIM,
                )
                .values(claimed_at=now)
                .returning(rows.c.event_id, rows.c.recipient)
            )
            got.update((event, bytes(digest)) for event, digest in taken)
        return [key for key in keys if key in got]

    def _settle(self, conn: Connection, provider: str, keys: list[tuple[str, bytes]]) -> None:
        """Mark the claims recorded, in ``conn``'s transaction."""
        from sqlalchemy import and_, or_, update

        from adieu.ledger import schema as t

        rows = t.esp_events
        for start in range(0, len(keys), 200):
            part = keys[start : start + 200]
            which = or_(*(and_(rows.c.event_id == e, rows.c.recipient == d) for e, d in part))
            conn.execute(
                update(rows).where(rows.c.provider == provider, which).values(state="recorded")
            )


class HookDoor:
    """The route's handler (``adieu.web.app``): ``POST /hooks/{provider}``."""

    def __init__(self, adieu: Adieu) -> None:
        self.hooks = Hooks(adieu)

    async def receive(self, request: Request) -> Response:
        from fastapi.responses import JSONResponse
        from starlette.concurrency import run_in_threadpool

        name = str(request.path_params.get("provider", ""))
        body = await request.body()
        headers = {k: v for k, v in request.headers.items()}
        outcome = await run_in_threadpool(self.hooks.handle, name, headers, body)
        return JSONResponse(outcome.body())


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()
