"""Reading returned mail recipient by recipient: the defects of the first
reader, each shown on a message written from the published format (RFC 3464
DSNs, RFC 5965 ARF, the MTAs' plain-text bounces, Amazon SES notifications),
and the properties the reader keeps (never a finding for an address that is
not a recipient, never a suppression for a sender-side refusal).

These are pure: ``classify`` with a codec that opens none of the tokens, as
mail returned for another sender would be."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adieu.feedback import phrases, vocabulary
from adieu.feedback.classify import Classification, classify
from adieu.feedback.vocabulary import codes_in, decide
from adieu.tokens import TokenCodec

CODEC = TokenCodec({1: bytes(range(32))})

#: The returned original of a marketing message: every header a receiving
#: system adds, whose names and values say nothing about the recipient.
ORIGINAL = (
    "Return-Path: <bounces@news.example.com>\n"
    "Received-SPF: softfail (mx.example.org: domain of news.example.com does not designate"
    " 198.51.100.7 as permitted sender)\n"
    "Authentication-Results: mx.example.org; dkim=fail; spf=softfail; dmarc=fail\n"
    "X-Spam-Status: Yes, score=7.1 required=5.0 tests=SPAM_CONTENT,URIBL_BLOCKED\n"
    "X-Spam-Flag: YES\n"
    "DKIM-Signature: v=1; a=rsa-sha256; d=news.example.com; s=s1; bh=abc=; b=def=\n"
    "From: Example News <news@news.example.com>\n"
    "Reply-To: care@example.com\n"
    "To: {to}\n"
    "Subject: Is your inbox full? Our content is generated at a new rate\n"
    "Message-ID: <m1@news.example.com>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "\n"
    "Spam-free deals, blocked prices, a virus of savings. Unsubscribe any time.\n"
)


def original(to: str = "undisclosed-recipients:;") -> str:
    return ORIGINAL.format(to=to)


def verdicts(result: Classification) -> dict[str, str]:
    return {f.address: f.kind.value for f in result.findings}


def read(raw: bytes | str) -> Classification:
    return classify(raw.encode() if isinstance(raw, str) else raw, CODEC)


def dsn(
    *blocks: str,
    text: str = "Your message could not be delivered.\n",
    outer: str = "multipart/report; report-type=delivery-status",
    returned: str | None = None,
    headers: str = "",
) -> str:
    """A DSN (RFC 3464): a notification, the delivery-status part (one block
    per recipient after the per-message block) and the returned original."""
    status = "Reporting-MTA: dns; mx.example.net\n\n" + "\n".join(blocks)
    kept = original() if returned is None else returned
    return (
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\n"
        "To: bounces@news.example.com\nSubject: Undelivered Mail Returned to Sender\n"
        f"Auto-Submitted: auto-replied\n{headers}MIME-Version: 1.0\n"
        f'Content-Type: {outer}; boundary="B"\n\n'
        f"--B\nContent-Type: text/plain\n\n{text}\n"
        f"--B\nContent-Type: message/delivery-status\n\n{status}\n"
        f"--B\nContent-Type: message/rfc822\n\n{kept}\n--B--\n"
    )


def block(
    final: str,
    status: str,
    diagnostic: str = "",
    action: str = "failed",
    original_recipient: str = "",
) -> str:
    lines = [f"Final-Recipient: {final}"]
    if original_recipient:
        lines.append(f"Original-Recipient: {original_recipient}")
    lines += [f"Action: {action}", f"Status: {status}"]
    if diagnostic:
        lines.append(f"Diagnostic-Code: {diagnostic}")
    return "\n".join(lines) + "\n"


def exim(report: str, headers: str = "") -> str:
    """Exim's plain-text bounce: the failed addresses, indented, each with
    its reason, then a copy of the message."""
    return (
        "From: Mail Delivery System <Mailer-Daemon@mx.example.net>\n"
        "To: bounces@news.example.com\n"
        f"Subject: Mail delivery failed: returning message to sender\n{headers}\n"
        "This message was created automatically by mail delivery software.\n\n"
        "A message that you sent could not be delivered to one or more of its\n"
        "recipients. This is a permanent error. The following address(es) failed:\n\n"
        f"{report}\n"
        "------ This is a copy of the message, including all the headers. ------\n\n"
        f"{original()}"
    )


def qmail(report: str) -> str:
    return (
        "From: MAILER-DAEMON@mx.example.net\nTo: bounces@news.example.com\n"
        "Subject: failure notice\n\n"
        "Hi. This is the qmail-send program at mx.example.net.\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
        f"{report}\n"
        "--- Below this line is a copy of the message.\n\n"
        f"{original()}"
    )


# -- verdicts come from the report's words, never from the whole message ------------------------


def test_a_plain_bounce_is_judged_on_its_report_not_on_the_returned_headers() -> None:
    """Content-Type, DKIM-Signature, Received-SPF and X-Spam-* in the returned
    original, and its subject's words, decide nothing."""
    raw = exim(
        "  ann@example.org\n    host mx.example.org [192.0.2.10]\n"
        "    SMTP error from remote mail server after RCPT TO:<ann@example.org>:\n"
        "    550 5.1.1 <ann@example.org>: Recipient address rejected: User unknown\n"
    )
    found = read(raw)
    assert verdicts(found) == {"ann@example.org": "hard_bounce"}
    (finding,) = found.findings
    assert finding.details["phrase"] == "user unknown"
    assert finding.details["status"] == "5.1.1"
    assert finding.details["recipient_from"] == "report-text"


