"""Bounces into per-recipient verdicts: from a DSN's blocks (``dsn``), or
from the report's text (``plain``) when there is no delivery-status part.
flufl.bounce only finds addresses in unstructured reports this reader found
none in; it never gives a verdict."""

from __future__ import annotations

import re
from email.message import Message
from typing import Any

from adieu.addresses import canonical_or_none, mask_all
from adieu.feedback import dsn, markers, plain, vocabulary
from adieu.feedback.mime import headers_of, is_report, original_of, report_texts, typed_parts
from adieu.feedback.reading import (
    Reading,
    Reported,
    addresses_of,
    placeholder,
    recipients_of,
    senders_of,
)

BOUNCE, UNKNOWN = "bounce", "unknown"
_RETURNED_REPORT = (
    "a report about a returned report (a forwarded notice bounced), not about mail to a person"
)
FORWARDERS_OWN = (
    "a bounce returned to the person who forwards it: about mail they sent or forwarded,"
    " not about a recipient of ours"
)
#: The line a mail program puts before a message it forwards inline.
_FORWARD_MARK = re.compile(
    r"^[ \t>]*(?:-{2,} ?(?:original message|forwarded message|message transféré|"
    r"ursprüngliche nachricht|weitergeleitete nachricht) ?-{2,}|begin forwarded message:)[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
_FIELD = re.compile(r"^[ \t>]*([A-Za-z-]+):[ \t]*(.*)$")
_REPLY_CODE = re.compile(r"(?<![\w.\[])[45]\d\d[ -]")


def _details(verdict: vocabulary.Verdict, how: str, action: str, diagnostic: str) -> dict[str, Any]:
    details: dict[str, Any] = {**verdict.details(), "recipient_from": how}
    if action:
        details["action"] = action
    if diagnostic.strip():
        details["diagnostic"] = mask_all(" ".join(diagnostic.split()))[:300]
    return details


def _signals(message: Message, report: plain.ReportText) -> bool:
    """Whether the message says it is a delivery failure or delay notice: sent
    by a mail system, or with X-Failed-Recipients, or its own text says a
    delivery failed. A subject alone (an auto-reply quoting ours) is not enough."""
    sender = str(message.get("From", "")).lower()
    return (
        any(s in sender for s in markers.BOUNCE_SENDERS)
        or bool(message.get("X-Failed-Recipients"))
        or report.failing
    )


def _report(message: Message, exclude: set[str]) -> plain.ReportText:
    texts = report_texts(message)
    return plain.read("\n\n".join(texts), exclude, str(message.get("Subject", "")))


def from_dsn(message: Message, envelope: list[str]) -> Reading:
    original = original_of(message)
    if original is not None and is_report(original):
        return Reading(UNKNOWN, note=_RETURNED_REPORT, original=original)
    exclude = senders_of(message, original) | set(addresses_of(*envelope))
    report = _Lazy(message, exclude)
    failed = addresses_of(*message.get_all("X-Failed-Recipients", []))
    reported: list[Reported] = []
    unresolved: list[tuple[dsn.Block, str]] = []
    for block in dsn.blocks(message):
        address, how = None, ""
        for name in ("final-recipient", "original-recipient"):
            address = dsn.address_in(block.get(name))
            if address is not None and not placeholder(address):
                how = name
                break
            address = None
        if address is None:
            unresolved.append(
                (
                    block,
                    dsn.name_in(block.get("final-recipient") or block.get("original-recipient")),
                )
            )
            continue
        found = _judge(block, address, how, report)
        if found is not None:
            reported.append(found)
    claimed = {r.address for r in reported}
    for block, address, how in _resolve(unresolved, claimed, failed, report, original):
        found = _judge(block, address, how, report)
        if found is not None:
            reported.append(found)
    return _reading(reported, original, "a delivery report with no failed recipient")


class _Lazy:
    """A report's text, read only when a block's own fields name no cause
    (most DSNs never need it)."""

    def __init__(self, message: Message, exclude: set[str]) -> None:
        self.message, self.exclude = message, exclude
        self._text: plain.ReportText | None = None

    @property
    def text(self) -> plain.ReportText:
        if self._text is None:
            self._text = _report(self.message, self.exclude)
        return self._text


def _judge(block: dsn.Block, address: str, how: str, report: _Lazy) -> Reported | None:
    status, diagnostic, action = block.get("status"), block.diagnostic, block.get("action")
    verdict = vocabulary.decide(status, diagnostic, action)
    if verdict.basis == "default":
        named = report.text.named.get(address)
        lines = named.evidence if named else ""
        verdict = vocabulary.decide(
            status, diagnostic, action, fallback=(lines, report.text.shared)
        )
    if verdict.kind == vocabulary.DELIVERED:
        return None
    verdict = _about_the_sender(verdict, diagnostic, address, report.exclude)
    action = block.get("action").strip().lower()
    return Reported(address, verdict.kind, how, _details(verdict, how, action, block.diagnostic))


def _resolve(
    unresolved: list[tuple[dsn.Block, str]],
    claimed: set[str],
    failed: list[str],
    report: _Lazy,
    original: Message | None,
) -> list[tuple[dsn.Block, str, str]]:
    """Addresses for blocks whose recipient fields hold none: from
    X-Failed-Recipients, the report's text, then the returned original's
    recipients; by matching local part, or the only one left."""
    if not unresolved:
        return []
    pools = [
        ("x-failed-recipients", [a for a in failed if a not in claimed]),
        ("report-text", [n.address for n in report.text.candidates() if n.address not in claimed]),
        ("original-recipient-header", [a for a in recipients_of(original) if a not in claimed]),
    ]
    found: list[tuple[dsn.Block, str, str]] = []
    taken = set(claimed)
    for block, name in unresolved:
        choice = None
        for how, pool in pools:
            pool = [a for a in pool if a not in taken]
            matching = [a for a in pool if name and _same_local(a, name)]
            if len(matching) == 1:
                choice = (matching[0], how)
            elif len(unresolved) == 1 and len(pool) == 1:
                choice = (pool[0], how)
            if choice:
                break
        if choice:
            taken.add(choice[0])
            found.append((block, *choice))
    return found


def _same_local(address: str, name: str) -> bool:
    def squeeze(text: str) -> str:
        return "".join(c for c in text.lower() if c.isalnum())

    local = squeeze(address.partition("@")[0])
    return bool(local) and local in (squeeze(name), squeeze(name.split(".")[0]))


def returned_to_forwarder(message: Message, inner: Message | None = None) -> bool:
    """Whether a bounce a person forwards (attached as ``inner``, or pasted
    inline after a forward line) was returned to that person about mail they
    did not send: a bounce of their own forwarding of a message they received,
    which names none of its recipients. A bounce of mail the person sent (its
    returned original is from them), and a mail system's or a list's forward,
    are read as any other."""
    sender = str(message.get("From", ""))
    forwarder = set(addresses_of(sender))
    if not forwarder or any(s in sender.lower() for s in markers.BOUNCE_SENDERS):
        return False
    if inner is not None:
        system = str(inner.get("From", "")).lower()
        if not any(s in system for s in markers.BOUNCE_SENDERS):
            return False  # a forward of a forward: the report is further in
        if not forwarder & set(addresses_of(*inner.get_all("To", []))):
            return False
        original = original_of(inner)
        return original is None or not forwarder & _senders(original)
    text = "\n".join(report_texts(message))
    for mark in _FORWARD_MARK.finditer(text):
        rest = text[mark.end() :].lstrip("\r\n").splitlines()
        block = 0
        to: set[str] = set()
        for line in rest[:12]:
            field = _FIELD.match(line)
            if field is None:
                break
            block += 1
            if field.group(1).lower() in ("to", "cc"):
                to.update(addresses_of(field.group(2)))
        if not forwarder & to:
            continue
        sent_by = set()
        for line in rest[block:]:
            field = _FIELD.match(line)
            if field is not None and field.group(1).lower() in ("from", "sender", "return-path"):
                sent_by.update(addresses_of(field.group(2)))
        return not forwarder & sent_by
    return False


def _senders(original: Message) -> set[str]:
    return set(
        addresses_of(original.get("From"), original.get("Sender"), original.get("Return-Path"))
    )


def from_text(message: Message, envelope: list[str]) -> Reading | None:
    """A bounce without a delivery-status part, read from its text; ``None``
    when the message does not say it is one or names no recipient."""
    original = original_of(message)
    exclude = senders_of(message, original) | set(addresses_of(*envelope))
    report = _report(message, exclude)
    if report.failing and returned_to_forwarder(message):
        return Reading(UNKNOWN, note=FORWARDERS_OWN, original=original)
    if not _signals(message, report):
        return None
    if original is None and report.after:
        inline = _inline_original(report.after)
        if inline is not None and is_report(inline):
            return Reading(UNKNOWN, note=_RETURNED_REPORT, original=inline)
        original = inline
        # The pasted original's sender is never a recipient either.
        more = senders_of(message, original) - exclude if original is not None else set()
        exclude |= more
        if more & report.named.keys():
            report = _report(message, exclude)
    named = {n.address: n for n in report.candidates()}
    how_named = "report-text"
    for address in addresses_of(*message.get_all("X-Failed-Recipients", [])):
        if address not in exclude and address not in named:
            named[address] = report.named.get(address) or plain.Named(address, strong=True)
    reported: list[Reported] = []
    for address, entry in named.items():
        if placeholder(address):
            continue
        found = _from_lines(address, entry, report, how_named, exclude)
        if found.kind != vocabulary.DELIVERED:
            reported.append(found)
    if not reported and report.user_ids:
        reported.extend(_user_ids(report, original, exclude))
    if not reported:
        reported.extend(_flufl(message, report, exclude))
    if not reported and not report.named:
        reported.extend(_sole_recipient(report, original, exclude))
    if not reported:
        return None
    return _reading(reported, original, "")


def _sole_recipient(
    report: plain.ReportText, original: Message | None, exclude: set[str]
) -> list[Reported]:
    """A notice that names no address at all, about a returned original that
    was addressed to one recipient: that recipient, judged on the notice's
    words (a cause must be named: a bare failure is no verdict)."""
    pool = [a for a in recipients_of(original) if a not in exclude]
    if len(pool) != 1 or not report.shared.strip():
        return []
    action = "delayed" if report.delayed else ""
    verdict = vocabulary.decide("", report.shared, action)
    if verdict.kind == vocabulary.DELIVERED or verdict.basis == "default":
        return []
    how = "original-recipient-header"
    return [Reported(pool[0], verdict.kind, how, _details(verdict, how, action, report.shared))]


def _about_the_sender(
    verdict: vocabulary.Verdict, diagnostic: str, address: str, senders: set[str]
) -> vocabulary.Verdict:
    """A dead-address verdict whose reply names the sender's own address (the
    return path, the original's From) and not the recipient's: the reply was
    about the sender (``553 5.1.0 <bounces@…>... Address rejected``)."""
    if verdict.kind != vocabulary.HARD or "@" not in diagnostic:
        return verdict
    reply = _REPLY_CODE.search(diagnostic)  # the reply itself, not the command before it
    named = addresses_of(diagnostic[reply.start() :].split("\n", 1)[0] if reply else diagnostic)
    if address in named or not any(a in senders for a in named):
        return verdict
    return vocabulary.Verdict(vocabulary.REJECTION, verdict.code, verdict.reply, None, "sender")


def _from_lines(
    address: str, entry: plain.Named, report: plain.ReportText, how: str, senders: set[str]
) -> Reported:
    verdict = vocabulary.decide("", entry.evidence, entry.action, fallback=(report.shared,))
    verdict = _about_the_sender(verdict, entry.evidence, address, senders)
    return Reported(
        address, verdict.kind, how, _details(verdict, how, entry.action, entry.evidence)
    )


def _user_ids(
    report: plain.ReportText, original: Message | None, exclude: set[str]
) -> list[Reported]:
    """Recipients the text names only by their user name (``mjones (user not
    found)``), found among the returned original's recipients."""
    pool = [a for a in recipients_of(original) if a not in exclude]
    found = []
    for name, why in report.user_ids:
        matching = [a for a in pool if _same_local(a, name)]
        if len(matching) != 1:
            continue
        action = "delayed" if report.delayed else ""
        verdict = vocabulary.decide("", why, action, fallback=(report.shared,))
        if verdict.kind == vocabulary.DELIVERED:
            continue
        how = "original-recipient-header"
        found.append(Reported(matching[0], verdict.kind, how, _details(verdict, how, action, why)))
    return found


def _flufl(message: Message, report: plain.ReportText, exclude: set[str]) -> list[Reported]:
    """The addresses flufl.bounce's detectors find, when they are named in the
    report's own text; each judged on its lines, as any other recipient (what
    flufl.bounce makes of them is no verdict)."""
    try:
        # flufl.bounce costs about 50 ms to import: only for mail that needs it.
        from flufl.bounce import all_failures

        temporary, permanent = all_failures(message)
    except Exception:
        return []
    found = []
    for raw in sorted(temporary | permanent):
        address = canonical_or_none(raw.decode("utf-8", "replace"))
        if address is None or address in exclude or placeholder(address):
            continue
        entry = report.named.get(address)
        if entry is None:
            continue  # named only outside the report's own text
        verdict = vocabulary.decide("", entry.evidence, entry.action, fallback=(report.shared,))
        if verdict.kind == vocabulary.DELIVERED:
            continue
        how = "flufl.bounce"
        details = _details(verdict, how, entry.action, entry.evidence)
        found.append(Reported(address, verdict.kind, how, details))
    return found


#: Dispositions of a message refused or discarded on arrival (RFC 8098, and
#: RFC 5429's Sieve ``reject``); the others (displayed, dispatched,
#: processed) are receipts.
_REFUSED = ("deleted", "denied", "failed")


def from_mdn(message: Message) -> Reading | None:
    """A message disposition notification that says the message was refused
    on arrival (a Sieve ``reject`` by the recipient's own filter, Dovecot's
    over-quota refusal): the mailbox is alive, so a soft bounce when its
    explanation says full or temporary, else a rejection of this mail; never
    a dead address. ``None`` for a receipt (displayed, dispatched, processed)."""
    explained = "\n".join(report_texts(message))
    reported = []
    for part, kind in typed_parts(message):
        if kind != "message/disposition-notification":
            continue
        for fields in dsn.field_groups(part):
            disposition = fields.get("disposition", "").lower()
            refused = disposition.rpartition(";")[2].split("/")[0].strip()
            if refused not in _REFUSED or "automatic-action" not in disposition:
                continue
            for name in ("final-recipient", "original-recipient"):
                address = dsn.address_in(fields.get(name, ""))
                if address is not None and not placeholder(address):
                    verdict = vocabulary.decide("", explained)
                    if verdict.kind == vocabulary.SOFT:
                        details = _details(verdict, name, "", explained)
                    else:
                        verdict = vocabulary.Verdict(vocabulary.REJECTION, basis="disposition")
                        details = {
                            **_details(verdict, name, "", explained),
                            "meaning": "refused by the recipient's own filter",
                            "source": "rfc5429",
                        }
                    details["disposition"] = refused
                    reported.append(Reported(address, verdict.kind, name, details))
                    break
    if not reported:
        return None
    return _reading(reported, original_of(message), "")


def _inline_original(after: str) -> Message | None:
    """The header block of an original pasted after a report's text."""
    text = after.lstrip("\n")
    if not text or not text.split("\n", 1)[0].count(":"):
        return None
    try:
        return headers_of(text)
    except Exception:
        return None


def _reading(reported: list[Reported], original: Message | None, empty: str) -> Reading:
    unique: dict[str, Reported] = {}
    for found in reported:
        unique.setdefault(found.address, found)
    if not unique:
        return Reading(UNKNOWN, note=empty, original=original)
    return Reading(BOUNCE, tuple(unique.values()), original=original)
