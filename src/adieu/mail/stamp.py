"""Stamping one recipient's copy of a message (R1, R8, R9; RFC 2369, RFC 8058).

- ``List-Unsubscribe`` (the HTTPS link, and a mailto when configured),
  ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` and ``Feedback-ID``:
  exactly one of each, replacing any the message had, folded by the email
  package's SMTP policy (which also refuses CR/LF in values: no injection).
- ``List-Id`` (RFC 2919): ``Topic name <topic-key.DOMAIN>``, or for mail to
  all marketing the sender's name and ``<all.DOMAIN>``. DOMAIN is the host of
  ``ADIEU_BASE_URL``: a name the sender controls (it serves the unsubscribe
  pages), the same for every message whatever its From, so a list keeps its
  id; an IP address or ``localhost`` gives RFC 2919's unmanaged ``localhost``.
- With ``ADIEU_COMPLAINT_ADDRESS``: ``CFBL-Address: ADDRESS; report=arf`` and
  ``CFBL-Feedback-ID`` (RFC 9477), the recipient's compact token, so a
  complaint names its recipient even when the provider strips the rest. Only
  when ADDRESS's domain is From's or below it (RFC 9477 §3.1.1, §3.1.2): a
  third-party address would need a second signature, from its own domain,
  which Adieu cannot make, so it is left out (``adieu lint`` says why).
- A visible link in every text and HTML body part: the template's
  ``{{ unsubscribe_url }}`` / ``{{ preferences_url }}`` placeholders when it has
  them, otherwise a footer with the single word for "unsubscribe" in the
  recipient's language (R1), readable and where it is expected (R9).
"""

from __future__ import annotations

import html
import ipaddress
import re
from collections.abc import Callable, Iterator
from email import policy
from email.header import Header
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses
from urllib.parse import urlsplit

from adieu.errors import InvalidInput
from adieu.i18n import gettext, negotiate
from adieu.service import ONE_CLICK, Link

SMTP = policy.SMTP.clone(max_line_length=78, refold_source="none")
_PARSER = BytesParser(policy=SMTP)
_PLACEHOLDER = {
    "unsubscribe_url": re.compile(r"\{\{\s*unsubscribe_url\s*\}\}"),
    "preferences_url": re.compile(r"\{\{\s*preferences_url\s*\}\}"),
}
_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
_BODY_CLOSE = re.compile(r"</body\s*>", re.IGNORECASE)
HEADERS = ("List-Unsubscribe", "List-Unsubscribe-Post", "Feedback-ID", "List-Id")
CFBL_HEADERS = ("CFBL-Address", "CFBL-Feedback-ID")
#: The List-Id label of mail to all marketing (never a topic key: topics may not be "all").
ALL_LABEL = "all"
_PHRASE_ATOMS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+")


def parse(data: bytes) -> EmailMessage:
    message = _PARSER.parsebytes(data)
    assert isinstance(message, EmailMessage)
    if not message.keys():
        raise InvalidInput("That is not an email message: it has no header fields.")
    return message


def feedback_id(campaign: str | None, topic: str | None, sender: str) -> str:
    """Gmail's Feedback-ID: up to four colon-separated fields, the sender last."""
    parts = [campaign or "none", topic or "all", sender]
    return ":".join(re.sub(r"[^A-Za-z0-9._-]", "-", p)[:60] for p in parts)


def list_id_domain(base_url: str) -> str:
    """The List-Id namespace: the host of the links' origin (RFC 2919 §3:
    ``localhost`` when that is no domain name)."""
    host = (urlsplit(base_url).hostname or "").rstrip(".").lower()
    try:
        ipaddress.ip_address(host)
        return "localhost"
    except ValueError:
        return host if "." in host else "localhost"


def list_id(name: str, label: str, domain: str) -> str:
    """``name <label.domain>`` (RFC 2919): the name quoted or RFC 2047-encoded
    as a phrase needs, the label made a dot-atom."""
    label = re.sub(r"\.{2,}", ".", label).strip(".") or ALL_LABEL
    name = " ".join(name.split())
    if not name:
        return f"<{label}.{domain}>"
    if _PHRASE_ATOMS.fullmatch(name):
        phrase = name
    elif name.isascii():
        phrase = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    else:
        phrase = Header(name, "utf-8", maxlinelen=76, header_name="List-Id").encode(linesep="\n")
    return f"{phrase}\n <{label}.{domain}>" if len(phrase) > 50 else f"{phrase} <{label}.{domain}>"


def cfbl_aligned(complaint_address: str, message: Message) -> bool:
    """Whether the complaint address's domain is From's domain or below it
    (RFC 9477 §3.1.1 and §3.1.2), so From's own DKIM signature covers it."""
    found = getaddresses([str(v) for v in message.get_all("From") or []])
    if len(found) != 1:
        return False
    author = found[0][1].rpartition("@")[2].rstrip(".").lower()
    domain = complaint_address.rpartition("@")[2].rstrip(".").lower()
    return bool(author) and (domain == author or domain.endswith("." + author))