def test_each_recipient_is_judged_on_its_own_lines() -> None:
    """One recipient's full mailbox, and the first code in the message, decide
    nothing for another (qmail, and Postfix's plain-text form)."""
    raw = qmail(
        "<bob@example.org>:\n192.0.2.10 does not like recipient.\n"
        "Remote host said: 552 5.2.2 <bob@example.org>: Mailbox full\nGiving up on 192.0.2.10.\n\n"
        "<cat@example.org>:\nSorry, no mailbox here by that name. (#5.1.1)\n"
    )
    assert verdicts(read(raw)) == {
        "bob@example.org": "soft_bounce",
        "cat@example.org": "hard_bounce",
    }
    postfix = (
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\n"
        "To: bounces@news.example.com\nSubject: Undelivered Mail Returned to Sender\n\n"
        "This is the mail system at host mx.example.net.\n\n"
        "<dan@example.org>: host mx.example.org[192.0.2.10] said: 550 5.7.1 Service\n"
        "    unavailable; Client host [198.51.100.7] blocked using zen.spamhaus.org\n"
        "    (in reply to RCPT TO command)\n\n"
        "<eve@example.org>: host mx.example.org[192.0.2.10] said: 550 5.1.1\n"
        "    <eve@example.org>: Recipient address rejected: User unknown in virtual\n"
        "    mailbox table (in reply to RCPT TO command)\n"
    )
    assert verdicts(read(postfix)) == {
        "dan@example.org": "rejection",
        "eve@example.org": "hard_bounce",
    }


def test_a_dsn_block_is_judged_on_its_own_fields() -> None:
    raw = dsn(
        block("rfc822; fay@example.org", "5.2.2", "smtp; 552 5.2.2 Mailbox full"),
        block("rfc822; gus@example.org", "5.1.1", "smtp; 550 5.1.1 User unknown"),
        block("rfc822; hal@example.org", "5.7.1", "smtp; 554 5.7.1 Message rejected as spam"),
    )
    assert verdicts(read(raw)) == {
        "fay@example.org": "soft_bounce",
        "gus@example.org": "hard_bounce",
        "hal@example.org": "rejection",
    }


# -- where the delivery-status part is --------------------------------------------------------


def test_a_delivery_status_part_inside_multipart_mixed_is_read() -> None:
    """Gateways and OpenSMTPD send the DSN parts in multipart/mixed."""
    raw = dsn(
        block("rfc822; ivy@example.org", "5.0.0", "smtp; 550 Invalid recipient"),
        outer="multipart/mixed",
        text="Hi!\n\nThis is the MAILER-DAEMON, please DO NOT REPLY to this email.\n\n"
        "An error has occurred while attempting to deliver a message for the\n"
        "following list of recipients:\n\nivy@example.org: 550 Invalid recipient\n",
    )
    found = read(raw)
    assert verdicts(found) == {"ivy@example.org": "hard_bounce"}
    assert found.findings[0].details["recipient_from"] == "final-recipient"


def test_a_dsn_forwarded_inside_a_list_footer_is_read() -> None:
    inner = dsn(block("rfc822; jo@example.org", "5.1.1", "smtp; 550 5.1.1 No such user"))
    head, _, body = inner.partition("\n\n")
    wrapped = (
        "From: list-bounces@lists.example.com\nTo: bounces@news.example.com\n"
        "Subject: Undelivered Mail Returned to Sender\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="W"\n\n'
        f"--W\n{head.split(chr(10), 4)[-1]}\n\n{body}\n"
        "--W\nContent-Type: text/plain\n\n_______________\n"
        "To unsubscribe: list-leave@lists.example.com\n"
        "--W--\n"
    )
    assert verdicts(read(wrapped)) == {"jo@example.org": "hard_bounce"}


# -- who the recipient is -----------------------------------------------------------------------


def test_an_unusable_final_recipient_falls_back_to_original_recipient() -> None:
    quoted = block(
        'RFC822; "Kim Lee" <klee@mail.corp>',
        "5.1.1",
        "smtp; 550 5.1.1 User unknown",
        original_recipient="rfc822;kim.lee@example.org",
    )
    notes = block(
        "x-notes; CN=Lou Ma/O=Example",
        "5.0.0",
        "X-Notes; User Lou Ma not listed in Domino Directory",
        original_recipient="rfc822; lou.ma@example.org",
    )
    found = read(dsn(quoted, notes))
    assert verdicts(found) == {
        "kim.lee@example.org": "hard_bounce",
        "lou.ma@example.org": "hard_bounce",
    }
    assert {f.details["recipient_from"] for f in found.findings} == {"original-recipient"}


