"""What a returned message says about one recipient: its status codes and the
phrases of its diagnostic text, weighed into one verdict (pure functions).

The enhanced status code (RFC 3463) is the first signal, and is recognised
only where it is one: a DSN's ``Status`` field, right after the basic reply
code (``550 5.1.1``, ``550-5.1.1``, ``#550 5.1.1``), or in the ``#5.1.1`` and
``(5.1.1)`` forms MTAs append to their texts; never an IP address or a
version number. The phrases come from the table in ``adieu.feedback.phrases``
and are matched only in the diagnostic text handed in, after unfolding.

Of a permanent failure: the sender's address codes (x.1.7, x.1.8) and words
decide first (they are never about the recipient); then a vendor's documented
use of the code at hand; then the strongest phrase (see ``PRECEDENCE``: a
dead address under a policy code is dead, a sender-side refusal under a
dead-address code is the sender's side); then what the code says by itself;
a permanent failure of unclear cause is a rejection, never a suppression on
a guess. Every 4.x.x and every delayed delivery is a soft bounce, and so is a
permanent failure that only gave up after temporary ones (a 4.x.x reply, an
expired queue lifetime).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

from adieu.addresses import ADDRESS_IN_TEXT
from adieu.feedback import phrases


class Meaning(StrEnum):
    """What a phrase or a status code says about the recipient."""

    DEAD = phrases.DEAD
    DISABLED = phrases.DISABLED
    FULL = phrases.FULL
    TEMPORARY = phrases.TEMPORARY
    SENDER = phrases.SENDER
    SENDER_ADDRESS = phrases.SENDER_ADDRESS
    UNCLEAR = phrases.UNCLEAR


#: When several phrases match one recipient's text, the first meaning here wins.
PRECEDENCE: tuple[Meaning, ...] = (
    Meaning.SENDER_ADDRESS,
    Meaning.FULL,
    Meaning.UNCLEAR,
    Meaning.SENDER,
    Meaning.DEAD,
    Meaning.DISABLED,
    Meaning.TEMPORARY,
)

HARD, SOFT, REJECTION, DELIVERED = "hard_bounce", "soft_bounce", "rejection", "delivered"

_KIND = {
    Meaning.DEAD: HARD,
    Meaning.DISABLED: HARD,
    Meaning.FULL: SOFT,
    Meaning.TEMPORARY: SOFT,
    Meaning.SENDER: REJECTION,
    Meaning.SENDER_ADDRESS: REJECTION,
    Meaning.UNCLEAR: REJECTION,
}


@dataclass(frozen=True, slots=True)
class Code:
    """An enhanced status code, ``class.subject.detail``."""

    klass: int
    subject: int
    detail: int

    def __str__(self) -> str:
        return f"{self.klass}.{self.subject}.{self.detail}"

    @property
    def generic(self) -> bool:
        return self.subject == 0 and self.detail == 0

    @property
    def meaning(self) -> Meaning | None:
        found = phrases.CODES.get((self.subject, self.detail))
        if found is None:
            found = phrases.CODES.get((self.subject, None))
        return Meaning(found) if found else None


@dataclass(frozen=True, slots=True)
class Entry:
    """One row of the vocabulary, compiled."""

    meaning: Meaning
    pattern: str
    source: str
    code: tuple[int, int] | None
    anchor: str
    regex: re.Pattern[str]


@dataclass(frozen=True, slots=True)
class Hit:
    entry: Entry
    phrase: str  # the words matched
    at: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """One recipient's verdict and why."""

    kind: str  # hard_bounce, soft_bounce, rejection or delivered
    code: Code | None = None  # the enhanced status code weighed
    reply: str = ""  # the basic reply code, when there was one
    hit: Hit | None = None  # the phrase that decided, if one did
    basis: str = "default"  # what decided: action, status, phrase, sender or default

    def details(self) -> dict[str, str]:
        """The why, as event details (no address in them)."""
        found: dict[str, str] = {"basis": self.basis}
        if self.code is not None:
            found["status"] = str(self.code)
        if self.reply:
            found["reply"] = self.reply
        if self.hit is not None:
            found["phrase"] = self.hit.phrase
            found["meaning"] = self.hit.entry.meaning.value
            found["source"] = self.hit.entry.source
        elif self.basis == "sender":  # the reply named the sender's address
            found["meaning"] = Meaning.SENDER_ADDRESS.value
        elif self.code is not None and self.basis == "status" and self.code.meaning:
            found["meaning"] = self.code.meaning.value
            found["source"] = (
                "rfc7505" if (self.code.subject, self.code.detail) == (1, 10) else ("rfc3463")
            )
        return found


