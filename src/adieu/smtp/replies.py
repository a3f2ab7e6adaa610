"""SMTP replies, by name (as aiosmtpd's own tests do), and the mail doors' one
error map: every exception a relay or inbound handler meets becomes one of
these, never aiosmtpd's ``500 Error: (SomeClass) …`` with its traceback text.

Codes follow RFC 5321 §4.2 (2yz done, 4yz try again later, 5yz never again)
with the enhanced status codes of RFC 3463.
"""

from __future__ import annotations

import logging

from adieu.errors import AdieuError, storage_trouble

log = logging.getLogger("adieu.smtp")

OK = "250 2.0.0 OK"
RECIPIENT_OK = "250 2.1.5 OK"
RECORDED = "250 2.0.0 Recorded"
AUTH_REQUIRED = "530 5.7.0 Authentication required"
# RFC 3463 §3.8: delivery not authorized, message refused.
NOT_WANTED = "550 5.7.1 <{address}> does not receive this mail: {why}"
BAD_ADDRESS = "553 5.1.3 <{address}> is not a valid address"
BAD_MESSAGE = "554 5.6.0 {why}"
TRY_LATER = "451 4.4.1 The next hop did not take the message; please try again later"
LOCAL_ERROR = "451 4.3.0 {why}"
CANNOT_RECORD = "451 4.3.0 Cannot record this now; please try again later"
CANNOT_DECIDE = "451 4.3.0 Cannot decide this now; please try again later"
# RFC 5321 §4.5.3.1.8: the client sends the other recipients in another transaction.
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
# RFC 6531 §3.7.4.1 and RFC 3463's 5.6.7 (address not representable).
NEEDS_SMTPUTF8 = "553 5.6.7 <{address}> is an internationalised address: {why}"
# After too many failed logins from one client address (and then the connection closes).
AUTH_THROTTLED = "421 4.7.0 Too many failed authentication attempts; try again later"
# The relay's answer to DATA (see adieu.smtp.relay): per recipient, the copy
# was delivered, or refused for good by the next hop and recorded in the ledger.
DELIVERED_TO = "250 2.0.0 Accepted for {count} recipient(s)"
DELIVERED_SOME_REFUSED = (
    "250 2.0.0 Accepted for {count} recipient(s); {refused} refused for good by the next hop"
    " (recorded in the ledger)"
)
ALL_REFUSED = "{code} {status} The next hop refused every recipient: {why}"


def printable(text: str) -> str:
    """``text`` safe inside a reply line: no control characters, no angle brackets."""
    return "".join(ch if ch.isprintable() and ch not in "<>" else "?" for ch in text)[:200]


def reply_for(exc: BaseException) -> str:
    """The one mapping from an exception to an SMTP reply.

    Adieu's own errors say what is wrong with the message (permanent, with
    their text); a ledger that cannot answer is "try again later"; anything
    unexpected is logged and also "try again later", so a fault here never
    turns into a permanent bounce of good mail.
    """
    if isinstance(exc, AdieuError) and not storage_trouble(exc):
        code, status = exc.smtp_reply
        return f"{code} {status} {printable(str(exc))}"
    if storage_trouble(exc):
        log.warning("ledger unavailable: %s", type(exc).__name__)
        return CANNOT_DECIDE
    log.error("unexpected error in an SMTP handler", exc_info=exc)
    return LOCAL_ERROR.format(why="Temporary local problem; please try again later")
