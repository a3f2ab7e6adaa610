"""The words that mark a message as a delivery report, and the stand-ins
providers put where they withhold an address: small data, read for every
message that is not plainly a report (so kept apart from the phrase table,
which only a report loads).

Sources: the MTAs' own notices (Postfix "Undelivered Mail Returned to
Sender", Exim "Mail delivery failed: returning message to sender", qmail
"failure notice", sendmail "Returned mail: see transcript for details",
Exchange "Undeliverable:", Gmail "Delivery Status Notification (Failure)",
GroupWise "Message status - undeliverable", Domino "DELIVERY FAILURE"), RFC
3464's notification text, RFC 6590 (redacted addresses in ARF) and RFC 5322's
``undisclosed-recipients:;``.
"""

from __future__ import annotations

#: Subjects of delivery failure and delay notices (matched anywhere in the
#: Subject, in lower case).
BOUNCE_SUBJECTS: tuple[str, ...] = (
    "undeliver",  # Undeliverable, Undelivered Mail Returned to Sender
    "undelivered",
    "delivery status notification",
    "delivery failure",
    "delivery failed",
    "delivery notification",
    "delivery has failed",
    "delivery problem",
    "mail delivery failed",
    "failure notice",
    "returned mail",
    "returned to sender",
    "non-delivery",
    "nondeliverable",
    "not delivered",
    "could not be delivered",
    "message status - undeliverable",
    "delayed mail",
    "delivery delayed",
    "warning: message",
    "mail system error",
    "delivery report",
    "rejected:",
    "unzustellbar",
    "nicht zustellbar",
    "non remis",
    "non recapitabile",
    "no se puede entregar",
    "onbestelbaar",
    "olevererbart",
    "message not delivered",
    "mail delivery failure",
    "policy notification",
)

#: Local parts (and display names) of the systems that send those notices.
BOUNCE_SENDERS: tuple[str, ...] = (
    "mailer-daemon",
    "mailer_daemon",
    "mailerdaemon",
    "mail-daemon",
    "postmaster",
    "mail delivery",
    "mail administrator",
    "system administrator",
    "mdaemon",
)

#: Words of a report's own preamble that say a delivery failed or is delayed.
BOUNCE_PREAMBLES: tuple[str, ...] = (
    "could not be delivered",
    "couldn't be delivered",
    "could not deliver",
    "was not delivered",
    "wasn't delivered",
    "were not delivered",
    "undeliverable",
    "not be delivered",
    "unable to deliver",
    "wasn't able to deliver",
    "was unable to deliver",
    "delivery has failed",
    "delivery failed",
    "delivery to the following",
    "following address(es) failed",
    "following addresses had permanent fatal errors",
    "following recipient(s)",
    "permanent error",
    "permanent fatal",
    "delivery failure",
    "delivery status notification",
    "has not yet been delivered",
    "not yet been delivered",
    "still being retried",
    "will continue to retry",
    "could not be sent",
    "failed permanently",
    "failed to deliver",
    "did not reach",
    "message was blocked",
    "was blocked",
    "returned to sender",
    "delivery to the following recipient",
)

#: Local parts a provider puts in place of a reported address (RFC 6590
#: redaction, "undisclosed recipients"): never a person.
PLACEHOLDERS: tuple[str, ...] = (
    "redacted",
    "removed",
    "hidden",
    "anonymous",
    "anonymized",
    "anonymised",
    "undisclosed",
    "undisclosed-recipients",
    "undisclosed-recipient",
    "unknown",
    "recipient",
    "nobody",
    "noreply",
    "no-reply",
    "null",
    "invalid",
    "user",
    "email",
    "address",
)