def set_headers(
    message: EmailMessage,
    link: Link,
    feedback: str,
    *,
    list_id: str | None = None,
    cfbl: tuple[str, str] | None = None,
) -> None:
    """Exactly one List-Unsubscribe, List-Unsubscribe-Post, Feedback-ID and
    (when given) List-Id; with ``cfbl`` (the complaint address and the
    feedback id), exactly one CFBL-Address and CFBL-Feedback-ID (otherwise
    the message's own, if any, are left as they are).

    Written raw, never RFC 2047-encoded (mail clients must read the URIs as
    they are): a URI cannot be folded, so the field breaks only between its
    URIs, and stays far below RFC 5322's 998-character limit.
    """
    for name in HEADERS + (CFBL_HEADERS if cfbl else ()):
        del message[name]
    targets = [t.strip() for t in link.headers["List-Unsubscribe"].split(",")]
    values = {
        "List-Unsubscribe": ",\n ".join(targets),
        "List-Unsubscribe-Post": ONE_CLICK,
        "Feedback-ID": feedback,
    }
    if list_id is not None:
        values["List-Id"] = list_id
    if cfbl is not None:
        values["CFBL-Address"] = f"{cfbl[0]}; report=arf"
        values["CFBL-Feedback-ID"] = cfbl[1]
    for name, value in values.items():
        if "\r" in value or any(len(line) > 900 for line in value.split("\n")):
            raise InvalidInput(f"The {name} value cannot be written safely.")
        message.set_raw(name, value)


def body_parts(message: Message) -> Iterator[Message]:
    """The text and HTML parts a reader sees (attachments left out)."""
    for part in message.walk():
        if part.is_multipart() or part.get_content_type() not in ("text/plain", "text/html"):
            continue
        if part.get_content_disposition() == "attachment":
            continue
        yield part


class Footer:
    """The visible link, in the reader's language, with the configured look."""

    def __init__(self, position: str = "bottom", emphasis: frozenset[str] = frozenset()) -> None:
        self.position = position
        self.emphasis = emphasis

    def words(self, locale: str) -> tuple[str, str]:
        return gettext("Unsubscribe", locale), gettext("Change my preferences", locale)

    def text(self, link: Link, locale: str) -> str:
        unsubscribe, preferences = self.words(locale)
        word = unsubscribe.upper() if "bold" in self.emphasis else unsubscribe
        return f"{word}: {link.url}\n{preferences}: {link.preferences_url}\n"

    def html(self, link: Link, locale: str) -> str:
        unsubscribe, preferences = self.words(locale)
        style = ["color:#0b5cad"]
        if "bold" in self.emphasis:
            style.append("font-weight:bold")
        style.append("text-decoration:underline" if "underline" in self.emphasis else "")
        align = "center" if "centred" in self.emphasis else "left"
        link_style = ";".join(s for s in style if s)
        return (
            f'<div style="margin:24px 0;font-size:14px;line-height:1.5;color:#1f2328;'
            f'text-align:{align}">'
            f'<a href="{html.escape(link.url)}" style="{link_style}">{html.escape(unsubscribe)}</a>'
            " &middot; "
            f'<a href="{html.escape(link.preferences_url)}" style="color:#0b5cad">'
            f"{html.escape(preferences)}</a></div>"
        )

    def apply(self, message: EmailMessage, link: Link, locale: str) -> int:
        """Fill placeholders or add the footer in every body part; returns how
        many parts got a link. A part whose charset cannot be read is left as
        it is (``adieu lint`` reports it)."""
        done = 0
        for part in body_parts(message):
            assert isinstance(part, EmailMessage)
            try:
                content = part.get_content()
            except (LookupError, UnicodeError, KeyError):
                continue
            if not isinstance(content, str):
                continue
            is_html = part.get_content_subtype() == "html"
            values = {
                "unsubscribe_url": html.escape(link.url) if is_html else link.url,
                "preferences_url": html.escape(link.preferences_url)
                if is_html
                else link.preferences_url,
            }
            if _PLACEHOLDER["unsubscribe_url"].search(content):
                for name, pattern in _PLACEHOLDER.items():
                    # a function, so that nothing in the URL is read as a group
                    content = pattern.sub(_literal(values[name]), content)
            elif is_html:
                content = self._into_html(content, self.html(link, locale))
            else:
                footer = self.text(link, locale)
                content = (
                    f"{footer}\n{content}"
                    if self.position == "top"
                    else f"{content.rstrip()}\n\n-- \n{footer}"
                )
            _replace_text(part, content)
            done += 1
        return done

    def _into_html(self, content: str, footer: str) -> str:
        if self.position == "top":
            found = _BODY_OPEN.search(content)
            return (
                content[: found.end()] + footer + content[found.end() :]
                if found
                else footer + content
            )
        closes = list(_BODY_CLOSE.finditer(content))
        if not closes:
            return content + footer
        at = closes[-1].start()
        return content[:at] + footer + content[at:]


def _literal(value: str) -> Callable[[re.Match[str]], str]:
    return lambda _match: value


def _replace_text(part: Message, content: str) -> None:
    """New text for a part, in its own charset when that can hold it."""
    charset = part.get_content_charset() or "utf-8"
    try:
        content.encode(charset)
    except (LookupError, UnicodeError):
        charset = "utf-8"
    subtype = part.get_content_subtype()
    # Raw, so that no header is parsed just to be written back as it was.
    keep = [
        (k, v)
        for k, v in part.raw_items()
        if k.lower() not in ("content-type", "content-transfer-encoding", "mime-version")
    ]
    assert isinstance(part, EmailMessage)
    had_version = "MIME-Version" in part
    # Plain ASCII stays unencoded (RFC 5322 allows lines up to 998 characters),
    # so links read as they are; anything else gets quoted-printable or base64.
    plain = content.isascii() and max(map(len, content.splitlines()), default=0) <= 998
    part.set_content(content, subtype=subtype, charset=charset, cte="7bit" if plain else None)
    if not had_version:  # set_content adds one; only the top of a message has it
        del part["MIME-Version"]
    for name, value in keep:
        if name not in part:
            part.set_raw(name, value)


def locale_of(message: Message, fallback: str) -> str:
    return negotiate(
        *(tag.strip() for tag in str(message.get("Content-Language", "")).split(",")),
        default=fallback,
    )
