"""``adieu relay``: a sender points its SMTP settings here and, with no code
change, every marketing message leaves compliant and nobody who has left gets
mail (R1, R8, R13).

SMTP stays apart from the logic, as in aiosmtpd's own handlers: RCPT asks the
send policy about each recipient; DATA asks it again for all of them at once
(someone may have left in between), then stamps and signs one copy per
recipient and hands them to the upstream.

Each recipient's copy is delivered once, across the client's retries, the
workers and restarts: which copies were delivered or refused is committed to
the ledger's database in batched commits, always before the client is
answered, and the workers share the list of copies under way (``InFlight``).
``adieu.ledger.relaylog`` states the guarantee and where it ends.

What the client is told, per message (SMTP has one reply to DATA for all its
recipients):

- ``250`` when every copy was delivered, or refused for good by the upstream
  (a 5xx for that copy) and recorded in the ledger: as a hard bounce, which
  stops further mail to the address, or as a rejection, by the same
  classification inbound bounces get. Having said 250, the relay owes the
  sender word of each copy that failed (RFC 5321 §6.1): a delivery status
  notification (RFC 3464) goes to the envelope sender, from the null
  sender, naming those recipients; the reply says how many there were, and
  the ledger has them too (``adieu status``, the event feed, webhooks).
- a ``5xx`` (the upstream's own code) when it refused every copy for good.
- ``451`` when any copy could not be handed over now; the retry sends only
  the copies neither delivered nor refused yet.

A kept upstream connection that was closed or broke is opened again and the
copy tried once more before any 451 (``adieu.smtp.upstream``).

With ``ADIEU_BOUNCE_DOMAIN`` each copy leaves with its own envelope sender
(``Adieu.return_path``: a compact token naming the recipient, topic and
campaign), so a bounce names its recipient exactly and cannot be forged;
the null sender stays null.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import re
import socket
import ssl
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesHeaderParser
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session

from adieu import metrics
from adieu.addresses import canonical_or_none, mask_all
from adieu.errors import InvalidAddress, InvalidInput
from adieu.ledger.relaylog import DELIVERED, PRUNE_CHUNK, REFUSED, RelayLog, Sends, Settle
from adieu.mail.stamper import Stamper
from adieu.policy import Category
from adieu.processes import check_free
from adieu.secret import Secret
from adieu.service import Adieu
from adieu.smtp.replies import (
    ALL_REFUSED,
    AUTH_REQUIRED,
    AUTH_THROTTLED,
    BAD_ADDRESS,
    BAD_MESSAGE,
    DELIVERED_SOME_REFUSED,
    DELIVERED_TO,
    NEEDS_SMTPUTF8,
    NOT_WANTED,
    OK,
    TOO_MANY_RECIPIENTS,
    TRY_LATER,
    printable,
    reply_for,
)
from adieu.smtp.server import FastPathSMTP, parse_hostport, parse_networks, run, serve
from adieu.smtp.upstream import (
    NO_SMTPUTF8,
    Refusal,
    Upstream,
    UpstreamConfig,
    UpstreamRefused,
    UpstreamUnavailable,
)

__all__ = [
    "STAMP_HEADROOM",
    "RelayConfig",
    "RelayHandler",
    "RelaySMTP",
    "make_smtp",
    "parse_hostport",
    "parse_networks",
    "run_relay",
]

log = logging.getLogger("adieu.smtp")

_CONTROL = ("X-Adieu-Category", "X-Adieu-Topic", "X-Adieu-Campaign")

#: What stamping may add to a message (unsubscribe headers, the footer in
#: every body part, the DKIM signature): the SIZE the relay advertises stays
#: this far below the upstream's, so a stamped copy still fits.
STAMP_HEADROOM = 16 * 1024


class DecisionCounts(Counter[str]):
    """The relay's tallies (delivered, refused:REASON, …), mirrored into the
    Prometheus counter ``adieu_relay_decisions_total`` as they grow."""

    def __setitem__(self, key: str, value: int) -> None:
        grown = value - self.get(key, 0)
        super().__setitem__(key, value)
        if grown > 0:
            metrics.RELAY_DECISIONS.labels(key).inc(grown)


class InFlight:
    """The copies being delivered right now, by message fingerprint and
    recipient, in shared memory: made before the workers are forked, it is
    the same for all of them. A second attempt of a message still under way
    (a client that gave up waiting and sent it again) is answered 451 instead
    of sending the copies the first attempt is sending (``adieu.ledger.relaylog``).

    Open addressing over ``slots`` entries of (a 64-bit tag of the copy, an
    expiry time), behind one lock shared by processes and threads; an entry
    a stopped worker left behind expires after ``hold`` seconds. A copy that
    finds no room nearby goes ahead (nothing is refused for lack of room).
    """

    _PROBE = 8  # entries looked at per copy: the table is mostly empty

    def __init__(self, slots: int = 8192, hold: float = 3600.0) -> None:
        import ctypes
        import multiprocessing

        self._slots = slots
        self._hold_ms = int(hold * 1000)
        self._lock = multiprocessing.Lock()
        self._table = multiprocessing.RawArray(ctypes.c_uint64, 2 * slots)

    @staticmethod
    def _tags(fingerprint: bytes, recipients: Sequence[bytes]) -> list[int]:
        return [
            int.from_bytes(hashlib.blake2b(fingerprint + r, digest_size=8).digest(), "big") | 1
            for r in recipients
        ]  # never 0, the empty entry

    def enter(self, fingerprint: bytes, recipients: Sequence[bytes]) -> bool:
        """Note these copies as under way; False (and nothing noted) when any
        of them already is."""
        tags = self._tags(fingerprint, recipients)
        now = int(time.time() * 1000)
        table = self._table
        with self._lock:
            free: list[int] = []
            for tag in tags:
                slot = -1
                for step in range(self._PROBE):
                    at = 2 * ((tag + step) % self._slots)
                    held, until = table[at], table[at + 1]
                    if held == tag and until > now:
                        return False
                    if slot < 0 and (held == 0 or until <= now) and at not in free:
                        slot = at
                free.append(slot)
            for tag, at in zip(tags, free, strict=True):
                if at >= 0:
                    table[at], table[at + 1] = tag, now + self._hold_ms
        return True

    def leave(self, fingerprint: bytes, recipients: Sequence[bytes]) -> None:
        table = self._table
        with self._lock:
            for tag in self._tags(fingerprint, recipients):
                for step in range(self._PROBE):
                    at = 2 * ((tag + step) % self._slots)
                    if table[at] == tag:
                        table[at], table[at + 1] = 0, 0
                        break


@dataclass
class RelayConfig:
    upstream: tuple[str, int]
    allow: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = ()
    category: str = Category.MARKETING.value
    topic: str | None = None
    drop_refused: bool = False
    user: str | None = None
    password: Secret | None = None
    upstream_timeout: float = 30.0
    upstream_user: str | None = None
    upstream_password: Secret | None = None
    upstream_tls: str = "starttls"  # "starttls", "implicit" or "none"
    upstream_ca_file: str | None = None
    #: Recipients taken in one transaction (ADIEU_RELAY_MAX_RECIPIENTS).
    max_recipients: int = 100
    #: Failed logins from one client address count for this many seconds; after
    #: ``auth_slow_after`` of them each attempt waits (``auth_delay``, doubling),
    #: after ``auth_lock_after`` the client is disconnected until they expire.
    auth_window: float = 900.0
    auth_delay: float = 1.0
    auth_slow_after: int = 3
    auth_lock_after: int = 10
    #: Messages under way, shared by the workers forked after it was made.
    in_flight: InFlight = field(default_factory=InFlight, repr=False)
    counts: Counter[str] = field(default_factory=DecisionCounts, repr=False)

    @property
    def upstream_config(self) -> UpstreamConfig:
        host, port = self.upstream
        return UpstreamConfig(
            host,
            port,
            timeout=self.upstream_timeout,
            user=self.upstream_user,
            password=self.upstream_password,
            tls=self.upstream_tls,
            ca_file=self.upstream_ca_file,
        )


class RelayHandler:
    """The aiosmtpd handler: policy at RCPT and DATA, stamping and forwarding at DATA."""

    def __init__(self, adieu: Adieu, config: RelayConfig) -> None:
        self.adieu = adieu
        self.config = config
        self.stamper = Stamper(adieu)
        self.counts = config.counts
        self.book = Bookkeeper(adieu.relay_log)
        self.upstream = Upstream(config.upstream_config)
        self.logins = LoginThrottle(config)
        #: The name the relay's notifications are reported by.
        self.hostname = socket.getfqdn()
        # Forwarding waits on the upstream most of the time: enough threads
        # that messages do not queue behind each other.
        self._workers = ThreadPoolExecutor(max_workers=32, thread_name_prefix="adieu-relay")

    def learn_upstream(self) -> None:
        """Ask the upstream what it offers (SIZE, SMTPUTF8) before serving;
        an upstream down now is asked again with the first message."""
        if self.upstream.probe() is None:
            log.warning("the upstream does not answer yet; the first message will ask again")

    def size_limit(self, configured: int) -> int:
        """The SIZE to advertise: ``--size-limit``, or less when the upstream
        takes less (with room for what stamping adds)."""
        features = self.upstream.features
        if features is None or features.size is None:
            return configured
        return max(min(configured, features.size - STAMP_HEADROOM), 1024)

    # -- who may use the relay (never an open relay) -------------------------

    def authenticator(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        config = self.config
        if (
            isinstance(auth_data, LoginPassword)
            and config.user is not None
            and config.password is not None
            and hmac.compare_digest(auth_data.login, config.user.encode())
            and hmac.compare_digest(auth_data.password, config.password.reveal().encode())
        ):
            return AuthResult(success=True)
        self.counts["auth_failed"] += 1
        self.logins.failed(_client(session))
        return AuthResult(success=False, handled=False)

    async def handle_AUTH(
        self, server: SMTP, session: Session, envelope: Envelope, args: list[str]
    ) -> Any:
        """Before each AUTH: a client that keeps failing waits, then is
        disconnected, whatever password it brings, until its failures expire."""
        failures = self.logins.failures(_client(session))
        if failures >= self.config.auth_lock_after:
            self.counts["auth_throttled"] += 1
            await server.push(AUTH_THROTTLED)
            if server.transport is not None:
                server.transport.close()
            return None  # answered here
        delay = self.logins.delay(failures)
        if delay:
            await asyncio.sleep(delay)
        return MISSING  # on to aiosmtpd's own AUTH

    def _trusted(self, session: Session) -> bool:
        if session.authenticated:
            return True
        try:
            peer = ipaddress.ip_address(_client(session).split("%")[0])
        except ValueError:
            return False
        if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
            # An IPv4 client of a socket on [::] shows as ::ffff:a.b.c.d.
            return any(
                p in network for p in (peer, peer.ipv4_mapped) for network in self.config.allow
            )
        return any(peer in network for network in self.config.allow)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if not self._trusted(session):
            self.counts["refused:not_authenticated"] += 1
            return AUTH_REQUIRED
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return OK

    # -- the send policy, per recipient ---------------------------------------

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        config = self.config
        if len(envelope.rcpt_tos) >= config.max_recipients:
            self.counts["refused:too_many_recipients"] += 1
            return TOO_MANY_RECIPIENTS
        if not address.isascii():
            features = self.upstream.features
            if not envelope.smtp_utf8:
                self.counts["refused:needs_smtputf8"] += 1
                return NEEDS_SMTPUTF8.format(
                    address=printable(address), why="MAIL FROM did not ask for SMTPUTF8"
                )
            if features is not None and not features.smtputf8:
                self.counts["refused:no_smtputf8_upstream"] += 1
                return NEEDS_SMTPUTF8.format(address=printable(address), why=NO_SMTPUTF8)
        try:
            # One indexed read (tens of microseconds): cheaper in the loop than
            # a hop to a thread that may be busy forwarding a message.
            decision = self.adieu.policy.may_send(address, config.topic, config.category)
        except InvalidAddress:
            return BAD_ADDRESS.format(address=printable(address))
        if not decision:
            self.counts[f"refused:{decision.reason}"] += 1
            if config.drop_refused:
                return OK  # accepted and dropped: the client never learns who left
            return NOT_WANTED.format(address=printable(address), why=decision.reason)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return OK

    # -- stamping and forwarding ----------------------------------------------------

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        crlf = content.count(b"\r\n")
        if content.count(b"\n") != crlf or content.count(b"\r") != crlf:
            # SMTP smuggling hides a second message behind <LF>.<LF>; refuse any bare LF/CR.
            self.counts["refused:bare_lf"] += 1
            return BAD_MESSAGE.format(why="Bare LF or CR in the message: end every line with CRLF")
        if b"\0" in content:
            # RFC 5322 §2.1: a message's characters run from 1 to 127 (UTF-8
            # beyond, RFC 6532); NUL is none, and receivers treat it each their
            # own way (another lever for smuggling).
            self.counts["refused:nul"] += 1
            return BAD_MESSAGE.format(why="NUL characters are not allowed in a message")
        if not envelope.rcpt_tos:
            return OK  # every recipient was dropped
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._workers, self._deliver, envelope, content
            )
        except Exception as exc:  # the one map: a clear reply, never a traceback
            return reply_for(exc)

    async def handle_exception(self, error: Exception) -> str:
        """aiosmtpd's hook for an exception in any other command."""
        return reply_for(error)

    def _deliver(self, envelope: Envelope, content: bytes) -> str:
        # The raw header values are all that is needed here (no header
        # objects), and only the header block is read.
        headers = header_values(content.partition(b"\r\n\r\n")[0], _READ)
        if not headers.get("from"):
            raise InvalidInput("The message has no From header")
        category = str(headers.get("x-adieu-category") or self.config.category).strip().lower()
        if category not in {c.value for c in Category}:
            raise InvalidInput("X-Adieu-Category must be marketing or transactional")
        topic = str(headers.get("x-adieu-topic") or self.config.topic or "").strip() or None
        campaign = str(headers.get("x-adieu-campaign") or "").strip() or None
        sender = envelope.mail_from or ""
        # Everyone again, at once: someone may have left since RCPT, and the
        # message may name a narrower topic or category than RCPT asked about.
        recipients = list(dict.fromkeys(envelope.rcpt_tos))
        decisions = self.adieu.policy.check_many(recipients, topic, category)
        keys: dict[bytes, str] = {}
        hasher = self.adieu.hasher
        for recipient, decision in zip(recipients, decisions, strict=True):
            if not decision:
                self.counts["dropped:policy_at_data"] += 1
                continue
            keys.setdefault(hasher.hash(canonical_or_none(recipient) or recipient), recipient)
        if not keys:
            return DELIVERED_TO.format(count=0)
        fingerprint = self._fingerprint(sender, content)
        in_flight = self.config.in_flight
        if not in_flight.enter(fingerprint, list(keys)):
            # Another attempt of this message is delivering these copies right now.
            self.counts["busy"] += 1
            return TRY_LATER
        try:
            return self._attempt(envelope, content, fingerprint, keys, category, topic, campaign)
        finally:
            in_flight.leave(fingerprint, list(keys))

    def _attempt(
        self,
        envelope: Envelope,
        content: bytes,
        fingerprint: bytes,
        keys: dict[bytes, str],
        category: str,
        topic: str | None,
        campaign: str | None,
    ) -> str:
        """One attempt of a message: the copies not delivered or refused
        before, each stamped and handed over; what happened recorded durably,
        then the answer (see the module's docstring)."""
        sender = envelope.mail_from or ""
        # With ADIEU_BOUNCE_DOMAIN, each copy's own return path names its
        # recipient (VERP); the null sender stays null (RFC 5321 §4.5.5).
        verp = bool(self.adieu.settings.bounce_domain) and sender not in ("", "<>")
        known = self.adieu.relay_log.known(fingerprint, list(keys))
        before = Counter(known.get(key) for key in keys)
        outcomes: dict[bytes, str] = {}
        delivered: list[str] = []
        refused: list[tuple[str, Refusal]] = []
        recorded: list[Refusal] = []
        later = 0
        try:
            cleaned = _without_control_headers(content)
            reachable = True
            for key, recipient in keys.items():
                if key in known:
                    continue
                if not reachable:
                    later += 1
                    continue
                copy = self.stamper.stamp(cleaned, recipient, topic=topic, campaign=campaign)
                return_path = (
                    self.adieu.return_path(recipient, topic, campaign) if verp else None
                ) or sender
                try:
                    self.upstream.send(
                        return_path,
                        recipient,
                        copy,
                        smtputf8=bool(envelope.smtp_utf8),
                        eightbit=not copy.isascii(),
                    )
                except UpstreamRefused as exc:
                    if exc.refusal.permanent:
                        refused.append((recipient, exc.refusal))
                    else:
                        later += 1
                    continue
                except UpstreamUnavailable:
                    later += 1
                    reachable = False  # the others wait for the retry
                    continue
                outcomes[key] = DELIVERED
                delivered.append(recipient)
            recorded = self._record_refusals(refused, campaign, keys, outcomes)
            later += len(refused) - len(recorded)
        except BaseException:
            # Failed half-way: what went is recorded all the same, so the retry skips it.
            self._settle(fingerprint, outcomes, delivered, category, topic, campaign)
            raise
        # Durable before the client hears anything (adieu.ledger.relaylog).
        self._settle(fingerprint, outcomes, delivered, category, topic, campaign)
        if delivered:
            self.counts["delivered"] += len(delivered)
        taken = len(delivered) + before[DELIVERED]
        if recorded and (later or taken):
            # Refused for good while the message as a whole is taken (now or
            # with the retry): the sender hears of those copies by mail, once.
            self._notify_sender(sender, refused, recorded, content)
        if later:
            self.counts["upstream_failed"] += 1
            return TRY_LATER
        if taken == 0 and (recorded or before[REFUSED]):
            first = recorded[0] if recorded else None
            return ALL_REFUSED.format(
                code=first.code if first else 554,
                status=(first.status if first else "") or "5.0.0",
                why=printable(first.text if first else "refused before (see the ledger)"),
            )
        if recorded or before[REFUSED]:
            return DELIVERED_SOME_REFUSED.format(
                count=taken, refused=len(recorded) + before[REFUSED]
            )
        return DELIVERED_TO.format(count=taken)

    def _notify_sender(
        self,
        sender: str,
        refused: list[tuple[str, Refusal]],
        recorded: list[Refusal],
        content: bytes,
    ) -> None:
        """Send the envelope sender a delivery status notification for the
        copies refused for good (never for the null sender); best effort: the
        ledger has the refusals whatever happens here."""
        if sender in ("", "<>"):
            return
        failed = [(r, refusal) for r, refusal in refused if any(refusal is x for x in recorded)]
        report = delivery_report(sender, failed, content, self.hostname, self.config.upstream[0])
        try:
            self.upstream.send(
                "", sender, report, smtputf8=not sender.isascii(), eightbit=not report.isascii()
            )
        except (UpstreamRefused, UpstreamUnavailable) as exc:
            self.counts["dsn_failed"] += 1
            log.warning("cannot send a delivery status notification: %s", type(exc).__name__)
            return
        self.counts["dsn_sent"] += 1

    def _fingerprint(self, sender: str, content: bytes) -> bytes:
        """The message as the client sent it, keyed like the addresses (so the
        table cannot confirm a guessed message)."""
        digest = hashlib.sha256(content).hexdigest()
        return self.adieu.hasher.hash(f"relay\0{sender}\0{digest}")

    def _record_refusals(
        self,
        refused: list[tuple[str, Refusal]],
        campaign: str | None,
        keys: dict[bytes, str],
        outcomes: dict[bytes, str],
    ) -> list[Refusal]:
        """Record each permanent refusal as inbound bounces are recorded; the
        refusals recorded (one that cannot be recorded now is tried again)."""
        if not refused:
            return []
        from adieu.feedback.classify import bounce_kind
        from adieu.ledger import Channel, EventType

        ledger = self.adieu.ledger
        by_address = {recipient: key for key, recipient in keys.items()}
        recorded: list[Refusal] = []
        for recipient, refusal in refused:
            # A refusal of the envelope sender says nothing about the recipient.
            kind = (
                "rejection"
                if refusal.stage == "mail"
                else bounce_kind(refusal.status, refusal.text)
            )
            if kind not in ("hard_bounce", "soft_bounce"):
                kind = "rejection"
            details = {
                "via": "relay",
                "stage": refusal.stage,
                "code": refusal.code,
                "status": refusal.status,
                "diagnostic": mask_all(refusal.text)[:500],
            }
            try:
                if kind in ("hard_bounce", "soft_bounce"):
                    ledger.record_bounce(
                        recipient, hard=kind == "hard_bounce", campaign=campaign, details=details
                    )
                else:
                    ledger.record_event(
                        recipient, EventType.REJECTION, channel=Channel.BOUNCE, details=details
                    )
            except Exception as exc:  # asked again with the retry
                log.warning("cannot record a refusal now: %s", type(exc).__name__)
                continue
            outcomes[by_address[recipient]] = REFUSED
            self.counts[f"upstream:{kind}"] += 1
            recorded.append(refusal)
        return recorded

    def _settle(
        self,
        fingerprint: bytes,
        outcomes: dict[bytes, str],
        delivered: list[str],
        category: str,
        topic: str | None,
        campaign: str | None,
    ) -> None:
        if delivered:
            self.book.sent(Sends(delivered, category, topic, campaign))
        try:
            self.book.settle(Settle(fingerprint, outcomes))
        except Exception as exc:
            # The copies went and their rows are missing: when nothing is left
            # to send the client is answered as it would have been, and no
            # retry comes; otherwise its retry may send them again.
            log.warning("cannot record delivered copies now: %s", type(exc).__name__)

    def close(self) -> None:
        """Let the attempts under way finish, close the kept upstream
        connections and record the last sends."""
        self._workers.shutdown(wait=True)
        self.upstream.close()
        self.book.close()


