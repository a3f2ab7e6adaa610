"""``adieu lint``: does a message (or template) meet R1, R8, R9 and RFC 8058?

Checks, each with the rule it serves:
- RFC 2369 / R8: one List-Unsubscribe field with an HTTPS URI;
- RFC 8058 §3.1: List-Unsubscribe-Post is exactly ``List-Unsubscribe=One-Click``;
- RFC 8058 §4: when DKIM-signed, a signature covers both headers;
- R1 / R9: every text and HTML part shows an unsubscribe link, readable (not
  tiny, hidden, same colour as its background, or an image alone) and at the
  top or bottom of the message rather than lost in the middle;
- RFC 2919 (a warning): list mail has one List-Id;
- RFC 9477 (warnings): a CFBL-Address appears once, its domain is From's or
  below it, and a DKIM signature covers it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import Any

from adieu.i18n import available, gettext
from adieu.mail.dkim import split_message
from adieu.mail.stamp import body_parts, cfbl_aligned, parse

ERROR, WARNING = "error", "warning"
_URI = re.compile(r"<([^>]*)>")
_ONE_CLICK = "List-Unsubscribe=One-Click"
_PLACEHOLDER = re.compile(r"\{\{\s*unsubscribe_url\s*\}\}")
# The word for "unsubscribe" in every shipped language, and common English forms.
_WORDS = {gettext("Unsubscribe", lang).lower() for lang in available()} | {
    "unsubscribe",
    "opt out",
    "opt-out",
    "abmelden",
    "avregistrera",
    "désinscrire",
    "désabonner",
}


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    severity: str
    message: str


def lint(data: bytes) -> list[Finding]:
    message = parse(data)
    findings: list[Finding] = []
    url = _check_headers(message, findings)
    signatures = _signed_names(data)
    _check_dkim(signatures, findings)
    _check_list_id(message, findings)
    _check_cfbl(message, signatures, findings)
    parts = list(body_parts(message))
    if not parts:
        findings.append(
            Finding("R1", ERROR, "The message has no text or HTML part to show a link in.")
        )
    for part in parts:
        assert isinstance(part, EmailMessage)
        kind = part.get_content_type()
        try:
            content = part.get_content()
        except (LookupError, UnicodeError, KeyError):
            findings.append(Finding("R1", ERROR, f"The {kind} part cannot be decoded (charset)."))
            continue
        if not isinstance(content, str):
            continue
        if kind == "text/html":
            _check_html(content, url, findings)
        elif not (url and url in content) and not _PLACEHOLDER.search(content):
            findings.append(Finding("R1", ERROR, "The text/plain part has no unsubscribe link."))
    return findings


def report(findings: list[Finding]) -> dict[str, Any]:
    return {
        "findings": [asdict(f) for f in findings],
        "errors": sum(f.severity == ERROR for f in findings),
        "warnings": sum(f.severity == WARNING for f in findings),
    }


def _check_headers(message: EmailMessage, findings: list[Finding]) -> str | None:
    post = message.get_all("List-Unsubscribe-Post") or []
    if not post:
        findings.append(Finding("RFC8058", ERROR, "There is no List-Unsubscribe-Post header."))
    elif len(post) > 1 or str(post[0]).strip() != _ONE_CLICK:
        findings.append(
            Finding("RFC8058", ERROR, f"List-Unsubscribe-Post must be exactly {_ONE_CLICK!r}.")
        )
    fields = message.get_all("List-Unsubscribe") or []
    if not fields:
        findings.append(Finding("R8", ERROR, "There is no List-Unsubscribe header."))
        return None
    if len(fields) > 1:
        findings.append(Finding("RFC2369", ERROR, "List-Unsubscribe appears more than once."))
    uris = _URI.findall(str(fields[0]))
    https = [u for u in uris if u.lower().startswith("https://")]
    if not uris:
        findings.append(
            Finding("RFC2369", ERROR, "List-Unsubscribe holds no <URI> in angle brackets.")
        )
    if not https:
        findings.append(
            Finding("RFC8058", ERROR, "List-Unsubscribe has no HTTPS URI for one-click.")
        )
    elif len(https) > 1:
        findings.append(Finding("RFC8058", ERROR, "List-Unsubscribe has more than one HTTPS URI."))
    return https[0] if https else None


def _signed_names(data: bytes) -> list[set[str]]:
    """The header names (h=) of each DKIM signature."""
    fields, _ = split_message(data)
    found = []
    for name, raw in fields:
        if name != b"dkim-signature":
            continue
        tags = dict(
            (k.strip(), v)
            for k, _, v in (
                t.partition("=")
                for t in re.sub(r"\s+", "", raw.decode("latin-1").split(":", 1)[1]).split(";")
            )
        )
        found.append({h.lower() for h in tags.get("h", "").split(":")})
    return found


def _check_dkim(signatures: list[set[str]], findings: list[Finding]) -> None:
    if not signatures or any(
        {"list-unsubscribe", "list-unsubscribe-post"} <= signed for signed in signatures
    ):
        return
    findings.append(
        Finding("RFC8058", ERROR, "No DKIM signature covers both List-Unsubscribe headers (h=).")
    )


def _check_list_id(message: EmailMessage, findings: list[Finding]) -> None:
    ids = message.get_all("List-Id") or []
    if len(ids) > 1:
        findings.append(Finding("RFC2919", WARNING, "List-Id appears more than once."))
    elif not ids and message.get("List-Unsubscribe"):
        findings.append(
            Finding(
                "RFC2919",
                WARNING,
                "There is no List-Id header: mailbox providers cannot tell this list "
                "from the sender's others.",
            )
        )


def _check_cfbl(message: EmailMessage, signatures: list[set[str]], findings: list[Finding]) -> None:
    fields = message.get_all("CFBL-Address") or []
    if not fields:
        return
    if len(fields) > 1:
        findings.append(
            Finding("RFC9477", WARNING, "CFBL-Address appears more than once; it is ignored.")
        )
    address = str(fields[0]).split(";", 1)[0].strip()
    if not cfbl_aligned(address, message):
        findings.append(
            Finding(
                "RFC9477",
                WARNING,
                "The CFBL-Address domain is neither the From domain nor below it: receivers "
                "ignore it unless that domain signs the message too (RFC 9477 §3.1).",
            )
        )
    if signatures and not any("cfbl-address" in signed for signed in signatures):
        findings.append(Finding("RFC9477", WARNING, "No DKIM signature covers CFBL-Address (h=)."))


class _Links(HTMLParser):
    """Collects links with their effective inline style and text position."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text_length = 0
        self.links: list[dict[str, Any]] = []
        self._styles: list[tuple[str, str]] = []  # (tag, style) stack
        self._open: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k.lower(): v or "" for k, v in attrs}
        style = values.get("style", "")
        if "hidden" in values:
            style += ";display:none"
        if tag not in ("br", "img", "hr", "meta", "link", "input"):
            self._styles.append((tag, style))
        if tag == "a":
            self._open = {
                "href": values.get("href", ""),
                "at": self.text_length,
                "text": "",
                "images": 0,
                "style": ";".join(s for _, s in self._styles),
            }
        elif tag == "img" and self._open is not None:
            self._open["images"] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.links.append(self._open)
            self._open = None
        for i in range(len(self._styles) - 1, -1, -1):
            if self._styles[i][0] == tag:
                del self._styles[i:]
                break

    def handle_data(self, data: str) -> None:
        text = " ".join(data.split())
        self.text_length += len(text)
        if self._open is not None:
            self._open["text"] += text