def test_x_failed_recipients_and_the_report_name_a_recipient_no_field_names() -> None:
    directory_name = block("rfc822; MOrr.PO1.Example", "5.1.1", "X-GroupWise; User not found")
    found = read(dsn(directory_name, headers="X-Failed-Recipients: max.orr@example.org\n"))
    assert verdicts(found) == {"max.orr@example.org": "hard_bounce"}
    assert found.findings[0].details["recipient_from"] == "x-failed-recipients"
    text = "The message that you sent was undeliverable to the following:\n\tned@example.org\n"
    found = read(dsn(block("rfc822; NOkafor.PO1.Example", "5.2.1", ""), text=text))
    assert verdicts(found) == {"ned@example.org": "hard_bounce"}
    assert found.findings[0].details["recipient_from"] == "report-text"


def test_a_bounce_of_a_bounce_names_nobody() -> None:
    """Our forwarding of an old bounce failed: neither the forwarding address
    nor the old bounce's recipient is a recipient of this report."""
    old = dsn(block("rfc822; ola@example.org", "5.1.1", "smtp; 550 5.1.1 User unknown"))
    raw = dsn(
        block("rfc822; archive@example.net", "5.2.1", "smtp; 550 5.2.1 Mailbox disabled"),
        returned=old,
    )
    found = read(raw)
    assert found.findings == () and found.kind == "unknown"


def test_a_bounce_forwarded_by_a_person_is_read_inside_the_forward() -> None:
    inner = dsn(block("rfc822; pam@example.org", "5.1.1", "smtp; 550 5.1.1 User unknown"))
    raw = (
        "From: Ray Dean <ray@example.com>\nTo: bounces@news.example.com\n"
        "Subject: Fwd: Undelivered Mail Returned to Sender\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="F"\n\n'
        "--F\nContent-Type: text/plain\n\nThis landed in my inbox, please clean the list.\n"
        f"--F\nContent-Type: message/rfc822\n\n{inner}\n--F--\n"
    )
    assert verdicts(read(raw)) == {"pam@example.org": "hard_bounce"}


def test_an_old_bounce_quoted_in_the_returned_original_decides_nothing() -> None:
    """The returned original may quote an older bounce (a reply thread, a
    forward): its recipient and its reason belong to another message."""
    quoted = original("new@example.org").replace(
        "Spam-free deals",
        "> ----- Forwarded message -----\n> From: MAILER-DAEMON@mx.example.org\n"
        "> Subject: failure notice\n>\n> <old@example.org>:\n"
        "> Sorry, no mailbox here by that name. (#5.1.1)\n\n"
        "Final-Recipient: rfc822; old@example.org\nAction: failed\nStatus: 5.1.1\n\n"
        "Spam-free deals",
    )
    full = "452 4.2.2 Mailbox full"
    reports = [
        dsn(block("rfc822; new@example.org", "4.2.2", f"smtp; {full}", "delayed"), returned=quoted),
        qmail(f"<new@example.org>:\n192.0.2.10 said: {full}\n").replace(original(), quoted),
        exim(
            "  new@example.org\n    SMTP error from remote mail server after RCPT TO:"
            f"<new@example.org>:\n    {full}\n"
        ).replace(original(), quoted),
    ]
    for raw in reports:
        assert verdicts(read(raw)) == {"new@example.org": "soft_bounce"}


