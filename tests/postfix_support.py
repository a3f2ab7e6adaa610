"""A private Postfix for the tests: real mail through a real MTA.

Each instance has its own configuration, queue, log and mailboxes under a
temporary directory, listens on 127.0.0.1 only and sends nothing anywhere
else (no relayhost; every destination it does not hold goes to the ``error``
transport). The machine's own Postfix is left alone: /etc/postfix is neither
changed nor used, and no system Postfix needs to run.

    with PrivatePostfix(mailboxes=["ann@example.net"], main={"smtpd_timeout": "2s"}) as mta:
        smtplib.SMTP("127.0.0.1", mta.port).sendmail(...)
        mta.wait_for("ann@example.net")     # the delivered messages, as bytes

Mailboxes are Maildirs under ``mail_root`` for one virtual domain (default
``example.net``); any other address in that domain is refused at RCPT with
``550 5.1.1 … User unknown in virtual mailbox table``. More is added before
``start``:

- ``main``: main.cf parameters (``smtpd_timeout``, ``message_size_limit``, …);
- ``services``: master.cf entries, e.g. a pipe transport::

      ["adieu unix - n n - - pipe flags=Rq user=nobody argv=/path/adieu inbound -"]

  (continuation lines start with white space, as in master.cf);
- ``transports``: transport_maps entries, e.g. ``{"bounces.example.net":
  "adieu:"}`` or ``{"lmtp.example.net": "lmtp:inet:127.0.0.1:2526"}``; a
  domain routed this way is also made a relay domain, so Postfix accepts it.

(or ``add_service`` and ``add_transport``). ``shared_dir(name)`` gives a
directory a pipe (which runs as ``nobody``) can write to and run scripts
from; ``log()`` is the instance's mail log, ``postconf()`` its settings.

``postfix -c DIR start`` needs no ``alternate_config_directories`` in the
default main.cf when run by the super-user, so Postfix runs only as root;
``missing()`` says why it cannot run here. Tests skip where it is missing
(``needs_postfix``), and fail instead when ``ADIEU_REQUIRE_POSTFIX`` is set
(CI sets it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType

import pytest

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
#: The uid and gid that own the virtual mailboxes (nobody, nogroup).
MAILBOX_ID = 65534


def missing() -> str | None:
    """Why a private Postfix cannot run here, or None when it can."""
    if not Path(POSTFIX).exists():
        return "Postfix is not installed (apt-get install postfix)"
    if os.geteuid() != 0:
        return "a private Postfix needs the super-user"
    return None


_MISSING = missing()
if _MISSING and os.environ.get("ADIEU_REQUIRE_POSTFIX"):
    raise RuntimeError(f"Postfix tests required, but {_MISSING}")

#: Mark a test (or a module, as ``pytestmark``) that needs a private Postfix.
needs_postfix = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")

_SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivatePostfix:
    """One private Postfix instance (see the module's docstring)."""

    def __init__(
        self,
        *,
        domain: str = "example.net",
        mailboxes: Iterable[str] = ("ann@example.net",),
        main: Mapping[str, str] | None = None,
        services: Iterable[str] = (),
        transports: Mapping[str, str] | None = None,
    ) -> None:
        self.domain = domain
        self.mailboxes = list(mailboxes)
        self.main: dict[str, str] = dict(main or {})
        self.services = list(services)
        self.transports: dict[str, str] = dict(transports or {})
        self.port = 0
        # The postfix user must reach the queue and the mailboxes: not under
        # pytest's own temporary directory, which only root may enter.
        self.root: Path | None = Path(tempfile.mkdtemp(prefix="adieu-postfix-"))
        self.root.chmod(0o755)
        self._started = False

    # -- before start ---------------------------------------------------------------------

    def add_service(self, entry: str) -> None:
        """A master.cf entry (continuation lines start with white space)."""
        assert not self._started, "add services before start"
        self.services.append(entry)

    def add_transport(self, key: str, value: str) -> None:
        """A transport_maps entry: ``key`` a domain or address, ``value``
        ``service:nexthop`` (a domain key is also made a relay domain)."""
        assert not self._started, "add transports before start"
        self.transports[key] = value

    def shared_dir(self, name: str) -> Path:
        """A directory under the instance's own that its delivery agents
        (a pipe runs as ``nobody``) may write to, and scripts may live in."""
        path = self._root / "shared" / name
        path.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o755)
        path.chmod(0o777)
        return path

    # -- where things are ---------------------------------------------------------------

    @property
    def config_dir(self) -> Path:
        return self._root / "etc"

    @property
    def queue_dir(self) -> Path:
        return self._root / "spool"

    @property
    def mail_root(self) -> Path:
        return self._root / "mail"

    @property
    def log_file(self) -> Path:
        return self._root / "log" / "postfix.log"

    @property
    def _root(self) -> Path:
        assert self.root is not None, "start the instance first"
        return self.root

    def mailbox(self, address: str) -> Path:
        """The Maildir of one of ``mailboxes``."""
        local, _, domain = address.partition("@")
        return self.mail_root / domain / local

    # -- starting and stopping ------------------------------------------------------------

    def start(self) -> PrivatePostfix:
        reason = missing()
        if reason:
            raise RuntimeError(f"cannot start a private Postfix: {reason}")
        root = self._root
        for name in ("etc", "spool", "data", "mail", "log"):
            (root / name).mkdir(mode=0o755)
        shutil.chown(root / "data", "postfix")
        os.chown(self.mail_root, MAILBOX_ID, MAILBOX_ID)
        self.port = _free_port()
        self._write_config()
        self._postfix("start")
        self._started = True
        self._wait_for_port()
        return self

    def stop(self) -> None:
        """Stop the instance, wait for its processes, remove its directory."""
        if self.root is None:
            return
        try:
            if self._started:
                master = self._master_pid()
                self._postfix("stop", check=False)
                if master is not None and not _gone(master, 15):
                    self._postfix("abort", check=False)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(master, signal.SIGKILL)
                    _gone(master, 5)
        finally:
            self._started = False
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> PrivatePostfix:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what arrived ---------------------------------------------------------------------

    def messages(self, address: str) -> list[bytes]:
        """The messages delivered to ``address`` so far, oldest first."""
        new = self.mailbox(address) / "new"
        if not new.is_dir():
            return []
        files = sorted(new.iterdir(), key=lambda p: (p.stat().st_mtime, p.name))
        return [p.read_bytes() for p in files]

    def wait_for(self, address: str, count: int = 1, seconds: float = 30) -> list[bytes]:
        """The messages delivered to ``address`` once there are ``count`` of them."""
        deadline = time.monotonic() + seconds
        while True:
            found = self.messages(address)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(found)} of {count} message(s) for {address} arrived;"
                    f" the log says:\n{self.log()[-3000:]}"
                )
            time.sleep(0.1)

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def postconf(self, *names: str) -> dict[str, str]:
        """The instance's effective main.cf values for ``names``."""
        out = subprocess.run(
            ["postconf", "-c", str(self.config_dir), *names],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return dict(line.split(" = ", 1) for line in out.splitlines() if " = " in line)

    # -- inside -----------------------------------------------------------------------------

    def _write_config(self) -> None:
        root = self._root
        maps = {
            "vmailbox": "".join(
                f"{address} {self.mailbox(address).relative_to(self.mail_root)}/\n"
                for address in self.mailboxes
            ),
            "transport": "".join(f"{key} {value}\n" for key, value in self.transports.items()),
        }
        for name, text in maps.items():
            (self.config_dir / name).write_text(text)
        nowhere = "error:this test instance sends no mail off loopback"
        main = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue_dir),
            "data_directory": str(root / "data"),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "upstream.adieu.example",
            "mydomain": "adieu.example",
            "myorigin": "$myhostname",
            "mydestination": "",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "relayhost": "",
            "relay_domains": " ".join(
                key for key in self.transports if "@" not in key and not key.startswith(".")
            ),
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "virtual_mailbox_domains": self.domain,
            "virtual_mailbox_base": str(self.mail_root),
            "virtual_mailbox_maps": f"texthash:{self.config_dir / 'vmailbox'}",
            "virtual_uid_maps": f"static:{MAILBOX_ID}",
            "virtual_gid_maps": f"static:{MAILBOX_ID}",
            "transport_maps": f"texthash:{self.config_dir / 'transport'}",
            "default_transport": nowhere,
            "relay_transport": nowhere,
            "smtputf8_enable": "yes",
            "biff": "no",
            "maillog_file": str(self.log_file),
            "maillog_file_prefixes": str(root / "log"),
            "smtpd_banner": "$myhostname ESMTP",
            **self.main,
        }
        (self.config_dir / "main.cf").write_text(
            "".join(f"{key} = {value}\n" for key, value in main.items())
        )
        smtpd = f"127.0.0.1:{self.port} inet n - n - - smtpd\n"
        extra = "".join(line if line.endswith("\n") else line + "\n" for line in self.services)
        (self.config_dir / "master.cf").write_text(smtpd + _SERVICES + extra)

    def _postfix(self, command: str, *, check: bool = True) -> None:
        done = subprocess.run(
            [POSTFIX, "-c", str(self.config_dir), command],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and done.returncode != 0:
            # Postfix says why on standard error only with -v, or in its log.
            why = subprocess.run(
                [POSTFIX, "-v", "-c", str(self.config_dir), "check"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            raise RuntimeError(
                f"postfix {command} failed ({done.returncode}): {done.stdout}{done.stderr}"
                f"{why.stderr[-2000:]}{self.log()[-2000:]}"
            )

    def _master_pid(self) -> int | None:
        try:
            return int((self.queue_dir / "pid" / "master.pid").read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def _wait_for_port(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Postfix does not listen:\n{self.log()[-3000:]}") from None
                time.sleep(0.05)


def _gone(pid: int, seconds: float) -> bool:
    """Whether process ``pid`` ended within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        time.sleep(0.05)
    return False