def _style(style: str, name: str) -> str | None:
    found = None
    for decl in style.split(";"):
        key, _, value = decl.partition(":")
        if key.strip().lower() == name:
            found = value.strip().lower()
    return found


def _px(value: str | None) -> float | None:
    if not value:
        return None
    match = re.fullmatch(r"([\d.]+)\s*(px|pt|em|rem)?", value)
    if not match:
        return None
    number = float(match.group(1))
    return {"pt": number * 4 / 3, "em": number * 16, "rem": number * 16}.get(
        match.group(2) or "px", number
    )


def _check_html(content: str, url: str | None, findings: list[Finding]) -> None:
    if _PLACEHOLDER.search(content):
        return  # a template: the link is filled in at stamping
    parser = _Links()
    parser.feed(content)
    parser.close()
    candidates = [
        link
        for link in parser.links
        if (url and link["href"] == url) or link["text"].strip().lower() in _WORDS
    ]
    if not candidates:
        findings.append(Finding("R1", ERROR, "The text/html part has no unsubscribe link."))
        return
    link = candidates[0]
    style = link["style"]
    if link["images"] and not link["text"].strip():
        findings.append(Finding("R9", ERROR, "The unsubscribe link is an image only; use a word."))
    size = _px(_style(style, "font-size"))
    if size is not None and size < 10:
        findings.append(Finding("R9", ERROR, f"The unsubscribe link is tiny ({size:g}px)."))
    if (
        _style(style, "display") == "none"
        or _style(style, "visibility") == "hidden"
        or _style(style, "opacity") in ("0", "0.0")
    ):
        findings.append(Finding("R9", ERROR, "The unsubscribe link is hidden."))
    colour, background = (
        _style(style, "color"),
        _style(style, "background-color") or _style(style, "background"),
    )
    if colour and background and colour == background:
        findings.append(
            Finding("R9", ERROR, "The unsubscribe link has the colour of its background.")
        )
    total = max(parser.text_length, 1)
    position = link["at"] / total
    if total > 400 and 0.25 < position < 0.75:
        findings.append(
            Finding(
                "R9",
                WARNING,
                "The unsubscribe link sits in the middle; put it at the top or bottom.",
            )
        )