# -- the table, compiled once and only when a bounce needs it ----------------------------------


def _anchor(pattern: str) -> str:
    """The longest run of literal text every match of ``pattern`` contains
    ("" when there is none to rely on): read at the top level only, outside
    groups and classes, dropping characters a quantifier makes optional."""
    if "|" in re.sub(r"\\.|\[[^\]]*\]|\((?:[^()]|\([^()]*\))*\)", "", pattern):
        return ""  # top-level alternatives: nothing is required
    runs: list[str] = []
    run = ""
    depth = 0
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            runs.append(run)
            run = ""
            i += 2
            continue
        if c == "[":
            runs.append(run)
            run = ""
            j = i + 1
            while j < len(pattern) and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            i = j + 1
            continue
        if c == "(":
            depth += 1
            runs.append(run)
            run = ""
        elif c == ")":
            depth -= 1
        elif depth == 0:
            if c in "?*{":
                run = run[:-1]
                runs.append(run)
                run = ""
                if c == "{":
                    i = pattern.index("}", i)
            elif c in "+.^$|":
                runs.append(run)
                run = ""
            else:
                run += c
        i += 1
    runs.append(run)
    best = max(runs, key=len)
    return best if len(best.strip()) >= 3 else ""


def _compile(pattern: str) -> re.Pattern[str]:
    head = r"\b" if pattern[:1].isalnum() else ""
    tail = r"\b" if pattern[-1:].isalnum() else ""
    return re.compile(head + pattern + tail)


@cache
def entries() -> tuple[Entry, ...]:
    built = []
    for meaning, pattern, source, code in phrases.PHRASES:
        subject, _, detail = code.partition(".")
        built.append(
            Entry(
                Meaning(meaning),
                pattern,
                source,
                (int(subject), int(detail)) if code else None,
                _anchor(pattern),
                _compile(pattern),
            )
        )
    return tuple(built)


# -- text ------------------------------------------------------------------------------------------

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_CODES_IN_TEXT = re.compile(r"(?<![\w.])[245]\d\d(?:[ -]+#?[245]\.\d{1,3}\.\d{1,3}(?![.\d])|-)")
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u00a0": " "})


def phrase_text(text: str) -> str:
    """``text`` as phrases are matched in it: URLs and addresses taken out,
    reply-code prefixes of continuation lines dropped, in lower case, with
    every run of white space (line folds included) one space."""
    text = _URL.sub(" ", text.translate(_QUOTES))
    text = ADDRESS_IN_TEXT.sub("<address>", text)
    text = _CODES_IN_TEXT.sub(" ", text)
    return " ".join(text.lower().replace("<<<", " ").split())


def hits(text: str) -> list[Hit]:
    """Every vocabulary entry found in ``text`` (already a ``phrase_text``)."""
    found = []
    for entry in entries():
        if entry.anchor and entry.anchor not in text:
            continue
        match = entry.regex.search(text)
        if match:
            found.append(Hit(entry, match.group(0), match.start()))
    return found


# -- status codes --------------------------------------------------------------------------------

_STATUS_FIELD = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})(?![.\d])")
#: A basic reply code where replies stand (start, after a colon, a quote or
#: ``#``), with the enhanced code that may follow it.
_REPLY = re.compile(
    r"(?:^|(?<=[\s:;('\"#>\[]))([245][0-5]\d)(?=[ -]|$)"
    r"(?:[ -]+#?([245])\.(\d{1,3})\.(\d{1,3})(?![.\d]))?",
    re.MULTILINE,
)
#: ``#5.1.1``, ``(5.1.1)``, ``(#5.1.1)``, ``[#4.16.1]``, ``Status: 5.1.1``, or a
#: code that opens the text.
_MARKED = re.compile(
    r"(?:#|\(#?|\[#?|status:\s*|^\s*)([245])\.(\d{1,3})\.(\d{1,3})(?=[)\]\s,;:]|\.(?!\d)|$)",
    re.IGNORECASE | re.MULTILINE,
)


def status_code(field: str) -> Code | None:
    """The code of a DSN ``Status`` field (comments after it ignored)."""
    match = _STATUS_FIELD.match(field)
    return Code(*map(int, match.groups())) if match else None


@dataclass(frozen=True, slots=True)
class Codes:
    """The status codes a diagnostic text holds, in order."""

    replies: tuple[str, ...] = ()  # basic reply codes
    enhanced: tuple[Code, ...] = ()


