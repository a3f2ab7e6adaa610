"""Reading a report's human-readable text: which recipients it names, the
lines that name each one (that recipient's evidence), and the text that
names nobody (shared by all, weighed only when a recipient's own lines say
nothing).

The text read ends where the returned original starts ("This is a copy of
the message", "Below this line is a copy of the message", or a header block
with ``Received``, ``DKIM-Signature``, ``Return-Path`` …), so nothing of the
original — its header names, its subject, an older bounce quoted in it — is
taken for the report's words. Header-like lines (``Subject:``, ``X-Spam-…``)
are never evidence.

An address is a recipient when the text names it where reports name their
recipients: at the head of a line (``<ann@example.org>:``, an indented
``ann@example.org``), after a label (``Failed Recipient:``, ``was not
delivered to:``), or beside the failure it is about; never after ``from``,
``sender``, ``expanded from``, in a URL, or when it is one of the report's or
the original's own sender addresses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from adieu.addresses import ADDRESS_IN_TEXT, canonical_or_none
from adieu.feedback import markers, vocabulary

#: Lines that open the returned original (matched in lower case).
_ORIGINAL_MARKER = re.compile(
    r"copy of (?:the |your )?(?:original )?message|below this line|"
    r"original message (?:headers?|follows|text)|message headers? follows?|"
    r"headers? (?:of|for) (?:the |your )?(?:original|returned|undelivered) message|"
    r"(?:returned|undelivered|unsent|rejected|original) message (?:follows|is attached|headers)|"
    r"the header and (?:top|first)|possibly truncated original|"
    r"original message header|message text follows|^-+ ?original headers? ?-+$"
)
#: Header fields that start a returned original's header block.
_BLOCK_START = re.compile(
    r"^(?:received|return-path|dkim-signature|domainkey-signature|arc-seal|"
    r"arc-message-signature|arc-authentication-results|authentication-results|received-spf|"
    r"message-id|mime-version|delivered-to|list-unsubscribe|x-[\w-]+):",
    re.IGNORECASE,
)
#: Header-like lines: never evidence, never a recipient.
_HEADER_LINE = re.compile(
    r"^\s*(?:received|return-path|dkim-signature|domainkey-signature|authentication-results|"
    r"arc-[\w-]+|received-spf|x-[\w-]+|content-[\w-]+|mime-version|message-id|list-[\w-]+|"
    r"precedence|feedback-id|date|from|to|cc|bcc|reply-to|sender|subject|sent|references|"
    r"in-reply-to|thread-[\w-]+|accept-language|delivered-to|importance|priority|organization|"
    r"user-agent|errors-to|envelope-to|delivery-date|auto-submitted)\s*:",
    re.IGNORECASE,
)
_FIELD_LINE = re.compile(r"^[\w-]+:\s")
_URL = re.compile(r"(?:https?://|www\.|mailto:)\S+", re.IGNORECASE)
#: What may stand before an address at the head of a line.
_HEAD = re.compile(r"\s*[-*>'\"(<\[•]*\s*")
#: A label before an address (``Failed Recipient:``, ``was not delivered to:``).
_LABEL = re.compile(r"\s*(?P<label>[A-Za-z][\w '()/.-]{0,60}?)\s*[:=]\s*(?:rfc822;\s*)?[<('\"]*\s*")
_NOT_RECIPIENT_LABEL = re.compile(
    r"\b(?:from|sender|return|reply|postmaster|contact|originator|author|by)\b|"
    r"^(?:cc|bcc|to|sent|date|subject)$",
    re.IGNORECASE,
)
#: Words just before an address that make it somebody else than a recipient.
_NOT_RECIPIENT_BEFORE = re.compile(
    r"(?:\bfrom|\bsender|\bby|mail from|envelope-from|return-path|reply[- ]to|\bcontact|"
    r"send (?:e-?mail|mail|a message) to|write to|expanded from|generated from|alias|"
    r"forwarded (?:to|by)|on behalf of|originator|message-?id|msg-?id|in-reply-to|references|"
    r"queue-?id|session-?id)\W*$",
    re.IGNORECASE,
)
#: Words just before an address that make it the recipient a failure is about.
_RECIPIENT_BEFORE = re.compile(
    r"(?:\bto|\bfor|recipients?|rcpt to|\buser|\baddress|\bmailbox|"
    r"(?:^|\s)[245]\d\d[ -](?:#?[245]\.\d{1,3}\.\d{1,3}\s*)?|said:?|reason:?)\W*$",
    re.IGNORECASE,
)
_USER_ID = re.compile(r"^\s+(?P<name>[A-Za-z0-9][\w.+-]{0,63})\s+\((?P<why>[^()@]{3,80})\)\s*$")
_DELAY_STATE = re.compile(
    r"transient non-fatal|not yet been delivered|still being retried|will continue to retry|"
    r"warning only|delivery attempts will continue|will be retried|will keep trying|"
    r"delivery is delayed|has been delayed|delayed delivery"
)
#: Subjects of delay notices (Exim, Postfix, sendmail, Exchange), not an
#: "Undeliverable: <the original's subject>" that happens to say "delay".
_DELAY_SUBJECT = re.compile(
    r"^\s*(?:warning: message \S+ delayed|delayed mail|delivery delayed|"
    r"delivery status notification \(delay\)|warning: could not send message|"
    r"delivery status notification: delay)",
    re.IGNORECASE,
)
_FAIL_STATE = re.compile(
    r"(?<!non-)fatal error|failed permanently|permanent (?:error|failure)|given up"
)
_SEPARATOR = re.compile(r"^\s*(?:-{3,}|={3,}|_{3,}|#{5,})")
_LEADING_LABEL = re.compile(r"^\s*[A-Za-z][\w '()/.-]{0,60}?\s*:")


@dataclass
class Named:
    """A recipient the text names."""

    address: str
    strong: bool = False  # named where reports name recipients
    action: str = ""  # "delayed" when named in a delay notice or section
    label: str = ""  # the label or position that named it
    lines: list[str] = field(default_factory=list)

    @property
    def evidence(self) -> str:
        return "\n".join(self.lines)


@dataclass
class ReportText:
    """A report's human-readable text, read once."""

    named: dict[str, Named] = field(default_factory=dict)
    #: Names without a domain (``mjones (user not found)``) and their lines.
    user_ids: list[tuple[str, str]] = field(default_factory=list)
    shared: str = ""
    delayed: bool = False
    failing: bool = False  # the text says a delivery failed (its preamble)
    after: str = ""  # what follows the cut (a returned original, perhaps)

    def candidates(self) -> list[Named]:
        """The recipients: named where reports name them, or beside a failure."""
        return [
            n
            for n in self.named.values()
            if n.strong or (n.label == "beside" and _has_failure(n.evidence))
        ]


