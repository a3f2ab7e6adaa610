"""The vocabulary of returned mail, as data: what receiving systems write when
they refuse a message or give up on it, and what that means for the recipient.

Every entry names where its wording is documented (``SOURCES``). The reader
(``adieu.feedback.vocabulary``) matches the patterns only in diagnostic text
(a DSN's ``Diagnostic-Code``, the lines of a report that name the recipient),
never in header names, after unfolding, in lower case, with URLs and
addresses taken out. A pattern is a regular expression over that text;
``\\b`` is added at either end that begins or ends with a letter or digit.

Meanings (``Meaning`` in ``vocabulary``), strongest first when several match
one recipient's text:

- ``sender_address``: the envelope sender's address or domain was refused;
  it says nothing about the recipient (a rejection);
- ``full``: the mailbox is full (a soft bounce);
- ``unclear``: a permanent refusal whose cause is the receiving side's setup
  (relaying, loops, unknown customer domain), not the address (a rejection);
- ``sender``: the sender's side: spam verdicts, blocklists and reputation,
  SPF/DKIM/DMARC, content, size, policy, the sender blocked by the recipient
  (a rejection);
- ``dead``: the address does not exist (a hard bounce);
- ``disabled``: the mailbox exists but is disabled or closed (a hard bounce);
- ``temporary``: a condition expected to pass, or a delivery that timed out
  after temporary failures (a soft bounce).

An entry with a status condition (``"4.1"``: subject 4, detail 1, any class)
applies only when that is the recipient's enhanced status code, and is
weighed before all others: it is a vendor's documented use of a code.
"""

from __future__ import annotations

#: Where each entry's wording is documented.
SOURCES: dict[str, str] = {
    "rfc3463": "RFC 3463, Enhanced Mail System Status Codes (and the IANA registry of them)",
    "rfc5321": "RFC 5321 section 4.2, the reply texts of 450, 550, 552, 553 and 554",
    "rfc7504": "RFC 7504, SMTP 521 and 556 reply codes (a domain that accepts no mail)",
    "rfc7505": "RFC 7505, a null MX: the domain accepts no mail (x.1.10)",
    "rfc5429": "RFC 5429 (Sieve reject) and RFC 8098 (message disposition notifications):"
    " a message refused on arrival by the recipient's own filter",
    "postfix": "Postfix documentation: postconf(5) (the reject_* restrictions and their "
    "texts), local(8), virtual(8), ADDRESS_VERIFICATION_README, bounce(5)",
    "exim": "Exim specification: the router and transport errors and bounce messages "
    "(Unrouteable address, retry timeout exceeded, sender verify)",
    "sendmail": "Sendmail Installation and Operation Guide: DSN texts (User unknown, "
    "Host unknown, Deferred)",
    "qmail": "qmail-send bounce format (QSBMF, cr.yp.to/proto/qsbmf.txt), "
    "qmail-local/qmail-remote messages, and the notice qmail hosting panels (Plesk) return "
    "for a mailbox that is gone (This address no longer accepts mail)",
    "microsoft": "Microsoft Learn: Email non-delivery reports and SMTP errors in Exchange "
    "Online (5.1.1, 5.1.10, 5.2.2, 5.4.1, 5.4.310 DNS domain does not exist, 5.7.x), "
    "Exchange Server NDR codes",
    "outlook": "Outlook.com postmaster troubleshooting (mailbox unavailable, S3150, SC-00x, "
    "OU-00x)",
    "gmail": "Google Workspace Admin Help: Gmail SMTP errors and codes (answer 3726730), and "
    "Gmail's own delivery failure notices (Address not found; DNS Error ... NXDOMAIN)",
    "yahoo": "Yahoo Sender Hub: SMTP error codes; Yahoo Mail help SLN3444",
    "mailru": "Mail.ru postmaster help: reasons for non-delivery",
    "yandex": "Yandex Mail help: reports on non-delivery to Yandex and to other addresses",
    "opensmtpd": "OpenSMTPD smtpd(8) and its bounce notices (550 Invalid recipient)",
    "courier": "Courier mail server and maildrop documentation (maildir over quota)",
    "domino": "HCL Domino administration help: Router delivery failure reports",
    "groupwise": "GroupWise Internet Agent (GWIA) undeliverable notices and DSNs",
    "zimbra": "Zimbra Collaboration administration: LMTP over-quota handling, recipient checks",
    "proofpoint": "Proofpoint Essentials and Proofpoint Dynamic Reputation (PDR) reject texts",
    "mimecast": "Mimecast SMTP error codes (community article 842605754)",
    "barracuda": "Barracuda Email Security Gateway: SMTP error codes; Barracuda Reputation "
    "Block List",
    "trellix": "Trellix (McAfee) Email Security Cloud: error codes (ETP100-ETP106)",
    "trendmicro": "Trend Micro Email Reputation Services, Hosted Email Security and IMSVA "
    "knowledge base",
    "sophos": "Sophos Central Email Security: SMTP error codes (XGEMAIL_0001-0015)",
    "cisco": "Cisco Secure Email (AsyncOS) user guide: LDAP accept queries, bounce profiles",
    "smartermail": "SmarterMail delivery failure notices",
    "fortimail": "FortiMail administration guide: recipient verification and DSNs",
    "zoho": "Zoho Mail replies (541 5.4.1 Mail rejected by destination domain: the domain's "
    "own filters; Mailbox delivery restricted by policy), as smtp.codes/zoho explains them",
    "webde": "WEB.DE and GMX replies (User has exhausted allowed storage space, User has too "
    "many messages on the server, User is inactive), from sitepackage.de's table of "
    "providers' non-delivery texts and GMX's newsroom article on bounces",
    "hmailserver": "hMailServer documentation: error messages and delivery failure reports",
}