def _client(session: Session) -> str:
    host = session.peer[0] if isinstance(session.peer, tuple) else session.peer
    return str(host)


class LoginThrottle:
    """Failed logins per client address within a sliding window."""

    def __init__(self, config: RelayConfig, keep: int = 10_000) -> None:
        self._config = config
        self._keep = keep
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def failures(self, client: str) -> int:
        with self._lock:
            times = self._failures.get(client)
            if times is None:
                return 0
            horizon = time.monotonic() - self._config.auth_window
            while times and times[0] < horizon:
                times.popleft()
            if not times:
                del self._failures[client]
            return len(times)

    def failed(self, client: str) -> None:
        with self._lock:
            if client not in self._failures and len(self._failures) >= self._keep:
                self._failures.pop(next(iter(self._failures)))  # the oldest client
            self._failures.setdefault(client, deque(maxlen=1000)).append(time.monotonic())

    def delay(self, failures: int) -> float:
        config = self._config
        if failures < config.auth_slow_after:
            return 0.0
        return float(min(config.auth_delay * 2 ** (failures - config.auth_slow_after), 30.0))


class _Waiter:
    __slots__ = ("done", "error", "lead", "settle")

    def __init__(self, settle: Settle) -> None:
        self.settle = settle
        self.done = threading.Event()
        self.error: BaseException | None = None
        #: Set when this caller is to commit the next batch itself.
        self.lead = False


