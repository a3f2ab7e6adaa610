"""Reading what comes back by mail (no ledger access here: pure parsing).

- mailto unsubscribes (RFC 2369): ``unsubscribe+TOKEN@domain``, or the token in
  the subject;
- complaints: ARF (RFC 5965) wherever its part sits, every recipient it names;
  Outlook.com/Hotmail notices; Amazon SES notifications (``adieu.feedback.arf``,
  ``adieu.feedback.ses``);
- bounces: a DSN (RFC 3464) wherever its ``message/delivery-status`` part sits,
  judged recipient by recipient (``adieu.feedback.bounces``, ``dsn``); without
  one, the report's text, each recipient on the lines that name it
  (``adieu.feedback.plain``), with flufl.bounce only to find addresses; the
  verdict from the status code and the vocabulary of the MTAs' and providers'
  published texts (``adieu.feedback.vocabulary``, ``phrases``);
- a bounce or complaint a person or a list forwards is read inside the
  forward; a report about a returned report (a forwarded notice that bounced)
  names nobody;
- auto-replies (RFC 3834 ``Auto-Submitted``, vacation notices): ignored, but a
  message with a report in it is a report whatever its ``Auto-Submitted``.

Every finding says why in its details: the status code, the phrase that
decided and its source (``status``, ``phrase``, ``meaning``, ``source``,
``basis``), and which field named the recipient (``recipient_from``).

The recipient is found from Adieu's own token first (it survives providers'
redaction), then from the report's fields, then from the returned original. A
token is Adieu's proof that the message concerns mail it sent to that address:
the same token seen several times counts once, and tokens for different
addresses prove nothing (none is used). Whether a finding without one may
change the ledger is decided in ``adieu.feedback.intake``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from email.message import Message
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from adieu.addresses import canonical_or_none
from adieu.errors import InvalidToken
from adieu.feedback.mime import (
    DSN_TYPES,
    ORIGINAL_TYPES,
    carried,
    has_type,
    may_be_report,
    parse,
    parseable,
    typed_parts,
)
from adieu.tokens import UNSUBSCRIBE, CompactPayload, TokenCodec, TokenPayload

if TYPE_CHECKING:
    from adieu.feedback.reading import Reading

#: A token in a link (``/u/``, ``/p/``), a mailto address (``unsubscribe+``, in
#: any case: MTAs fold it) or CFBL-Feedback-ID (a compact token).
_TOKEN = re.compile(
    r"(?:/[up]/|(?i:unsubscribe)\+|(?i:cfbl-feedback-id):[ \t]*)([A-Za-z0-9_-]{40,1024})"
)
#: A token-bearing return path: any local part, ``+``, the token (``bounces+TOKEN@…``).
_RETURN_PATH_TOKEN = re.compile(r"\+([A-Za-z0-9_-]{40,1024})@[^@]+$")
_BARE_TOKEN = re.compile(r"(?<![A-Za-z0-9_-])([A-Za-z0-9_-]{40,1024})(?![A-Za-z0-9_-])")


class FindingKind(StrEnum):
    """What one inbound message means for one recipient."""

    MAILTO = "mailto"
    COMPLAINT = "complaint"
    NOT_SPAM = "not_spam"
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    REJECTION = "rejection"  # a sender-side refusal: recorded, nobody suppressed


class MessageKind(StrEnum):
    """What an inbound message is, as a whole."""

    UNSUBSCRIBE = "unsubscribe"
    COMPLAINT = "complaint"
    BOUNCE = "bounce"
    AUTO_REPLY = "auto_reply"
    UNKNOWN = "unknown"  # kept for a person to read
    UNUSABLE = "unusable"  # cannot even be parsed


@dataclass(frozen=True, slots=True)
class Finding:
    """What one inbound message means for one recipient."""

    kind: FindingKind
    address: str
    token: TokenPayload | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Classification:
    """What the message is, and ``findings`` per recipient."""

    kind: MessageKind
    findings: tuple[Finding, ...] = ()
    note: str = ""


def classify(
    data: bytes, codec: TokenCodec, envelope_to: list[str] | None = None
) -> Classification:
    envelope = envelope_to or []
    try:
        message = parse(parseable(data))
    except Exception as exc:
        return Classification(MessageKind.UNUSABLE, note=f"cannot be parsed: {type(exc).__name__}")
    if not message.keys():
        return Classification(MessageKind.UNUSABLE, note="no header fields")
    return_path = _return_path_token(envelope, codec)
    try:
        # The readers are imported when a message needs them: a mailto
        # unsubscribe through the pipe transport pays for none of them.
        if has_type(message, "message/feedback-report"):
            from adieu.feedback import arf

            return _complaint(arf.from_arf(message), codec, return_path)
        if has_type(message, *DSN_TYPES):
            from adieu.feedback import bounces

            reading = bounces.from_dsn(message, envelope)
            return _bounce(reading, message, codec, return_path, _verp(envelope))
        if has_type(message, "message/disposition-notification"):
            from adieu.feedback import bounces

            refused = bounces.from_mdn(message)
            if refused is not None:
                return _bounce(refused, message, codec, return_path, _verp(envelope))
        mailto = _mailto(message, codec, envelope)
        if mailto is not None:
            return mailto
        # Reports before auto-replies: MTAs mark bounces Auto-Submitted too.
        found = _read(message, envelope, 0) if may_be_report(message) else None
    except RecursionError:
        return Classification(MessageKind.UNUSABLE, note="nested too deeply to read")
    except Exception as exc:  # a report no reader expected: kept for a person, never lost
        note = f"a report Adieu could not read ({type(exc).__name__}); kept for review"
        return Classification(MessageKind.UNKNOWN, note=note)
    if found is not None and found.kind == MessageKind.COMPLAINT:
        return _complaint(found, codec, return_path)
    if found is not None:
        return _bounce(found, message, codec, return_path, _verp(envelope))
    if _auto_reply(message):
        return Classification(MessageKind.AUTO_REPLY, note="auto-reply, ignored")
    return Classification(MessageKind.UNKNOWN, note="not a report Adieu can read; kept for review")


#: How many forwards deep a report is looked for (a forward of a forward …).
_DEPTH = 3


def _read(message: Message, envelope: list[str], depth: int) -> Reading | None:
    """A report that is not a DSN or ARF at the top: an SES notification, an
    Outlook.com complaint notice, a bounce in plain text, or a report that a
    person or a list forwarded as an attachment."""
    from adieu.feedback import arf, bounces, ses

    notice = ses.notification(message)
    if notice is not None:
        return ses.from_notification(notice)
    found = arf.from_notice(message)
    if found is None:
        found = bounces.from_text(message, envelope)
    if found is not None or depth >= _DEPTH:
        return found
    for part, kind in typed_parts(message):
        if kind not in ORIGINAL_TYPES:
            continue
        inner = carried(part)
        if inner is None:
            continue
        if not has_type(inner, "message/feedback-report") and bounces.returned_to_forwarder(
            message, inner
        ):
            from adieu.feedback.reading import Reading

            return Reading(bounces.UNKNOWN, note=bounces.FORWARDERS_OWN)
        if has_type(inner, "message/feedback-report"):
            found = arf.from_arf(inner)
        elif has_type(inner, *DSN_TYPES):
            found = bounces.from_dsn(inner, [])
        else:
            found = _read(inner, [], depth + 1)
        if found is not None and (found.reported or found.kind == MessageKind.COMPLAINT):
            return found
    return None


def _bounce(
    reading: Reading,
    message: Message,
    codec: TokenCodec,
    return_path: TokenPayload | None,
    verp: str | None,
) -> Classification:
    """Findings from a bounce reading, with Adieu's own token first (the
    return path's, then the returned original's), then a VERP return path."""
    if not reading.reported:
        note = reading.note or "a report Adieu cannot read; kept for review"
        return Classification(MessageKind.UNKNOWN, note=note)
    token, how = return_path, "return-path-token"
    if token is None:
        where = reading.original if reading.original is not None else message
        token, how = _the_token(_tokens_in(_text_of(where), codec)), "token"
    named = {r.address for r in reading.reported}
    # A return path (a token or VERP) is the one person its copy went to:
    # every recipient the report lists (their aliases, a forward) is that
    # person. A token in the returned original is too, unless the report
    # lists several recipients, none of them the token's: a copy sent to
    # several people, which the token cannot speak for.
    whole = how == "return-path-token" or len(named) == 1
    findings = []
    for reported in reading.reported:
        address, found_by, tok = reported.address, reported.recipient_from, None
        if token is not None and (
            token.address == address or (whole and token.address not in named)
        ):
            address, found_by, tok = token.address, how, token
        elif token is None and verp is not None and verp not in named:
            address, found_by = verp, "verp"
        details = {**reported.details, "recipient_from": found_by}
        if found_by != reported.recipient_from:
            details["reported_by"] = reported.recipient_from
        findings.append(Finding(FindingKind(reported.kind), address, tok, details))
    return Classification(MessageKind.BOUNCE, _one_each(findings))


#: Of several verdicts for one person in one report (an alias that expanded
#: to several mailboxes), the mildest stands: never suppress on a guess.
_MILDEST = ("soft_bounce", "rejection", "hard_bounce")


def _one_each(findings: list[Finding]) -> tuple[Finding, ...]:
    chosen: dict[str, Finding] = {}
    for finding in findings:
        kept = chosen.get(finding.address)
        if kept is None or _MILDEST.index(finding.kind) < _MILDEST.index(kept.kind):
            chosen[finding.address] = finding
    return tuple(chosen.values())


def _complaint(
    reading: Reading, codec: TokenCodec, return_path: TokenPayload | None
) -> Classification:
    """Findings from a complaint reading: one per recipient it names, with
    Adieu's token (the original's, then the return path's) naming its person."""
    if reading.kind != MessageKind.COMPLAINT:
        return Classification(MessageKind.UNKNOWN, note=reading.note)
    original = reading.original
    token = _the_token(_tokens_in(_text_of(original), codec)) if original is not None else None
    how = "token"
    if token is None and return_path is not None:
        token, how = return_path, "return-path-token"
    findings = [
        Finding(FindingKind(r.kind), r.address, None, dict(r.details)) for r in reading.reported
    ]
    if token is not None:
        matching = [f for f in findings if f.address == token.address]
        if matching:
            findings = [replace(f, token=token) if f in matching else f for f in findings]
        else:
            kind = findings[0].kind if findings else FindingKind(reading.finding or "complaint")
            details = {**reading.details, "recipient_from": how}
            mine = Finding(kind, token.address, token, details)
            findings = [mine] if len(findings) <= 1 else [mine, *findings]
    if not findings:
        return Classification(
            MessageKind.UNKNOWN, note="a complaint report without a recipient (redacted)"
        )
    return Classification(MessageKind.COMPLAINT, tuple(findings))