DEAD = "dead"
DISABLED = "disabled"
FULL = "full"
TEMPORARY = "temporary"
SENDER = "sender"
SENDER_ADDRESS = "sender_address"
UNCLEAR = "unclear"

#: (meaning, pattern, source, status condition or "").
PHRASES: tuple[tuple[str, str, str, str], ...] = (
    # -- documented uses of one status code ---------------------------------------------
    (DEAD, r"recipient address rejected: access denied", "microsoft", "4.1"),
    (DEAD, r"recipient address rejected: access denied", "microsoft", "7.504"),
    (DEAD, r"address rejected", "cisco", "1.0"),
    # -- the envelope sender's address ----------------------------------------------------
    (SENDER_ADDRESS, r"sender address rejected", "postfix", ""),
    (SENDER_ADDRESS, r"domain of sender address", "sendmail", ""),
    (SENDER_ADDRESS, r"sender verify failed", "exim", ""),
    (SENDER_ADDRESS, r"sender verification (?:failed|error)", "exim", ""),
    (SENDER_ADDRESS, r"(?:unverified|invalid|bad|unknown) sender", "exim", ""),
    (
        SENDER_ADDRESS,
        r"sender'?s? (?:e-?mail |envelope |mail )?(?:domain|address) (?:\w+ ){0,3}"
        r"(?:does not|doesn't|must|not found|unknown|is invalid|is not|isn't|was not|rejected)",
        "exim",
        "",
    ),
    (
        SENDER_ADDRESS,
        r"sender'?s? (?:domain|address) (?:could not|cannot) be (?:resolved|verified)",
        "proofpoint",
        "",
    ),
    (SENDER_ADDRESS, r"envelope sender", "exim", ""),
    (SENDER_ADDRESS, r"mail from (?:address|domain) (?:rejected|not|does)", "rfc5321", ""),
    (SENDER_ADDRESS, r"bad sender'?s? (?:mailbox|system) address", "rfc3463", ""),
    (SENDER_ADDRESS, r"return path", "postfix", ""),
    # -- a full mailbox -------------------------------------------------------------------
    (FULL, r"mailbox (?:is )?full", "rfc3463", ""),
    (
        FULL,
        r"mailbox (?:is )?(?:over|exceeds?|exceeded) (?:its |the |his |her )?(?:size |storage )?"
        r"(?:quota|limit)",
        "groupwise",
        "",
    ),
    (
        FULL,
        r"(?:over|exceeded|exceeds|exceeding) (?:the |its |his |her |their )?"
        r"(?:allowed |disk |storage |mailbox )?quota",
        "postfix",
        "",
    ),
    (FULL, r"(?<!submission )(?<!sending )quota (?:exceeded|exceed|full|reached)", "mailru", ""),
    (FULL, r"maildir over quota", "courier", ""),
    (FULL, r"over ?quota", "zimbra", ""),
    (FULL, r"mailbox size (?:limit )?exceeded", "yandex", ""),
    (FULL, r"account is full", "yandex", ""),
    (FULL, r"disk quota", "yandex", ""),
    (
        FULL,
        r"(?:inbox|mailbox|mail ?box|mailfolder|mail file|account) (?:\w+ ){0,3}(?:is |has )?"
        r"(?:full|out of (?:storage|space))",
        "gmail",
        "",
    ),
    (FULL, r"out of storage space", "gmail", ""),
    (FULL, r"exceeded (?:its |the |his |her )?storage", "rfc5321", ""),
    (FULL, r"storage allocation", "rfc5321", ""),
    (
        FULL,
        r"(?:insufficient|not enough) (?:disk )?(?:space|storage) (?:for|in) (?:the )?"
        r"(?:user|mailbox|recipient)",
        "rfc5321",
        "",
    ),
    (FULL, r"file too large", "postfix", ""),
    (FULL, r"exhausted (?:\w+ ){0,2}(?:storage|quota|space)", "webde", ""),
    (
        FULL,
        r"(?:has|have) too many (?:messages|mails|e-?mails)"
        r"(?: on the server| in (?:the|their) mailbox)",
        "webde",
        "",
    ),
    (FULL, r"speichervolumen|zu ?viele mails", "webde", ""),
    (
        FULL,
        r"size limit (?:of|for) (?:the |this )?(?:mailbox|user|account|domain)",
        "smartermail",
        "",
    ),
    (
        FULL,
        r"(?:mailbox|user|account|domain) (?:\w+ ){0,2}(?:storage|disk|size) (?:limit|allocation)",
        "smartermail",
        "",
    ),
    # -- the receiving side's setup, not the address ---------------------------------------
    (
        UNCLEAR,
        r"relay(?:ing)? (?:access )?(?:denied|not permitted|prohibited|not allowed)",
        "postfix",
        "",
    ),
    (UNCLEAR, r"(?:unable|not allowed|not permitted) to relay", "sendmail", ""),
    (UNCLEAR, r"we do not relay", "sendmail", ""),
    (UNCLEAR, r"open relay not allowed", "mimecast", ""),
    (UNCLEAR, r"(?:routing|mail) loop", "exim", ""),
    (UNCLEAR, r"too many hops", "exim", ""),
    (UNCLEAR, r"loops back to myself", "postfix", ""),
    (UNCLEAR, r"allowed rcpthosts", "qmail", ""),
    (UNCLEAR, r"hop count exceeded", "microsoft", ""),
    (UNCLEAR, r"maximum hop count", "domino", ""),
    (UNCLEAR, r"looping", "qmail", ""),
    (UNCLEAR, r"etp10[0145]", "trellix", ""),
    (UNCLEAR, r"invalid domain mode", "trellix", ""),
    (UNCLEAR, r"xgemail_00(?:10|13)", "sophos", ""),
    (UNCLEAR, r"(?:not|isn't) (?:a )?(?:sophos email )?protected domain", "sophos", ""),
    (
        UNCLEAR,
        r"(?:recipient|the) domain (?:is )?not (?:\w+ )?(?:hosted|served|configured|local)",
        "postfix",
        "",
    ),
    # -- the sender's side ------------------------------------------------------------------
    (SENDER, r"(?<![.\w-])spam(?![\w-]|\.\w)", "yandex", ""),
    (SENDER, r"unsolicited", "gmail", ""),
    (SENDER, r"junk ?mail", "microsoft", ""),
    (SENDER, r"bulk mail", "gmail", ""),
    (SENDER, r"blocked using", "postfix", ""),
    (SENDER, r"(?:block|black|deny|reject|ban)[ -]?list(?:ed)?", "barracuda", ""),
    (SENDER, r"blocklisted|blacklisted|denylisted", "barracuda", ""),
    (
        SENDER,
        r"spamhaus|spamcop|sorbs|barracudacentral|uceprotect|dnsbl|rbl\+?|surbl|abuseat",
        "barracuda",
        "",
    ),
    (SENDER, r"ers-rbl|email reputation", "trendmicro", ""),
    (SENDER, r"reputation", "proofpoint", ""),
    (SENDER, r"poor reputation", "mimecast", ""),
    (
        SENDER,
        r"block(?:ed)? (?:- see|by (?:policy|the (?:recipient|sender|receiver)|recipient|"
        r"(?:the )?(?:admin|user|sender|personal|customer)(?:'s)? block)|"
        r"for (?:spam|policy|abuse))",
        "proofpoint",
        "",
    ),
    (
        SENDER,
        r"(?:ip|client|host|sender|sending server|network|address|domain|message|connection|"
        r"email|mail)"
        r"(?: [\w\[\]:-]+){0,3} (?:is |was |has been |have been )?"
        r"(?:blocked|banned|blacklisted|blocklisted|refused)",
        "outlook",
        "",
    ),
    (SENDER, r"part of their network is on our block list", "outlook", ""),
    (SENDER, r"(?:s3150|s3140|sc-00\d|ou-00\d|dy-00\d|rp-00\d)", "outlook", ""),
    (SENDER, r"tss0\d|bl21|bl23", "yahoo", ""),
    (SENDER, r"user complaints", "yahoo", ""),
    (SENDER, r"unexpected volume", "yahoo", ""),
    (SENDER, r"client host rejected", "postfix", ""),
    (SENDER, r"helo command rejected", "postfix", ""),
    (
        SENDER,
        r"(?:reverse dns|ptr record|rdns|cannot find your (?:hostname|reverse))",
        "postfix",
        "",
    ),
    (SENDER, r"dmarc", "gmail", ""),
    (SENDER, r"(?<![.\w-])spf(?![\w-]|\.\w)", "gmail", ""),
    (SENDER, r"(?<![.\w-])dkim(?![\w-]|\.\w)", "gmail", ""),
    (SENDER, r"unauthenticated", "gmail", ""),
    (SENDER, r"authentication (?:failed|failure|required|checks)", "microsoft", ""),
    (SENDER, r"not authori[sz]ed to send", "gmail", ""),
    (
        SENDER,
        r"(?:sender|sending) (?:\w+ ){0,2}(?:not|isn't) (?:authori[sz]ed|permitted|allowed)",
        "microsoft",
        "",
    ),
    (SENDER, r"anti-?spoofing|spoof(?:ed|ing)?", "mimecast", ""),
    (SENDER, r"phish\w*", "microsoft", ""),
    (SENDER, r"virus|malware|infected|malicious", "sophos", ""),
    (
        SENDER,
        r"attachment (?:type|polic|block|not allowed|rejected|filter|extension)",
        "trendmicro",
        "",
    ),
    (
        SENDER,
        r"(?:blocked|prohibited|forbidden|dangerous|executable|unsafe) (?:\w+ ){0,2}attachment",
        "trendmicro",
        "",
    ),
    (SENDER, r"<address>: ?(?:blocked|quarantined)", "barracuda", ""),
    (SENDER, r"content (?:filter|polic|rejected|violat)", "mimecast", ""),
    (SENDER, r"(?:message|mail|email) content", "mimecast", ""),
    (
        SENDER,
        r"(?:security|email|company|local|e-mail|mail|content|organization'?s?|domain'?s?|"
        r"recipient'?s?|administrative) polic(?:y|ies)",
        "mimecast",
        "",
    ),
    (
        SENDER,
        r"polic(?:y|ies) "
        r"(?:violation|rejection(?! on the target)|reasons|restrictions|block|error)",
        "gmail",
        "",
    ),
    (SENDER, r"delivery (?:restricted by|failure) polic\w*", "zoho", ""),
    (
        SENDER,
        r"mail rejected by (?:the )?destination domain",
        "zoho",
        "",
    ),
    (
        SENDER,
        r"submission ?quota|(?:sending|submission|daily|send|sender) (?:limit|quota)",
        "microsoft",
        "",
    ),
    (SENDER, r"violat\w* (?:\w+ ){0,3}polic\w*", "trendmicro", ""),
    (SENDER, r"prohibited by (?:\w+ ){0,2}polic\w*", "gmail", ""),
    (SENDER, r"(?:denied|rejected|refused) (?:by|due to|per) (?:\w+ ){0,3}polic\w*", "gmail", ""),
    (
        SENDER,
        r"(?:unacceptable|prohibited|forbidden|objectionable|restricted) (?:message )?content",
        "yahoo",
        "",
    ),
    (SENDER, r"administrative prohibition", "mimecast", ""),
    (SENDER, r"envelope blocked", "mimecast", ""),
    (
        SENDER,
        r"(?:message|mail|email) (?:was |has been )?(?:blocked|quarantined|deleted|rejected by "
        r"(?:the )?(?:gateway|filter|content))",
        "trendmicro",
        "",
    ),
    (
        SENDER,
        r"(?:message|mail|email|attachment)s? (?:\w+ ){0,2}(?:too (?:large|big|long)|size "
        r"(?:exceeds|limit|violation)|exceeds? (?:the )?(?:\w+ ){0,2}(?:size|limit))",
        "postfix",
        "",
    ),
    (SENDER, r"(?:size|length) exceeds", "rfc3463", ""),
    (SENDER, r"exceeds? (?:the )?(?:fixed |allowed |maximum )+(?:message )?size", "postfix", ""),
    (SENDER, r"maximum (?:message )?size", "postfix", ""),
    (SENDER, r"xgemail_00(?:0\d|12)", "sophos", ""),
    (SENDER, r"too many recipients", "gmail", ""),
    (SENDER, r"rate limit(?:ed|ing)?", "sophos", ""),
    (SENDER, r"(?:sending|message|connection|hourly|daily|inbound) rate", "barracuda", ""),
    (SENDER, r"rate control", "barracuda", ""),
    (SENDER, r"(?<!has )(?<!have )too many (?:messages|connections|concurrent)", "barracuda", ""),
    (SENDER, r"unusual (?:rate|traffic)", "gmail", ""),
    (
        SENDER,
        r"(?:tls|encryption|starttls) (?:is )?required|requires? (?:tls|encryption)",
        "gmail",
        "",
    ),
    (SENDER, r"not accepted (?:from|due to)", "mailru", ""),
    (SENDER, r"rejected due to", "mailru", ""),
    (SENDER, r"(?:blocks|blocked|blocking) (?:the )?(?:sender|you|your)", "sophos", ""),
    (
        SENDER,
        r"(?:does not|doesn't|do not) (?:wish to )?(?:accept|receive) (?:mail|email|messages) from",
        "microsoft",
        "",
    ),
    (SENDER, r"(?:user|admin|personal|blocked senders?|sender) block ?list", "sophos", ""),
    (SENDER, r"on (?:the |a )?(?:user's |recipient's )?(?:block|deny) ?list", "sophos", ""),
    # -- the address is dead ----------------------------------------------------------------
    (DEAD, r"user unknown", "postfix", ""),
    (
        DEAD,
        r"non-?existent (?:user|mailbox|recipient|address|account|e-?mail address|domain)",
        "postfix",
        "",
    ),
    (
        DEAD,
        r"unknown (?:user|recipient|mailbox|address|local[- ]part|or illegal (?:user|alias))",
        "exim",
        "",
    ),
    (DEAD, r"user (?:not found|not known|does not exist|doesn't exist|not exist)", "mailru", ""),
    (DEAD, r"no such (?:user|mailbox|recipient|account|address|person|local user)", "yandex", ""),
    (DEAD, r"no mailbox (?:here )?by that name", "qmail", ""),
    (DEAD, r"no (?:such )?mailbox", "rfc5321", ""),
    (
        DEAD,
        r"mailbox (?:not found|does not exist|doesn't exist|unavailable|not available|"
        r"is not available|name not allowed|unknown|invalid)",
        "outlook",
        "",
    ),
    (DEAD, r"requested action not taken: mailbox unavailable", "outlook", ""),
    (
        DEAD,
        r"recipient (?:address )?(?:not found|unknown|does not exist|doesn't exist|invalid|"
        r"is invalid|not valid|is not valid|not recognized)",
        "microsoft",
        "",
    ),
    (DEAD, r"recipient not found by smtp address lookup", "microsoft", ""),
    (DEAD, r"resolver\.adr\.(?:recipnotfound|recipientnotfound|exrecipnotfound)", "microsoft", ""),
    (DEAD, r"invalid recipient", "opensmtpd", ""),
    (
        DEAD,
        r"invalid (?:recipient|mailbox|user|address|e-?mail address|recipient address|"
        r"destination address)",
        "yandex",
        "",
    ),
    (
        DEAD,
        r"(?:not|isn't) a (?:valid|known) "
        r"(?:user|mailbox|recipient|e-?mail address|address|account)",
        "sendmail",
        "",
    ),
    (
        DEAD,
        r"(?:address|account|mailbox|user|recipient|alias|e-?mail)(?: [\w'<>.-]+){0,6} "
        r"(?:does not|doesn't|do not|don't|did not) exists?",
        "gmail",
        "",
    ),
    (DEAD, r"no mail ?servers? (?:\w+ ){0,3}exists? for", "hmailserver", ""),
    (
        DEAD,
        r"(?:address|account|mailbox|recipient)(?: [\w'-]+){0,3} (?:was|could) not (?:be )?found",
        "microsoft",
        "",
    ),
    (DEAD, r"wasn't found at", "microsoft", ""),
    (
        DEAD,
        r"(?:address|account|mailbox|recipient)(?: [\w'-]+){0,3} "
        r"(?:couldn't|can't|cannot) be found",
        "gmail",
        "",
    ),
    (
        DEAD,
        r"(?:address|e-?mail address) you entered (?:couldn't|could not|can't) be found",
        "microsoft",
        "",
    ),
    (DEAD, r"doesn't have an? (?:[\w.<>-]+ )?account", "yahoo", ""),
    (DEAD, r"does not have an? (?:[\w.<>-]+ )?account", "yahoo", ""),
    (DEAD, r"no (?:such )?(?:account|user) (?:here|by that name|with that name)", "exim", ""),
    (DEAD, r"unrout(?:e)?able (?:address|domain|mail domain)", "exim", ""),
    (DEAD, r"all relevant mx records point to non-existent hosts", "exim", ""),
    (DEAD, r"host unknown", "sendmail", ""),
    (DEAD, r"(?:host|domain)(?: or domain)?(?: name)? not found", "postfix", ""),
    (DEAD, r"no such (?:host|domain)", "yandex", ""),
    (DEAD, r"(?:domain|host)(?: name)?(?: [\w.-]+)? (?:does not|doesn't) exist", "microsoft", ""),
    (DEAD, r"infodomainnonexistent", "microsoft", ""),
    (DEAD, r"nxdomain", "gmail", ""),
    (DEAD, r"invalid domain", "trellix", ""),
    (DEAD, r"domain (?:is )?(?:invalid|unknown)", "postfix", ""),
    (DEAD, r"unknown (?:domain|host)", "sendmail", ""),
    (DEAD, r"no (?:valid )?mx (?:record|host)s?", "smartermail", ""),
    (DEAD, r"(?:has|have) no mx", "smartermail", ""),
    (DEAD, r"null mx", "rfc7505", ""),
    (DEAD, r"does not accept mail", "rfc7504", ""),
    (DEAD, r"couldn't find any host named", "qmail", ""),
    (DEAD, r"bad destination (?:mailbox|system) address", "rfc3463", ""),
    (
        DEAD,
        r"not listed in (?:the )?(?:domino directory|public name (?:&|and) address book|"
        r"address book|directory)",
        "domino",
        "",
    ),
    (DEAD, r"address (?:unknown|not found|does not exist|invalid)", "barracuda", ""),
    (DEAD, r"unknown address", "cisco", ""),
    (DEAD, r"recipient (?:verification|validation) failed", "fortimail", ""),
    (DEAD, r"xgemail_0011", "sophos", ""),
    (DEAD, r"etp102", "trellix", ""),
    (DEAD, r"mailbox has moved", "rfc3463", ""),
    (
        DEAD,
        r"(?:account|mailbox|address|user)(?: \w+){0,2} (?:has been|was) (?:deleted|removed)",
        "mailru",
        "",
    ),
    (
        DISABLED,
        r"(?:mailbox|account|user|address|recipient)(?: [\w'-]+){0,6} (?:is |has been |was )?"
        r"(?:disabled|deactivated|inactive|terminated|discontinued|(?<!temporarily )suspended)",
        "gmail",
        "",
    ),
    (DISABLED, r"account (?:\w+ ){0,2}(?:closed|expired|frozen)", "yahoo", ""),
    (DISABLED, r"(?:user|mailbox|account) (?:is )?inactive", "webde", ""),
    (DISABLED, r"disabled (?:mailbox|account|user|recipient)", "groupwise", ""),
    (DISABLED, r"(?:mailbox|account) disabled", "rfc3463", ""),
    (DISABLED, r"policy rejection on the target address", "yandex", ""),
    (DISABLED, r"no longer (?:active|in use|available|exists|valid)", "mailru", ""),
    (DISABLED, r"no longer accepts? (?:mail|e-?mail|messages)", "qmail", ""),
    # -- conditions expected to pass ----------------------------------------------------------
    (TEMPORARY, r"receiving (?:e-?)?mail (?:too quickly|at a rate)", "gmail", ""),
    (TEMPORARY, r"recipient thread limit", "microsoft", ""),
    (TEMPORARY, r"grey ?listed|grey ?listing|gray ?listed|gray ?listing", "mimecast", ""),
    (TEMPORARY, r"(?:try|retry) (?:again )?later", "rfc5321", ""),
    (TEMPORARY, r"temporar(?:y|ily)", "rfc5321", ""),
    (TEMPORARY, r"retry timeout exceeded", "exim", ""),
    (TEMPORARY, r"retry time not reached", "exim", ""),
    (TEMPORARY, r"(?:message|delivery time) expired|expired (?:after|in queue)", "microsoft", ""),
    (TEMPORARY, r"delivery time expired", "rfc3463", ""),
    (
        TEMPORARY,
        r"(?:message|it) (?:has been |was )?(?:in the queue|queued) (?:for )?too long",
        "sendmail",
        "",
    ),
    (TEMPORARY, r"no messages transferred", "domino", ""),
    (
        TEMPORARY,
        r"(?:still being|will be) retried|will (?:continue|keep) (?:to )?try",
        "postfix",
        "",
    ),
    (TEMPORARY, r"delivery attempts will continue", "exim", ""),
    (TEMPORARY, r"not yet been delivered", "exim", ""),
    (TEMPORARY, r"connection (?:timed out|refused|reset|lost)|timed out", "postfix", ""),
    (TEMPORARY, r"connection (?:\w+ ){0,3}failed|did not (?:properly )?respond", "hmailserver", ""),
    (TEMPORARY, r"(?:server|host) (?:is )?not responding", "domino", ""),
    (
        TEMPORARY,
        r"no route to host|network is unreachable|host is down|no answer from host",
        "postfix",
        "",
    ),
    (
        TEMPORARY,
        r"(?:could|can)(?:not|n't) (?:establish (?:an? )?(?:smtp )?connection|connect)",
        "qmail",
        "",
    ),
    (TEMPORARY, r"(?:post office|mailbox) (?:is )?(?:closed|busy|locked)", "groupwise", ""),
    (TEMPORARY, r"resources? (?:temporarily )?unavailable", "yahoo", ""),
    (TEMPORARY, r"deferred", "sendmail", ""),
)