class Bookkeeper:
    """Writes what attempts did to the ledger's database, in group commits.

    The forwarding thread that finds no commit under way commits its own
    attempt, and with it whatever the other threads finished meanwhile; the
    others wait, and the first of those that arrived during a commit leads
    the next one. Each caller returns once its attempt is committed (durable
    before the client is answered); a failed batch is tried twice more, then
    its callers get the error. A thread of its own writes the sends (for the
    frequency caps and the report, no waiting) every ``interval`` seconds and
    the rest on ``close``, and now and then prunes rows past their time.
    """

    def __init__(self, log: RelayLog, *, interval: float = 0.2, prune_every: float = 600.0) -> None:
        self._log = log
        self._interval = interval
        self._prune_every = prune_every
        self._lock = threading.Lock()
        self._waiting: list[_Waiter] = []
        self._leading = False
        self._sends: list[Sends] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="adieu-relaylog", daemon=True)
        self._thread.start()

    def settle(self, settle: Settle) -> None:
        """Record ``settle`` durably; returns once it is committed."""
        if not settle.outcomes:
            return
        me = _Waiter(settle)
        with self._lock:
            self._waiting.append(me)
            me.lead = not self._leading
            self._leading = True
        if not me.lead:
            me.done.wait()  # committed by another thread, or asked to lead
        if me.lead:
            self._lead()
        if me.error is not None:
            raise me.error

    def _lead(self) -> None:
        with self._lock:
            batch, self._waiting = self._waiting, []
        error: BaseException | None = None
        for pause in (0.05, 0.25, None):
            try:
                self._log.settle([w.settle for w in batch])
                error = None
                break
            except Exception as exc:
                error = exc
                if pause is not None:
                    time.sleep(pause)
        with self._lock:
            if self._waiting:
                self._waiting[0].lead = True  # the next batch is theirs to commit
                self._waiting[0].done.set()
            else:
                self._leading = False
        for waiter in batch:
            waiter.error = error
            waiter.lead = False
            waiter.done.set()

    def sent(self, sends: Sends) -> None:
        """Record ``sends`` with the next batch of sends."""
        with self._lock:
            self._sends.append(sends)

    def _run(self) -> None:
        next_prune = time.monotonic() + 60
        stopping = False
        while not stopping:
            stopping = self._stop.wait(self._interval)
            with self._lock:
                sends, self._sends = self._sends, []
            if sends:
                with contextlib.suppress(Exception):  # counts, not consent: never a failure
                    self._log.record_sends(sends)
            if not stopping and time.monotonic() >= next_prune:
                more = False
                with contextlib.suppress(Exception):
                    # One chunk at a time; again soon if more is due.
                    more = self._log.prune(rounds=1) >= PRUNE_CHUNK
                next_prune = time.monotonic() + (1 if more else self._prune_every)

    def close(self) -> None:
        """Write the sends that are left and stop."""
        self._stop.set()
        self._thread.join(timeout=30)