# -- tokens ----------------------------------------------------------------------


def _tokens_in(
    text: str, codec: TokenCodec, pattern: re.Pattern[str] = _TOKEN
) -> list[TokenPayload]:
    return _opened(pattern.findall(text), codec)


def _opened(candidates: list[str], codec: TokenCodec) -> list[TokenPayload]:
    """The tokens among ``candidates`` that open, full or compact.

    A compact token names its recipient only by a hash prefix, which only
    the ledger can turn into an address; the message that carries one also
    carries the full token of the same stamp (the link beside the mailto), so
    compact tokens count only when no full token opened. Copies of one
    compact token (or tokens with the same prefix) count once, and compact
    tokens for different recipients name nobody: none is returned."""
    full: list[TokenPayload] = []
    compact: dict[bytes, CompactPayload] = {}
    for candidate in candidates:
        try:
            payload = codec.open_any(candidate)
        except InvalidToken:
            continue
        if isinstance(payload, CompactPayload):
            compact.setdefault(payload.address_prefix, payload)
        else:
            full.append(payload)
    if full:
        return full
    return list(compact.values()) if len(compact) == 1 else []


def _the_token(tokens: list[TokenPayload]) -> TokenPayload | None:
    """The one token that names the recipient, or ``None``.

    Stamped mail carries one token several times (List-Unsubscribe's URL and
    mailto, the footer's links), so copies with the same address, scope and
    campaign count once. Tokens for one address with different scopes or
    campaigns still name that address: the first found is used. Tokens for
    different addresses name nobody for sure: none is used."""
    unique: dict[tuple[str, str, str | None], TokenPayload] = {}
    for payload in tokens:
        unique.setdefault((payload.address, payload.scope, payload.campaign), payload)
    first = next(iter(unique.values()), None)
    if first is None or any(p.address != first.address for p in unique.values()):
        return None
    return first