#: What an enhanced status code says by itself (RFC 3463, RFC 7505): (subject,
#: detail) to a meaning; a subject alone with detail ``None``.
CODES: dict[tuple[int, int | None], str] = {
    (1, 1): DEAD,  # bad destination mailbox address
    (1, 2): DEAD,  # bad destination system address
    (1, 3): DEAD,  # bad destination mailbox address syntax
    (1, 6): DEAD,  # destination mailbox has moved, no forwarding address
    (1, 10): DEAD,  # RFC 7505: the recipient's domain has a null MX
    (2, 1): DISABLED,  # mailbox disabled, not accepting messages
    (1, 7): SENDER_ADDRESS,  # bad sender's mailbox address syntax
    (1, 8): SENDER_ADDRESS,  # bad sender's system address
    (2, 2): FULL,  # mailbox full
    (2, 3): SENDER,  # message length exceeds administrative limit
    (3, 4): SENDER,  # message too big for system
    (3, 1): TEMPORARY,  # mail system full
    (3, 2): TEMPORARY,  # system not accepting network messages
    (4, 1): TEMPORARY,  # no answer from host
    (4, 2): TEMPORARY,  # bad connection
    (4, 3): TEMPORARY,  # directory server failure
    (4, 5): TEMPORARY,  # mail system congestion
    (4, 7): TEMPORARY,  # delivery time expired
    (4, 6): UNCLEAR,  # routing loop detected
    (4, 4): UNCLEAR,  # unable to route
    (6, None): SENDER,  # message content or media
    (7, None): SENDER,  # security or policy
    (5, None): UNCLEAR,  # mail delivery protocol
}