def delivery_report(
    sender: str,
    failed: Sequence[tuple[str, Refusal]],
    content: bytes,
    reporter: str,
    upstream: str,
) -> bytes:
    """A delivery status notification (RFC 3464, in a multipart/report of
    RFC 6522) telling ``sender`` which recipients' copies the upstream
    refused for good, with the original message's header (as the sender
    sent it) returned."""
    import email.utils
    import secrets

    boundary = f"adieu-{secrets.token_hex(12)}"
    now = email.utils.formatdate(localtime=False)
    names = "".join(f"  {recipient}\r\n" for recipient, _ in failed)
    blocks = "".join(
        f"Final-Recipient: rfc822; {recipient}\r\n"
        "Action: failed\r\n"
        f"Status: {refusal.status or '5.0.0'}\r\n"
        f"Remote-MTA: dns; {upstream}\r\n"
        f"Diagnostic-Code: smtp; {refusal.code} {refusal.status} {printable(refusal.text)}\r\n"
        "\r\n"
        for recipient, refusal in failed
    )
    head = _without_control_headers(content).partition(b"\r\n\r\n")[0]
    text = (
        f"This is the Adieu relay at {reporter}.\r\n\r\n"
        f"The next hop ({upstream}) refused your message for good for:\r\n\r\n"
        f"{names}\r\n"
        "Adieu has recorded this (it sends nothing more to an address that does\r\n"
        "not exist). The report below says why for each. Other recipients are\r\n"
        "not affected.\r\n"
    )
    report = (
        f"From: Mail Delivery System <MAILER-DAEMON@{reporter}>\r\n"
        f"To: <{sender}>\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Date: {now}\r\n"
        f"Message-ID: {email.utils.make_msgid(domain=reporter)}\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
        "\r\n"
        f"--{boundary}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{text}\r\n"
        f"--{boundary}\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; {reporter}\r\n"
        f"Arrival-Date: {now}\r\n\r\n"
        f"{blocks}"
        f"--{boundary}\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
    ).encode()
    return report + head + f"\r\n\r\n--{boundary}--\r\n".encode()