def _return_path_token(envelope_to: list[str], codec: TokenCodec) -> TokenPayload | None:
    """The token in a token-bearing envelope recipient (``bounces+TOKEN@domain``,
    any local part before the ``+``; a compact token in any case), if one opens."""
    found = []
    for address in envelope_to:
        match = _RETURN_PATH_TOKEN.search(address.strip().strip("<>").strip())
        if match:
            found.append(match.group(1))
    return _the_token(_opened(found, codec))


def _text_of(message: Message) -> str:
    """Everything readable in a message, headers included, as text."""
    pieces = [f"{k}: {v}" for k, v in message.items()]
    for part in message.walk():
        if part.is_multipart():
            pieces.extend(f"{k}: {v}" for k, v in part.items())
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            pieces.append(payload.decode("utf-8", "replace"))
        elif isinstance(part.get_payload(), str):
            pieces.append(str(part.get_payload()))
    return "\n".join(pieces)


# -- mailto ----------------------------------------------------------------------


def _mailto(message: Message, codec: TokenCodec, envelope_to: list[str]) -> Classification | None:
    """An unsubscribe by mail: the token in the address written to (the envelope
    recipient, To, Delivered-To; the same token there several times counts
    once), or in the subject. Tokens for different people name nobody, and a
    compact token minted for a return path is no unsubscribe address. A
    compact token's finding has no address yet (``adieu.feedback.intake``
    resolves it)."""
    candidates = [*envelope_to, str(message.get("To", "")), str(message.get("Delivered-To", ""))]
    token = _the_token(_tokens_in(" ".join(candidates), codec)) or _the_token(
        _tokens_in(str(message.get("Subject", "")), codec, _BARE_TOKEN)
    )
    if token is None or (isinstance(token, CompactPayload) and token.purpose != UNSUBSCRIBE):
        return None
    return Classification(
        MessageKind.UNSUBSCRIBE,
        (Finding(FindingKind.MAILTO, token.address, token, {"scope": token.scope}),),
    )