def test_flufl_bounce_finds_addresses_but_gives_no_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the reader finds no recipient itself, flufl.bounce's addresses
    are taken only when the report's own text names them, and each is judged
    on those lines: its "permanent" is no dead address."""
    import flufl.bounce

    def all_failures(message: object) -> tuple[set[bytes], set[bytes]]:
        return set(), {b"zoe@example.org", b"abe@example.org", b"cy@example.org"}

    monkeypatch.setattr(flufl.bounce, "all_failures", all_failures)
    raw = (
        "From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.net>\n"
        "To: bounces@news.example.com\nSubject: Returned mail: see transcript for details\n\n"
        "This is the mail system. Your message could not be delivered.\n"
        "We are sorry about zoe@example.org and will say nothing more about it.\n\n"
        "--- original message follows ---\n\n" + original("zoe@example.org, abe@example.org")
    )
    found = read(raw)
    assert verdicts(found) == {"zoe@example.org": "rejection"}
    assert found.findings[0].details["recipient_from"] == "flufl.bounce"


def test_a_bounce_of_the_forwarders_own_forwarding_names_nobody() -> None:
    """A person whose mailbox forwards to an old address gets that address's
    bounce and forwards it to us: the old address never received our mail.
    A bounce of mail the person sent (its original is from them) is read."""
    hers = dsn(
        block("rfc822; greta.holm@oldjob.example.com", "5.1.1", "smtp; 550 5.1.1 User unknown"),
        returned=original("greta@partner.example.org").replace(
            "From: Example News <news@news.example.com>", "From: Greta <greta@partner.example.org>"
        ),
    ).replace("To: bounces@news.example.com", "To: Greta <greta@partner.example.org>")
    inline = (
        "From: Greta Holm <greta@partner.example.org>\nTo: support@news.example.com\n"
        "Subject: Fwd: Undeliverable\n\nI keep getting these, please fix.\n\n"
        "-----Original Message-----\nFrom: postmaster@oldjob.example.com\n"
        "Sent: Wednesday, December 2, 2026 9:00 AM\nTo: Greta Holm <greta@partner.example.org>\n"
        "Subject: Undeliverable: Is your inbox full?\n\n"
        "Delivery has failed to these recipients or groups:\n\n"
        "greta.holm@oldjob.example.com\n"
        "The e-mail address you entered couldn't be found.\n"
    )
    found = read(inline)
    assert found.findings == () and found.kind == "unknown", found
    ours = hers.replace(
        "From: Greta <greta@partner.example.org>", "From: Example News <news@news.example.com>"
    )
    attached = (
        "From: Greta Holm <greta@partner.example.org>\nTo: support@news.example.com\n"
        "Subject: Fwd: Undelivered Mail\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="G"\n\n'
        "--G\nContent-Type: text/plain\n\nPlease fix.\n"
        "--G\nContent-Type: message/rfc822\n\n{}\n--G--\n"
    )
    found = read(attached.format(ours))
    assert found.findings == () and found.kind == "unknown", found
    # Greta sent the returned original herself (she sends the newsletter):
    # the bounce is about her recipient.
    assert verdicts(read(attached.format(hers))) == {"greta.holm@oldjob.example.com": "hard_bounce"}


# -- the vocabulary ------------------------------------------------------------------------------


def test_the_vocabulary_is_a_table_with_a_source_for_every_entry() -> None:
    entries = vocabulary.entries()
    assert len(entries) >= 150
    used = {e.source for e in entries}
    assert used <= set(phrases.SOURCES), "none missing"
    assert set(phrases.SOURCES) - used == {"rfc5429"}, (
        "every source used (RFC 5429: the MDN reader)"
    )
    for entry in entries:
        assert entry.pattern == entry.pattern.lower(), entry.pattern  # text is matched lowered
        if entry.anchor:
            assert entry.anchor in entry.pattern.replace("\\", ""), entry.pattern
    assert vocabulary.Meaning(phrases.CODES[(1, 10)]) == vocabulary.Meaning.DEAD  # RFC 7505


DEAD_WORDING = [
    "550 User not found",
    "550 Sorry, no mailbox here by that name.",
    "554 delivery error: dd This user doesn't have a yahoo.com account (x@yahoo.com) [0]",
    "550 Invalid domain",
    "550 Host unknown (Name server: gone.example: host not found)",
    "550 Unrouteable address",
    "550 Recipient not found",
    "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
    "550 Requested action not taken: mailbox unavailable",
    "550 5.4.1 Recipient address rejected: Access denied. AS(201806281)",
    "550 Message was not accepted -- invalid mailbox. Local mailbox is unavailable: user not found",
    "550 5.7.1 No such user!",
    "550 #5.1.0 Address rejected",
    "550 The email account that you tried to reach is disabled.",
    # Gmail's own notice, Microsoft 5.4.310 and Gmail's DNS error for a domain that is gone:
    "Your message wasn't delivered because the address couldn't be found, or is unable to"
    " receive mail.",
    "550 5.4.310 DNS domain gone.example.org does not exist [Message=InfoDomainNonexistent]",
    "DNS Error: DNS type 'mx' lookup of gone.example.org responded with code NXDOMAIN",
    "550 This address no longer accepts mail.",
]


@pytest.mark.parametrize("reply", DEAD_WORDING)
def test_the_wording_of_a_dead_address_under_a_generic_status(reply: str) -> None:
    raw = dsn(block("rfc822; quin@example.org", "5.0.0", f"smtp; {reply}"))
    assert verdicts(read(raw)) == {"quin@example.org": "hard_bounce"}, reply


SENDER_SIDE_WORDING = [
    "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
    "554 5.7.1 Message rejected under suspicion of SPAM",
    "550 5.7.26 Unauthenticated email is not accepted due to domain's DMARC policy",
    "552 5.3.4 Message size exceeds fixed maximum message size",
    "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet"
    " service provider since part of their network is on our block list (S3150).",
    "553 5.7.1 [BL21] Connections will not be accepted from 192.0.2.1, because the ip is in"
    " Spamhaus's list",
    "550 Rejected by header based Anti-Spoofing policy",
    "554 Email rejected due to security policies",
    "550 5.7.0 Local Policy Violation",
    "550 Denied by policy",
    "554 5.7.1 <x@example.org>: Relay access denied",
    "550 Administrative prohibition",
    "550 5.7.1 Virus found in message",
    "550 High probability of spam",
    "550 5.1.1 <x@example.org>: Recipient address rejected: blocked using bl.example (spam source)",
    "550 Your sender email address does not exist",
]


@pytest.mark.parametrize("reply", SENDER_SIDE_WORDING)
def test_the_wording_of_a_sender_side_refusal_never_suppresses(reply: str) -> None:
    for status in ("5.0.0", "5.1.1"):
        raw = dsn(block("rfc822; rob@example.org", status, f"smtp; {reply}"))
        assert verdicts(read(raw)) == {"rob@example.org": "rejection"}, (status, reply)


def test_a_folded_diagnostic_code_is_unfolded_before_it_is_read() -> None:
    folded = "smtp; 550 <rae@example.org>... User\n    unknown"
    assert verdicts(read(dsn(block("rfc822; rae@example.org", "5.0.0", folded)))) == {
        "rae@example.org": "hard_bounce"
    }


@pytest.mark.parametrize(
    ("status", "reply"),
    [
        ("5.1.8", "553 5.1.8 <news@news.example.com>... Domain of sender address does not exist"),
        ("5.1.7", "553 5.1.7 <news@news.example.com>... Bad sender's mailbox address syntax"),
        ("5.1.0", "550 5.1.0 <news@news.example.com>: Sender address rejected: Domain not found"),
        ("5.0.0", "550 sender verify failed: unrouteable address"),
    ],
)
def test_a_refusal_of_the_sender_address_is_never_about_the_recipient(
    status: str, reply: str
) -> None:
    raw = dsn(block("rfc822; sid@example.org", status, f"smtp; {reply}"))
    assert verdicts(read(raw)) == {"sid@example.org": "rejection"}


def test_a_refusal_that_names_the_sender_s_address_is_not_about_the_recipient() -> None:
    """``Address rejected`` under 5.1.0 is a recipient refusal (Cisco's LDAP
    accept query) unless the address it names is the sender's own."""
    sender = "smtp; 550 5.1.0 <bounces@news.example.com>... Address rejected"
    found = read(dsn(block("rfc822; sol@example.org", "5.1.0", sender)))
    assert verdicts(found) == {"sol@example.org": "rejection"}
    assert found.findings[0].details["meaning"] == "sender_address"
    recipient = "smtp; 550 #5.1.0 <sol@example.org>... Address rejected"
    assert verdicts(read(dsn(block("rfc822; sol@example.org", "5.1.0", recipient)))) == {
        "sol@example.org": "hard_bounce"
    }
    text = exim(
        "  sol@example.org\n"
        "    SMTP error from remote mail server after RCPT TO:<sol@example.org>:\n"
        "    550 5.1.1 <news@news.example.com>: unknown user\n"
    )
    assert verdicts(read(text)) == {"sol@example.org": "rejection"}