#: The header fields the relay reads from a message.
_READ = ("from", "x-adieu-category", "x-adieu-topic", "x-adieu-campaign")
#: The first line of a header field, as the e-mail parser knows one (its
#: ``headerRE`` less the unix From line and the field without a name).
_FIELD = re.compile(r"[\x21-\x39\x3b-\x7e]+:")


def header_values(head: bytes, names: Sequence[str]) -> dict[str, object]:
    """The first value of each of ``names`` (lower case) in the header block
    ``head`` (CRLF line ends), as ``email``'s parser with the compat32 policy
    gives it (``Message.get``): by name whatever its case, folded lines
    joined with their CRLF, white space before the value left out. A block
    of plain ASCII fields is read here; anything else (8-bit text, a line
    the parser would take for the start of the body, a unix From line) by
    the parser itself."""
    fields: list[tuple[str, str]] = []
    if head.isascii() and head.count(b"\r") == head.count(b"\n") == head.count(b"\r\n"):
        text = head.decode("ascii")
        for line in text.split("\r\n"):
            if line[:1] in (" ", "\t") and fields:
                name, value = fields[-1]
                fields[-1] = (name, value + "\r\n" + line)
            elif _FIELD.match(line):
                name, _, value = line.partition(":")
                fields.append((name.lower(), value.lstrip(" \t")))
            else:
                break
        else:
            found: dict[str, object] = {}
            for name, value in fields:
                if name in names and name not in found:
                    found[name] = value
            return found
    parsed = BytesHeaderParser(policy=policy.compat32).parsebytes(head + b"\r\n\r\n")
    return {name: parsed.get(name) for name in names if parsed.get(name) is not None}