# -- bounces ---------------------------------------------------------------------------------


def bounce_kind(status: str, diagnostic: str) -> str:
    """hard_bounce (the address is dead), soft_bounce (full, temporary),
    rejection (the sender's side, or of unclear cause) or delivered: the
    verdict ``adieu.feedback.vocabulary`` gives one recipient."""
    from adieu.feedback import vocabulary

    return vocabulary.bounce_kind(status, diagnostic)


_VERP = re.compile(r"^[^+@]+\+(?P<local>[^=@]+)=(?P<domain>[^@]+)@")


def _verp(envelope_to: list[str]) -> str | None:
    """The recipient encoded in a VERP return path (``bounces+ann=example.org@…``)."""
    for address in envelope_to:
        match = _VERP.match(address.strip("<> "))
        if match:
            found = canonical_or_none(f"{match['local']}@{match['domain']}")
            if found:
                return found
    return None


# -- auto-replies (RFC 3834) -----------------------------------------------------------------


_AUTO_SUBJECT = re.compile(
    r"^(auto(matic)? ?(reply|response)|out of (the )?office|abwesenheit|frånvaro|absence"
    r"|vacation|on leave|autoreply)",
    re.IGNORECASE,
)


def _auto_reply(message: Message) -> bool:
    submitted = str(message.get("Auto-Submitted", "no")).strip().lower()
    if submitted not in ("", "no"):
        return True
    if message.get("X-Autoreply") or message.get("X-Autorespond"):
        return True
    if str(message.get("Precedence", "")).lower() == "auto_reply":
        return True
    return bool(_AUTO_SUBJECT.search(str(message.get("Subject", ""))))