def test_an_ip_address_or_a_version_is_no_status_code() -> None:
    raw = exim(
        "  tom@example.org\n    host mx.example.org [4.79.181.168]\n"
        "    SMTP error from remote mail server after RCPT TO:<tom@example.org>:\n"
        "    550 The email account that you tried to reach is disabled\n",
        headers="X-Mailer: Exim 4.97.1\n",
    )
    assert verdicts(read(raw)) == {"tom@example.org": "hard_bounce"}
    assert codes_in("host [4.79.181.168] said: 550 Exim 4.97.1").enhanced == ()
    assert [str(c) for c in codes_in("said: 550 5.1.1 <a@b.example> (#5.1.1)").enhanced] == [
        "5.1.1",
        "5.1.1",
    ]


def test_a_generic_status_with_the_reason_only_in_the_report_text() -> None:
    text = (
        "This is the mail system at host mx.example.net.\n\n"
        "<uma@example.org>: host mx.example.org[192.0.2.10] said: 550 User unknown\n"
        "    (in reply to RCPT TO command)\n"
    )
    found = read(dsn(block("rfc822; uma@example.org", "5.0.0"), text=text))
    assert verdicts(found) == {"uma@example.org": "hard_bounce"}


def test_a_dead_address_refused_under_a_policy_code() -> None:
    reply = "smtp; 550 5.7.1 <val@example.org>: Recipient address rejected: Nonexistent user"
    assert verdicts(read(dsn(block("rfc822; val@example.org", "5.7.1", reply)))) == {
        "val@example.org": "hard_bounce"
    }
    sender_side = "smtp; 550 5.7.1 Service unavailable; Client host blocked using bl.example"
    assert verdicts(read(dsn(block("rfc822; val@example.org", "5.7.1", sender_side)))) == {
        "val@example.org": "rejection"
    }


def test_a_permanent_failure_of_unclear_cause_is_a_rejection() -> None:
    unclear = block("rfc822; wes@example.org", "5.0.0", "smtp; 554 Transaction failed")
    assert verdicts(read(dsn(unclear))) == {"wes@example.org": "rejection"}
    assert decide("5.3.0", "553 something happened").kind == "rejection"


def test_recipients_listed_together_share_the_reason_after_the_list() -> None:
    """Gmail's older notice lists the recipients that failed alike, then one error."""
    raw = (
        "From: Mail Delivery Subsystem <mailer-daemon@mail.example.net>\n"
        "To: bounces@news.example.com\nSubject: Delivery Status Notification (Failure)\n\n"
        "Delivery to the following recipients failed permanently:\n\n"
        "     fox@example.com\n     gil@example.com\n\n"
        "Technical details of permanent failure:\n"
        "Google tried to deliver your message, but it was rejected by the recipient domain.\n"
        "The error that the other server returned was: 550 5.1.1 <fox@example.com>: Recipient"
        " address rejected: User unknown in local recipient table\n\n"
        "----- Original message -----\n\n" + original("fox@example.com")
    )
    assert verdicts(read(raw)) == {
        "fox@example.com": "hard_bounce",
        "gil@example.com": "hard_bounce",
    }