def _has_failure(text: str) -> bool:
    """Whether ``text`` holds a failing reply code or words of a failure."""
    codes = vocabulary.codes_in(text)
    if any(r[0] in "45" for r in codes.replies) or any(c.klass in (4, 5) for c in codes.enhanced):
        return True
    said = vocabulary.phrase_text(text)
    return any(h.entry.meaning != vocabulary.Meaning.TEMPORARY for h in vocabulary.hits(said))


def cut(text: str) -> tuple[list[str], str]:
    """The report's own lines, and the text from where the original starts."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        low = line.strip().lower()
        if low and _ORIGINAL_MARKER.search(low) and _marker_line(low):
            return lines[:i], "\n".join(lines[i + 1 :])
        if _BLOCK_START.match(line) and _header_block(lines, i):
            return lines[:i], "\n".join(lines[i:])
    return lines, ""


def _marker_line(low: str) -> bool:
    """A line that introduces what follows (``--- … ---``, ``… follows:``),
    not a sentence that mentions the original."""
    return len(low) < 100 and (low[0] in "-=*_#<[(" or low.endswith(":") or low.endswith("--"))


def _header_block(lines: list[str], i: int) -> bool:
    """Whether ``lines[i]`` opens a block of header fields (two more within four lines)."""
    following = [ln for ln in lines[i + 1 : i + 6] if ln and not ln[0].isspace()]
    return sum(1 for ln in following[:4] if _FIELD_LINE.match(ln)) >= 2


def read(text: str, exclude: set[str], subject: str = "") -> ReportText:
    """The recipients ``text`` names (none of ``exclude``) and their evidence."""
    own, after = cut(text)
    report = ReportText(after=after)
    whole = "\n".join(own).lower()
    report.failing = any(p in whole for p in markers.BOUNCE_PREAMBLES)
    state = "delayed" if _DELAY_SUBJECT.search(subject) else ""
    kept: list[tuple[str, list[tuple[str, int, str]]]] = []  # (line, [(address, start, how)])
    skipping = False
    for line in own:
        if _HEADER_LINE.match(line):
            skipping = not line[:1].isspace()
            continue
        if skipping and line[:1] in (" ", "\t") and line.strip():
            continue
        skipping = False
        low = line.lower()
        if _DELAY_STATE.search(low):
            state = "delayed"
            report.delayed = True
        elif _FAIL_STATE.search(low):
            state = "failed"
        found = []
        for address, start, how in _addresses(line, exclude):
            named = report.named.get(address)
            if named is None:
                named = report.named[address] = Named(address, action=state)
            if how in ("head", "label") and not named.strong:
                named.strong, named.label = True, how
            elif how == "beside" and not named.label:
                named.label = how
            found.append((address, start, how))
        kept.append((line, found))
        if not found:
            user = _USER_ID.match(line)
            if user and report.failing:
                report.user_ids.append((user.group("name"), user.group("why")))
    used = [False] * len(kept)
    for i, (_, found) in enumerate(kept):
        for address in {a for a, _, _ in found}:
            report.named[address].lines.extend(_segment(kept, i, address, used))
    for members, reason in _lists(kept):
        for address in members:
            named = report.named[address]
            if not _has_failure(named.evidence):
                named.lines.extend(reason)
    report.shared = "\n".join(line for (line, _), u in zip(kept, used, strict=True) if not u)
    if report.delayed and not any(_FAIL_STATE.search(ln.lower()) for ln, _ in kept):
        for named in report.named.values():
            named.action = "delayed"
    return report


def _lists(
    kept: list[tuple[str, list[tuple[str, int, str]]]],
) -> list[tuple[list[str], list[str]]]:
    """Recipients listed one bare address a line, with the reason they share
    after the list (Gmail's "Delivery to the following recipients failed
    permanently", then the one error): each list and the lines of its reason."""
    found = []
    i = 0
    while i < len(kept):
        members: list[str] = []
        j = i
        while j < len(kept) and _bare(kept[j]):
            members.append(kept[j][1][0][0])
            j += 1
        if len(members) < 2:
            i = j + 1 if j == i else j
            continue
        reason: list[str] = []
        for line, named in kept[j:]:
            if any(a not in members for a, _, _ in named) or _SEPARATOR.match(line):
                break
            if not line.strip():
                if reason:
                    break
                continue
            reason.append(line)
        found.append((members, reason))
        i = j
    return found


def _bare(entry: tuple[str, list[tuple[str, int, str]]]) -> bool:
    """A line that names one recipient and nothing else."""
    line, named = entry
    if len(named) != 1 or named[0][2] != "head":
        return False
    return not any(c.isalnum() for c in ADDRESS_IN_TEXT.sub(" ", line))


def _segment(
    kept: list[tuple[str, list[tuple[str, int, str]]]], i: int, address: str, used: list[bool]
) -> list[str]:
    """The lines from ``kept[i]`` that belong to ``address``: down to a blank
    line after some content, a separator, or a line naming someone else."""
    lines = [kept[i][0]]
    used[i] = True
    rest = _LEADING_LABEL.sub("", ADDRESS_IN_TEXT.sub(" ", kept[i][0]))
    content = any(c.isalnum() for c in rest)
    for j in range(i + 1, len(kept)):
        line, found = kept[j]
        if any(a != address for a, _, _ in found) or _SEPARATOR.match(line):
            break
        if not line.strip():
            if content:
                break
            continue
        lines.append(line)
        used[j] = True
        content = True
    return lines


def _addresses(line: str, exclude: set[str]) -> list[tuple[str, int, str]]:
    """The addresses ``line`` names that may be recipients, with how: ``head``,
    ``label``, ``beside`` (next to failure words) or ``inline``."""
    if line.lstrip().startswith((">>>", "<<<")):
        return [(a, s, "inline") for a, s, _ in _raw(line, exclude)]
    found = []
    for address, start, before in _raw(line, exclude):
        if _NOT_RECIPIENT_BEFORE.search(before[-40:]):
            continue
        if _HEAD.fullmatch(before):
            how = "head"
        elif (label := _LABEL.fullmatch(before)) and not _NOT_RECIPIENT_LABEL.search(
            label.group("label").strip()
        ):
            how = "label"
        elif _RECIPIENT_BEFORE.search(before[-40:]):
            how = "beside"
        else:
            how = "inline"
        found.append((address, start, how))
    return found


def _raw(line: str, exclude: set[str]) -> list[tuple[str, int, str]]:
    if "@" not in line:
        return []
    urls = [m.span() for m in _URL.finditer(line)]
    found = []
    for match in ADDRESS_IN_TEXT.finditer(line):
        if any(a <= match.start() < b for a, b in urls):
            continue
        text, start = match.group(0), match.start()
        if text[0] in "'\"" and line[match.end() : match.end() + 1] == text[0]:
            text, start = text[1:], start + 1  # 'ann@example.org' (Exchange quotes them)
        address = canonical_or_none(text.strip(".-"))
        if address is None or address in exclude:
            continue
        local = address.partition("@")[0]
        if local in ("postmaster", "mailer-daemon", "mailer_daemon", "abuse", "hostmaster"):
            continue
        found.append((address, start, line[:start]))
    return found