def codes_in(text: str) -> Codes:
    replies: list[str] = []
    enhanced: list[tuple[int, Code]] = []
    for match in _REPLY.finditer(text):
        replies.append(match.group(1))
        if match.group(2):
            enhanced.append((match.start(2), Code(*map(int, match.group(2, 3, 4)))))
    seen = {at for at, _ in enhanced}
    for match in _MARKED.finditer(text):
        if match.start(1) not in seen:
            enhanced.append((match.start(1), Code(*map(int, match.groups()))))
    enhanced.sort(key=lambda pair: pair[0])
    return Codes(tuple(replies), tuple(code for _, code in enhanced))


# -- the verdict -----------------------------------------------------------------------------------


def decide(
    status: str = "", text: str = "", action: str = "", *, fallback: tuple[str, ...] = ()
) -> Verdict:
    """The verdict for one recipient from its ``Status`` field, its diagnostic
    ``text`` and the DSN ``action`` ("" when there is none). ``fallback`` holds
    more text, nearest first (the report's lines that name the recipient, then
    the lines that name nobody), weighed in turn only while the evidence so
    far names no cause; its codes never override the recipient's own."""
    action = action.strip().lower()
    if action in ("delivered", "relayed", "expanded"):
        return Verdict(DELIVERED, basis="action")
    field = status_code(status)
    found = codes_in(text)
    permanent = [r for r in found.replies if r[0] == "5"]
    temporary = [r for r in found.replies if r[0] == "4"]
    reply = (permanent or temporary or list(found.replies) or [""])[0]
    if any(c.klass != 2 for c in found.enhanced):  # a transcript's 250 is not the outcome
        found = Codes(found.replies, tuple(c for c in found.enhanced if c.klass != 2))
    specific = [c for c in found.enhanced if not c.generic]
    code = field
    if field is None or field.generic:
        if specific:
            code = specific[0]  # the remote's own code says more than a generic Status
        elif field is None and found.enhanced:
            code = found.enhanced[0]
    said = phrase_text(text)
    own = hits(said) if said else []
    if action == "delayed" or (field is not None and field.klass == 4):
        return _soft(field or code, reply, own, "action" if action == "delayed" else "status")
    if field is not None and field.klass == 2:
        return Verdict(DELIVERED, field, reply, basis="status")
    if code is not None and code.klass == 4:
        return _soft(code, reply, own, "status")  # given up after temporary failures
    if (code is None or code.generic) and reply.startswith("4"):
        return _soft(code, reply, own, "status")
    if code is not None and code.klass == 2:
        return Verdict(DELIVERED, code, reply, basis="status")
    verdict = _permanent(code, reply, own)
    for more in fallback:
        if verdict.basis != "default" or not more.strip():
            continue
        extra = codes_in(more)
        if code is None or code.generic:
            extra_specific = [c for c in extra.enhanced if not c.generic]
            if extra_specific and extra_specific[0].klass == 4:
                return _soft(extra_specific[0], reply, hits(phrase_text(more)), "status")
            if extra_specific and extra_specific[0].klass == 5:
                verdict = _permanent(extra_specific[0], reply, hits(phrase_text(more)))
                continue
        verdict = _permanent(code, reply, hits(phrase_text(more)))
    return verdict


def _soft(code: Code | None, reply: str, found: list[Hit], basis: str) -> Verdict:
    why = _strongest([h for h in found if h.entry.meaning in (Meaning.FULL, Meaning.TEMPORARY)])
    return Verdict(SOFT, code, reply, why, basis)


def _permanent(code: Code | None, reply: str, found: list[Hit]) -> Verdict:
    meaning = code.meaning if code is not None else None
    if meaning == Meaning.SENDER_ADDRESS:
        return Verdict(_KIND[meaning], code, reply, None, "status")
    sender = [h for h in found if h.entry.meaning == Meaning.SENDER_ADDRESS]
    if sender:
        return Verdict(REJECTION, code, reply, sender[0], "phrase")
    if code is not None:
        for documented in found:
            if documented.entry.code == (code.subject, code.detail):
                kind = _KIND[documented.entry.meaning]
                return Verdict(kind, code, reply, documented, "phrase")
    hit = _strongest([h for h in found if h.entry.code is None])
    if hit is not None:
        return Verdict(_KIND[hit.entry.meaning], code, reply, hit, "phrase")
    if meaning is not None:
        return Verdict(_KIND[meaning], code, reply, None, "status")
    return Verdict(REJECTION, code, reply, None, "default")


def _strongest(found: list[Hit]) -> Hit | None:
    if not found:
        return None
    return min(found, key=lambda h: (PRECEDENCE.index(h.entry.meaning), h.at))


def bounce_kind(status: str, diagnostic: str) -> str:
    """hard_bounce (the address is dead), soft_bounce (full, temporary),
    rejection (the sender's side, or unclear) or delivered."""
    return decide(status, diagnostic).kind