def test_a_notice_naming_nobody_is_about_the_returned_copy_s_one_recipient() -> None:
    notice = (
        "From: MAILER-DAEMON@relay.example.org\nTo: bounces@news.example.com\n"
        "Subject: Returned mail\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="R"\n\n'
        "--R\nContent-Type: text/plain\n\nYour message could not be delivered.\n"
        "Reason: {reason}\n\n--R\nContent-Type: message/rfc822\n\n{original}\n--R--\n"
    )
    dead = "550 5.1.1 Recipient address rejected: User unknown"
    found = read(notice.format(reason=dead, original=original("vic@example.org")))
    assert verdicts(found) == {"vic@example.org": "hard_bounce"}
    assert found.findings[0].details["recipient_from"] == "original-recipient-header"
    # Two recipients, or a failure that names no cause: nobody is judged.
    two = original("vic@example.org, wyn@example.org")
    assert read(notice.format(reason=dead, original=two)).findings == ()
    bare = notice.format(reason="delivery failed", original=original("vic@example.org"))
    assert read(bare).findings == ()


def test_an_exchange_notice_about_a_subject_that_says_delay_is_no_delay_notice() -> None:
    raw = (
        "From: System Administrator <postmaster@example.com>\nTo: bounces@news.example.com\n"
        "Subject: Undeliverable: Shipping delay notice\n\n"
        "Your message did not reach some or all of the intended recipients.\n\n"
        "      Subject:\tShipping delay notice\n\n"
        "The following recipient(s) cannot be reached:\n\n"
        "      'hana@example.com' on 1/1/2010 10:00 AM\n"
        "            The e-mail account does not exist at the organization this message was"
        " sent to.\n            <mx.example.com #5.1.1>\n"
    )
    assert verdicts(read(raw)) == {"hana@example.com": "hard_bounce"}


# -- the shape of the raw message -----------------------------------------------------------------


def test_a_message_that_starts_with_a_blank_line_is_read() -> None:
    raw = dsn(block("rfc822; xia@example.org", "5.1.1", "smtp; 550 5.1.1 User unknown"))
    for lead in ("\n", "\r\n", "  \r\n\r\n", "   "):
        found = read(lead + raw.replace("\n", "\r\n"))
        assert verdicts(found) == {"xia@example.org": "hard_bounce"}, repr(lead)


def test_line_endings_change_nothing() -> None:
    raw = qmail("<yul@example.org>:\nSorry, no mailbox here by that name. (#5.1.1)\n")
    expected = {"yul@example.org": "hard_bounce"}
    for ending in ("\n", "\r\n", "\r"):
        assert verdicts(read(raw.replace("\n", ending))) == expected, repr(ending)


def test_a_bounce_marked_as_an_auto_reply_is_a_bounce() -> None:
    raw = (
        "From: System Administrator <postmaster@mail.example.net>\n"
        "To: bounces@news.example.com\nSubject: Undeliverable Mail\n"
        "Auto-Submitted: auto-replied\nX-Autoreply: yes\nPrecedence: auto_reply\n\n"
        "Could not deliver message to the following recipient(s):\n\n"
        "Failed Recipient: zed@example.net\n"
        "Reason: Remote host said: 550 5.1.1 <zed@example.net>: Recipient address rejected:"
        " User unknown in virtual mailbox table [RCPT_TO]\n\n"
        "   -- The header and top 20 lines of the message follows --\n\n"
        f"{original()}"
    )
    for ending in ("\n", "\r"):
        found = read(raw.replace("\n", ending))
        assert found.kind == "bounce" and verdicts(found) == {"zed@example.net": "hard_bounce"}


def test_a_vacation_reply_is_still_an_auto_reply() -> None:
    raw = (
        "From: Ann Other <ann@example.org>\nTo: news@news.example.com\n"
        "Subject: Out of office: Is your inbox full?\nAuto-Submitted: auto-replied\n\n"
        "I am away until Monday; my mailbox is not read. Contact bob@example.org.\n"
    )
    found = read(raw)
    assert found.kind == "auto_reply" and found.findings == ()


# -- complaints -----------------------------------------------------------------------------------


def arf(feedback: str, returned: str | None = None, outer: str = "") -> str:
    kept = original() if returned is None else returned
    return (
        f"From: fbl@isp.example\nTo: fbl@news.example.com\nSubject: FW: report\n{outer}"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="A"\n\n'
        "--A\nContent-Type: text/plain\n\nThis is an email abuse report.\n\n"
        f"--A\nContent-Type: message/feedback-report\n\n{feedback}\n"
        f"--A\nContent-Type: message/rfc822\n\n{kept}\n--A--\n"
    )