def _without_control_headers(content: bytes) -> bytes:
    """The message without the X-Adieu-* instructions meant for the relay."""
    head, sep, body = content.partition(b"\r\n\r\n")
    if b"x-adieu-" not in head.lower():
        return content  # none to remove (the usual case without a line loop)
    lines = head.split(b"\r\n")
    kept: list[bytes] = []
    skipping = False
    names = tuple(n.lower().encode() + b":" for n in _CONTROL)
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                kept.append(line)
            continue
        skipping = line.lower().startswith(names)
        if not skipping:
            kept.append(line)
    return b"\r\n".join(kept) + sep + body


#: The relay's server class (kept under its old name).
RelaySMTP = FastPathSMTP


def make_smtp(
    handler: RelayHandler,
    *,
    tls: ssl.SSLContext | None,
    size_limit: int,
    hostname: str | None = None,
) -> SMTP:
    """The aiosmtpd server for one relay connection, with Adieu's limits."""
    return FastPathSMTP(
        handler,
        data_size_limit=handler.size_limit(size_limit),
        enable_SMTPUTF8=True,
        hostname=hostname,
        tls_context=tls,
        require_starttls=False,
        auth_required=False,
        auth_require_tls=True,
        authenticator=handler.authenticator,
        timeout=120,
    )


def run_relay(
    make_handler: Callable[[], RelayHandler],
    host: str,
    port: int,
    *,
    tls: ssl.SSLContext | None = None,
    size_limit: int = 25 * 1024 * 1024,
    workers: int = 1,
    metrics_at: tuple[str, int] | None = None,
) -> None:
    """Run the relay in ``workers`` processes sharing one listening port.

    Stamping and signing are CPU work under one interpreter lock per process,
    so a busy relay uses more cores with more processes. With ``metrics_at``,
    worker N serves Prometheus metrics on its port + N.
    """

    if metrics_at is not None:
        for index in range(max(workers, 1)):
            check_free(metrics_at[0], metrics_at[1] + index)

    def worker(index: int, sock: socket.socket) -> None:
        if metrics_at is not None:
            from prometheus_client import start_http_server

            start_http_server(metrics_at[1] + index, addr=metrics_at[0], registry=metrics.REGISTRY)
        handler = make_handler()
        try:
            handler.learn_upstream()
            asyncio.run(serve(lambda: make_smtp(handler, tls=tls, size_limit=size_limit), sock))
        finally:
            handler.close()

    run(worker, host, port, workers=workers)
