"""``/api/v1``: contacts, named in URLs by their key: state, history (a
``read`` key), unsubscribe, resubscribe, erase (an ``admin`` key, recorded in
the event's details as ``"by": "key:<id>"``)."""

# No ``from __future__ import annotations`` here: FastAPI reads these
# signatures at run time, and they name objects local to ``routes``.

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from starlette.concurrency import run_in_threadpool
from starlette.convertors import register_url_convertor

from adieu.addresses import canonical
from adieu.errors import Erased
from adieu.feedback.why import summary
from adieu.i18n import admin_text as _
from adieu.ledger import Channel, ContactStatus, Outcome
from adieu.ledger.apikeys import ApiKey
from adieu.service import Adieu
from adieu.times import iso, iso_or_none
from adieu.tokens import ALL
from adieu.web.admin import schemas as s
from adieu.web.admin.api.common import (
    Access,
    ContactKey,
    _out,
    by,
)
from adieu.web.errors import ApiError


def routes(api: APIRouter, adieu: Adieu, access: Access) -> None:
    read = access.read
    admin = access.admin
    ledger = adieu.ledger
    # The key that made the call (the same one the scope check verified).
    caller = Annotated[ApiKey, Depends(access.caller)]

    contact_key = Annotated[
        str,
        Path(
            pattern=s.CONTACT_KEY,
            description="The contact's key (from POST /contacts/lookup).",
            examples=["3f" * 32],
        ),
    ]
    # The route only matches a key (64 hex digits), so that /contacts/lookup
    # and anything else is never taken for one.
    register_url_convertor("contact", ContactKey())

    def document(status: ContactStatus) -> s.ContactOut:
        sendable = adieu.policy.sendable_by_topic(status.state)
        return s.ContactOut(
            contact=status.address_hash.hex(),
            address=status.address,
            known=status.known,
            erased_at=status.erased_at,
            suppressions=[
                s.SuppressionOut(scope=x.scope, reason=x.reason.value, since=x.since)
                for x in status.state.suppressions
            ],
            subscribed_topics=sorted(status.state.subscribed_topics),
            frequency=status.state.frequency.value,
            paused_until=status.state.paused_until,
            last_marketing_send_at=status.state.last_marketing_send_at,
            soft_bounces=status.soft_bounces,
            marketing={
                k: s.Decision(allowed=d.allowed, reason=d.reason) for k, d in sendable.items()
            },
            history=[
                s.EventOut(
                    id=e.id,
                    type=e.type.value,
                    channel=e.channel.value,
                    scope=e.scope,
                    campaign=e.campaign,
                    at=iso(e.at),
                    recorded_at=iso_or_none(e.recorded_at),
                    contact=status.address_hash.hex(),
                    address=status.address,
                    reason=e.reason,
                    details=e.details,
                    why=summary(e.details) or None,
                )
                for e in status.events
            ],
        )

    @api.post("/contacts/lookup", dependencies=read, tags=["contacts"])
    async def lookup(body: s.LookupRequest) -> s.ContactOut:
        """An address's state and history, and the key that names it in URLs."""
        status = await run_in_threadpool(ledger.status, body.address)
        return document(status)

    def known(key: str) -> tuple[bytes, str | None]:
        digest = bytes.fromhex(key)
        found, address = ledger.address_of(digest)
        if not found:
            raise ApiError(
                404,
                "unknown_contact",
                _("No contact has this key. POST /api/v1/contacts/lookup gives an address's key."),
            )
        return digest, address

    @api.get("/contacts/{contact:contact}", dependencies=read, tags=["contacts"])
    async def contact(contact: contact_key) -> s.ContactOut:
        """State and full history: when, how, through which door, what was shown
        (the proof of consent and of its withdrawal)."""

        def get() -> ContactStatus:
            digest, address = known(contact)
            return ledger.status(address, digest=digest)

        return document(await run_in_threadpool(get))

    @api.post("/contacts/{contact:contact}/unsubscribe", dependencies=admin, tags=["contacts"])
    async def unsubscribe(
        contact: contact_key, key: caller, body: s.ChangeRequest | None = None
    ) -> s.ChangeOut:
        """Stop marketing (all, or one topic). Repeating it changes nothing."""
        body = body or s.ChangeRequest()

        def run() -> Outcome:
            digest = bytes.fromhex(contact)
            found, address = ledger.address_of(digest)
            if not found and body.address is not None:
                address = canonical(body.address)
                if adieu.hasher.hash(address) != digest:
                    raise ApiError(
                        400, "address_mismatch", _("This address does not have this key.")
                    )
            if address is None:
                # Erased, or never seen: the keyed hash alone is enough to suppress.
                return ledger.unsubscribe_hashed(
                    digest,
                    body.topic or ALL,
                    channel=Channel.API,
                    campaign=body.campaign,
                    details=by(key),
                )
            return ledger.unsubscribe(
                address,
                body.topic or ALL,
                channel=Channel.API,
                campaign=body.campaign,
                reason=body.reason,
                details={"door": "api", **by(key)},
            )

        return _out(s.ChangeOut, await run_in_threadpool(run))

    @api.post("/contacts/{contact:contact}/resubscribe", dependencies=admin, tags=["contacts"])
    async def resubscribe(
        contact: contact_key, key: caller, body: s.ResubscribeRequest | None = None
    ) -> s.ResubscribeOut:
        """Undo an unsubscribe, for someone who asked. A complaint or a hard
        bounce stays unless named in `lift` with a `note` (recorded with the
        key); an erased contact is a 409: erasure is final."""
        body = body or s.ResubscribeRequest()

        def run() -> s.ResubscribeOut:
            _known, address = known(contact)
            if address is None:
                raise Erased(
                    _("This address was erased, so it cannot be subscribed again from here.")
                )
            outcome = ledger.resubscribe(
                address,
                body.topic or ALL,
                channel=Channel.API,
                campaign=body.campaign,
                details=by(key),
                lift=body.lift,
                note=body.note,
            )
            held = outcome.detail if outcome.detail in ("hard_bounce", "complaint") else None
            return s.ResubscribeOut.model_validate(
                {**_out(s.ChangeOut, outcome).model_dump(), "held": held}
            )

        return await run_in_threadpool(run)

    @api.delete("/contacts/{contact:contact}", dependencies=admin, tags=["contacts"])
    async def erase(contact: contact_key, key: caller) -> s.ChangeOut:
        """GDPR erasure: the address and free text go; the keyed-hash
        suppression stays, so the address can never be mailed again."""

        return _out(
            s.ChangeOut,
            await run_in_threadpool(
                lambda: ledger.erase(
                    None, channel=Channel.API, digest=bytes.fromhex(contact), details=by(key)
                )
            ),
        )