def test_a_complaint_for_several_recipients_names_every_one() -> None:
    seven = [f"p{i}@example.net" for i in range(7)]
    fields = (
        "Feedback-Type: abuse\nUser-Agent: Cable-FBL/1.0\nVersion: 1\nIncidents: 7\n"
        + "".join(f"Original-Rcpt-To: <{a}>\n" for a in seven)
    )
    found = read(arf(fields))
    assert verdicts(found) == dict.fromkeys(seven, "complaint")
    assert {f.details["recipient_from"] for f in found.findings} == {"original-rcpt-to"}


def test_an_opt_out_report_names_its_removal_recipient() -> None:
    fields = "Feedback-Type: opt-out\nUser-Agent: Legacy/0.9\nVersion: 0.1\n"
    fields += "Removal-Recipient: gus@example.net\n"
    assert verdicts(read(arf(fields))) == {"gus@example.net": "complaint"}


def test_placeholders_are_never_taken_for_a_recipient() -> None:
    fields = "Feedback-Type: abuse\nUser-Agent: Provider/1.0\nVersion: 1\n"
    for to in ("redacted@example.net", "xxxxxxxx@example.net", "undisclosed-recipients:;"):
        found = read(arf(fields, original(to)))
        assert found.findings == () and found.kind == "unknown", to
    redacted = fields + "Original-Rcpt-To: <redacted@example.net>\n"
    assert read(arf(redacted, original("amy@example.net"))).findings[0].address == (
        "amy@example.net"
    )


def test_report_parts_in_base64_are_read() -> None:
    """RFC 2045 lets any part be base64 or quoted-printable, the report parts too."""
    fields = "Feedback-Type: abuse\nUser-Agent: Provider/1.0\nVersion: 1\n"
    fields += "Original-Rcpt-To: <ivo@example.net>\n"
    encoded = base64.encodebytes(fields.encode()).decode()
    raw = arf(encoded).replace(
        "Content-Type: message/feedback-report\n",
        "Content-Type: message/feedback-report\nContent-Transfer-Encoding: base64\n",
    )
    assert verdicts(read(raw)) == {"ivo@example.net": "complaint"}
    status = block("rfc822; ivo@example.org", "5.1.1", "smtp; 550 5.1.1 User unknown")
    raw = dsn(status)
    plain_status = "Reporting-MTA: dns; mx.example.net\n\n" + status
    raw = raw.replace(
        f"Content-Type: message/delivery-status\n\n{plain_status}",
        "Content-Type: message/delivery-status\nContent-Transfer-Encoding: base64\n\n"
        + base64.encodebytes(plain_status.encode()).decode(),
    )
    assert "Status: 5.1.1" not in raw
    assert verdicts(read(raw)) == {"ivo@example.org": "hard_bounce"}


def test_an_internationalised_recipient_is_read_as_utf8() -> None:
    """RFC 6533: a ``utf-8`` address type holds the address in UTF-8; a
    value that cannot be read is no address at all."""
    status = block("utf-8; zoë@example.org", "5.1.1", "smtp; 550 5.1.1 User unknown")
    assert verdicts(read(dsn(status).encode("utf-8"))) == {"zoë@example.org": "hard_bounce"}
    broken = block(
        "utf-8; zo\ufffd@example.org",
        "5.1.1",
        "smtp; 550 5.1.1 User unknown",
        original_recipient="rfc822; zoe@example.org",
    )
    assert verdicts(read(dsn(broken))) == {"zoe@example.org": "hard_bounce"}


def test_a_list_address_in_the_complained_of_message_is_no_complainant() -> None:
    """Mail sent to the sender's own list address (the recipients hidden):
    the To names the list, not the person who complained."""
    fields = "Feedback-Type: abuse\nUser-Agent: Provider/1.0\nVersion: 1\n"
    found = read(arf(fields, original("News subscribers <list@news.example.com>")))
    assert found.findings == () and found.kind == "unknown"
    assert verdicts(read(arf(fields, original("ann@example.net")))) == {
        "ann@example.net": "complaint"
    }


def test_a_dmarc_failure_report_is_not_a_complaint() -> None:
    fields = "Feedback-Type: auth-failure\nUser-Agent: DMARC/1.0\nVersion: 1\n"
    fields += "Auth-Failure: dmarc\nOriginal-Rcpt-To: <hue@example.net>\n"
    found = read(arf(fields))
    assert found.kind == "unknown" and found.findings == ()


def test_an_outlook_com_complaint_without_an_arf_part() -> None:
    complained = "X-HmXmrOriginalRecipient: <ida@hotmail.example>\n" + original(
        "ida@hotmail.example"
    )
    notice = (
        "From: staff@hotmail.example\nTo: fbl@news.example.com\n"
        "Subject: complaint about message from 198.51.100.7\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="H"\n\n'
        "--H\nContent-Type: text/plain\n\nA Hotmail user marked the attached message as junk.\n"
        f"--H\nContent-Type: message/rfc822\n\n{complained}\n--H--\n"
    )
    found = read(notice)
    assert found.kind == "complaint" and verdicts(found) == {"ida@hotmail.example": "complaint"}
    assert found.findings[0].details["recipient_from"] == "x-hmxmroriginalrecipient"
    jmrp = arf("Feedback-Type: abuse\nUser-Agent: JMRP/1.0\nVersion: 1\n", complained)
    assert verdicts(read(jmrp)) == {"ida@hotmail.example": "complaint"}


def ses(notification: Mapping[str, object], envelope: bool = False) -> str:
    body = json.dumps(notification)
    if envelope:
        body = json.dumps({"Type": "Notification", "Message": body, "UnsubscribeURL": "https://x"})
    return (
        "From: AWS Notifications <no-reply@sns.amazonaws.example>\n"
        "To: ses-feedback@news.example.com\nSubject: AWS Notification Message\n"
        "Content-Type: text/plain; charset=UTF-8\n\n"
        f"{body}\n\n--\nIf you wish to stop receiving notifications from this topic, click below"
        " to unsubscribe:\nhttps://sns.example/unsubscribe\n"
    )


def test_amazon_ses_notifications_by_mail() -> None:
    bounce = {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": "jan@example.org",
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                },
                {
                    "emailAddress": "kai@example.org",
                    "action": "failed",
                    "status": "5.7.1",
                    "diagnosticCode": "smtp; 554 5.7.1 Client host blocked using bl.example",
                },
            ],
        },
        "mail": {"destination": ["jan@example.org", "kai@example.org", "lia@example.org"]},
    }
    for envelope in (False, True):
        found = read(ses(bounce, envelope))
        assert verdicts(found) == {"jan@example.org": "hard_bounce", "kai@example.org": "rejection"}
    full = {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": "Transient",
            "bounceSubType": "MailboxFull",
            "bouncedRecipients": [{"emailAddress": "moe@example.org"}],
        },
    }
    assert verdicts(read(ses(full))) == {"moe@example.org": "soft_bounce"}
    complaint = {
        "notificationType": "Complaint",
        "complaint": {"complainedRecipients": [{"emailAddress": "ned@example.org"}]},
    }
    assert verdicts(read(ses(complaint, True))) == {"ned@example.org": "complaint"}
    delivery = {"notificationType": "Delivery", "delivery": {"recipients": ["ned@example.org"]}}
    assert read(ses(delivery)).findings == ()


# -- why -------------------------------------------------------------------------------------------


def test_every_finding_says_why_without_a_clear_address() -> None:
    raw = dsn(
        block(
            "rfc822; oli@example.org",
            "5.0.0",
            "smtp; 550 <oli@example.org>... No such user here",
        )
    )
    (finding,) = read(raw).findings
    details = finding.details
    assert details["phrase"] == "no such user"
    assert details["meaning"] == "dead" and details["source"] in ("yandex", "exim")
    assert details["basis"] == "phrase" and details["recipient_from"] == "final-recipient"
    assert "oli@example.org" not in json.dumps(details)


# -- robustness -----------------------------------------------------------------------------------

SAMPLES = [
    dsn(
        block("rfc822; abe@example.org", "5.1.1", "smtp; 550 5.1.1 User unknown"),
        block("rfc822; bea@example.org", "4.2.2", "smtp; 452 4.2.2 Mailbox full", "delayed"),
    ),
    exim("  cal@example.org\n    Unrouteable address\n"),
    qmail("<dee@example.org>:\nSorry, no mailbox here by that name. (#5.1.1)\n"),
    arf("Feedback-Type: abuse\nUser-Agent: X/1\nVersion: 1\nOriginal-Rcpt-To: <eli@example.org>\n"),
    arf(
        base64.encodebytes(
            b"Feedback-Type: abuse\nVersion: 1\nOriginal-Rcpt-To: <fay@example.org>\n"
        ).decode()
    ).replace(
        "Content-Type: message/feedback-report\n",
        "Content-Type: message/feedback-report\nContent-Transfer-Encoding: base64\n",
    ),
    "From: Gus <gus@example.net>\nTo: care@news.example.com\nSubject: Fwd: Undeliverable\n\n"
    "-----Original Message-----\nFrom: postmaster@old.example.org\nTo: gus@example.net\n"
    "Subject: Undeliverable\n\nDelivery has failed to these recipients or groups:\n\n"
    "gus@old.example.org\nThe e-mail address you entered couldn't be found.\n",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(SAMPLES),
    st.integers(min_value=0, max_value=4000),
    st.sampled_from(["\n", "\r\n", "\r"]),
    st.binary(max_size=40),
)
def test_damaged_reports_never_crash_nor_name_a_stranger(
    sample: str, cut: int, ending: str, junk: bytes
) -> None:
    raw = sample.replace("\n", ending).encode()[:cut] + junk
    found = read(raw)
    assert "could not read" not in found.note, found.note
    text = raw.decode("utf-8", "replace").lower()
    # The address of a base64 part is named in its decoded text only.
    encoded = {"fay@example.org"} if "base64" in sample else set()
    for finding in found.findings:
        assert finding.address in text or finding.address in encoded, (finding.address, raw[:200])
