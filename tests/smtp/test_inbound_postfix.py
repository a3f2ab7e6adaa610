"""Mail that comes back, through Debian's Postfix wired as the README says.

The README's own lines are read from README.md and used here, with this
test's paths, ports and the user ``nobody`` put in: the settings file
(``ADIEU_CONFIG``), the pipe transport (``adieu inbound - ${recipient}``,
``adieu_destination_recipient_limit = 1``), ``relay_domains`` and
``transport_maps``, and the LMTP transport (``lmtp:inet:…``). The relay
sends through a private Postfix with ``ADIEU_BOUNCE_DOMAIN`` set; Postfix
itself bounces the copies it cannot deliver (a nonexistent user, and an
alias whose target is gone), and the bounce comes back to the copy's return
path and on to Adieu.

The pipe runs as ``nobody`` with Postfix's environment, in Postfix's spool
directory, exactly as configured; where ``nobody`` cannot run this Python
(it lives under /root here), the program it runs is a small shell script
that hands its arguments, ``ADIEU_CONFIG``, working directory and input to
``adieu inbound`` run by the test, and returns its exit status.
"""

from __future__ import annotations

import os
import re
import shutil
import smtplib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from relay_support import MESSAGE, Relay, make_app

from adieu.ledger import Reason
from adieu.service import Adieu
from conftest import MakeSettings
from postfix_support import PrivatePostfix, needs_postfix
from support import free_port, wait_for_port

pytestmark = needs_postfix

README = Path(__file__).resolve().parents[2] / "README.md"
ADIEU = str(Path(sys.executable).with_name("adieu"))
UNSUB, BOUNCES = "unsub.example.com", "bounces.example.com"


# -- the README's lines -----------------------------------------------------------------


def readme_blocks() -> list[str]:
    return re.findall(r"```[a-z]*\n(.*?)```", README.read_text(), re.S)


def sections(block: str) -> dict[str, list[str]]:
    """A README block's lines under each ``# /etc/…/NAME`` comment, by NAME."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in block.splitlines():
        heading = re.match(r"# /etc/\w+/([\w.]+)", line)
        if heading:
            current = found.setdefault(heading.group(1), [])
        elif current is not None and line.strip():
            current.append(line)
    return found


def readme_wiring(kind: str) -> dict[str, list[str]]:
    """The README's Postfix lines for the ``pipe`` or ``lmtp`` wiring."""
    marker = "pipe" if kind == "pipe" else "lmtp:inet:"
    (block,) = [b for b in readme_blocks() if "# /etc/postfix/transport" in b and marker in b]
    return sections(block)


def readme_settings() -> list[str]:
    (block,) = [b for b in readme_blocks() if b.startswith("# /etc/adieu/adieu.toml")]
    return sections(block)["adieu.toml"]


def wire(mta: PrivatePostfix, kind: str, put: dict[str, str]) -> None:
    """Add the README's lines for ``kind`` to ``mta``, with ``put`` substituted."""

    def fill(line: str) -> str:
        for old, new in put.items():
            line = line.replace(old, new)
        return line

    lines = readme_wiring(kind)
    if kind == "pipe":
        mta.add_service("\n".join(fill(line) for line in lines["master.cf"]))
    lines["main.cf"] += readme_wiring("pipe")["main.cf"]  # the same relay_domains
    for line in lines["main.cf"]:
        name, _, value = fill(line).partition(" = ")
        if name.strip() != "transport_maps":  # the instance keeps its own map file
            mta.main[name.strip()] = value.strip()
    for line in lines["transport"]:
        key, value = fill(line).split()
        mta.add_transport(key, value)


def settings_file(app: Adieu, where: Path) -> Path:
    """The README's adieu.toml, for this test's ledger."""
    lines = [
        line.replace("/var/lib/adieu", str(app.settings.data_dir)) for line in readme_settings()
    ]
    if app.settings.database_url:
        lines.append(f'database_url = "{app.settings.database_url}"')
    path = where / "adieu.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


# -- the program the pipe runs --------------------------------------------------------------

_SHIM = """#!/bin/sh
job=$(mktemp -d {jobs}/job.XXXXXX)
cat > "$job/stdin"
pwd > "$job/cwd"
id -u > "$job/uid"
printf '%s' "$ADIEU_CONFIG" > "$job/config"
for arg in "$@"; do printf '%s\\n' "$arg"; done > "$job/args"
touch "$job/ready"
while [ ! -f "$job/rc" ]; do sleep 0.05; done
cat "$job/stdout"
cat "$job/stderr" >&2
exit "$(cat "$job/rc")"
"""


class PipeProgram:
    """What the pipe runs as ``/opt/adieu/.venv/bin/adieu``: this Python's
    ``adieu``, directly when ``nobody`` can run it, else through a shim (see
    the module's docstring). ``runs`` lists each run's arguments and exit."""

    def __init__(self, mta: PrivatePostfix) -> None:
        self.runs: list[tuple[list[str], int, int]] = []
        self.path = ADIEU
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if not _nobody_can_run(ADIEU):
            self.jobs = mta.shared_dir("jobs")
            shim = mta.shared_dir("bin") / "adieu"
            shim.write_text(_SHIM.format(jobs=self.jobs))
            shim.chmod(0o755)
            self.path = str(shim)
            self._thread = threading.Thread(target=self._serve, daemon=True)
            self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            for job in sorted(self.jobs.glob("job.*")):
                if (job / "ready").exists() and not (job / "rc").exists():
                    self._run(job)
            time.sleep(0.05)

    def _run(self, job: Path) -> None:
        args = (job / "args").read_text().splitlines()
        config = (job / "config").read_text()
        env = {"PATH": "/usr/bin:/bin"}  # what pipe(8) passes, and ADIEU_CONFIG from env(1)
        if config:
            env["ADIEU_CONFIG"] = config
        with (job / "stdin").open("rb") as stdin:
            done = subprocess.run(
                [ADIEU, *args],
                stdin=stdin,
                cwd=(job / "cwd").read_text().strip(),
                env=env,
                capture_output=True,
                timeout=120,
            )
        (job / "stdout").write_bytes(done.stdout)
        (job / "stderr").write_bytes(done.stderr)
        uid = int((job / "uid").read_text())
        self.runs.append((args, done.returncode, uid))
        (job / "rc").write_text(str(done.returncode))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


#: The pipe's program, by the instance it runs for (``id``).
PROGRAMS: dict[int, PipeProgram] = {}


def piped(mta: PrivatePostfix) -> None:
    """When ``mta`` delivers by the pipe: each run was one recipient's, as
    ``nobody``, and exited 0 (nothing deferred or bounced)."""
    program = PROGRAMS.get(id(mta))
    if program is None or not program.path.startswith(str(mta.root)):
        return
    assert program.runs, "the pipe ran"
    for args, code, uid in program.runs:
        assert (args[:1], len(args), code, uid) == (["inbound"], 3, 0, 65534), args


def _nobody_can_run(program: str) -> bool:
    done = subprocess.run(
        ["su", "nobody", "-s", "/bin/sh", "-c", f"{program} --version"],
        capture_output=True,
        timeout=60,
    )
    return done.returncode == 0


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def app(make_settings: MakeSettings) -> Iterator[Adieu]:
    adieu = make_app(make_settings, mailto_domain=UNSUB, bounce_domain=BOUNCES)
    yield adieu
    adieu.close()


def upstream() -> PrivatePostfix:
    """The upstream: ann has a mailbox; erin's address forwards to one that is
    gone; any other user of example.net is taken at RCPT and bounced later
    (so that Postfix, not the relay, reports it)."""
    mta = PrivatePostfix(
        mailboxes=["ann@example.net"],
        main={"smtpd_reject_unlisted_recipient": "no"},
    )
    aliases = mta.shared_dir("maps") / "virtual"
    aliases.write_text("erin@example.net erin.old@example.net\n")
    mta.main["virtual_alias_maps"] = f"texthash:{aliases}"
    return mta


@pytest.fixture(params=["pipe", "lmtp"])
def mta(request: pytest.FixtureRequest, app: Adieu) -> Iterator[PrivatePostfix]:
    """Postfix wired to Adieu's inbound as the README says, by pipe or LMTP."""
    mta = upstream()
    config = settings_file(app, mta.shared_dir("etc"))
    config.chmod(0o644)
    if request.param == "pipe":
        program = PipeProgram(mta)
        PROGRAMS[id(mta)] = program
        wire(
            mta,
            "pipe",
            {
                "/etc/adieu/adieu.toml": str(config),
                "/opt/adieu/.venv/bin/adieu": program.path,
                "user=adieu": "user=nobody",
            },
        )
        with mta:
            yield mta
        program.stop()
        return
    port = free_port()
    wire(mta, "lmtp", {"127.0.0.1:2526": f"127.0.0.1:{port}"})
    listener = subprocess.Popen(
        [ADIEU, "inbound", "--listen", f"127.0.0.1:{port}", "--lmtp"],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "ADIEU_CONFIG": str(config)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, listener)
        with mta:
            yield mta
    finally:
        listener.terminate()
        listener.wait(timeout=10)


def wait_until(check: object, mta: PrivatePostfix, seconds: float = 60) -> None:
    assert callable(check)
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, mta.log()[-4000:]
        time.sleep(0.2)


def hard_bounced(app: Adieu, address: str) -> bool:
    reasons = [s.reason for s in app.ledger.status(address).state.suppressions]
    return reasons == [Reason.HARD_BOUNCE]


# -- the tests ------------------------------------------------------------------------------


def test_a_bounce_postfix_makes_comes_back_as_a_hard_bounce_for_the_right_recipient(
    app: Adieu, mta: PrivatePostfix
) -> None:
    relay = Relay(app, mta.port)
    try:
        with smtplib.SMTP("127.0.0.1", relay.port) as client:
            refused = client.sendmail(
                "news@example.com",
                ["ann@example.net", "gone@example.net", "erin@example.net"],
                MESSAGE,
            )
        assert refused == {}
        mta.wait_for("ann@example.net")
        wait_until(
            lambda: hard_bounced(app, "gone@example.net") and hard_bounced(app, "erin@example.net"),
            mta,
        )
    finally:
        relay.stop()
    log = mta.log()
    assert "status=bounced" in log and "bounces+" in log
    assert app.ledger.status("ann@example.net").state.suppressions == ()
    assert not app.ledger.status("erin.old@example.net").events, "the alias's target is not ours"
    (bounce,) = [e for e in app.ledger.history("erin@example.net") if e.type == "hard_bounce"]
    assert (bounce.details or {})["trusted_by"] == "token"
    assert app.ledger.review_items() == []
    piped(mta)


def test_a_mailto_unsubscribe_to_two_addresses_through_postfix(
    app: Adieu, mta: PrivatePostfix
) -> None:
    app.ledger.record_sends(["ann@example.org", "bob@example.org"], category="marketing")
    to = []
    for address in ("ann@example.org", "bob@example.org"):
        compact = app.link(address).compact
        assert compact is not None
        to.append(f"unsubscribe+{compact}@{UNSUB}")
    message = (
        f"From: Reader <reader@example.org>\r\nTo: {', '.join(to)}\r\n"
        "Subject: unsubscribe\r\n\r\nunsubscribe\r\n"
    )
    with smtplib.SMTP("127.0.0.1", mta.port) as client:
        assert client.sendmail("reader@example.org", to, message) == {}
    wait_until(
        lambda: (
            not app.policy.may_send("ann@example.org", category="marketing")
            and not app.policy.may_send("bob@example.org", category="marketing")
        ),
        mta,
    )
    assert "bounced" not in mta.log(), "nothing goes back to the person who wrote"
    piped(mta)


def test_the_readme_wiring_is_complete() -> None:
    """What the README's Postfix lines must hold (these tests use them as they are)."""
    pipe, lmtp = readme_wiring("pipe"), readme_wiring("lmtp")
    master = " ".join(pipe["master.cf"])
    assert "user=adieu" in master and "ADIEU_CONFIG=/etc/adieu/adieu.toml" in master
    assert master.rstrip().endswith("inbound - ${recipient}")
    assert "adieu_destination_recipient_limit = 1" in pipe["main.cf"]
    assert f"relay_domains = {UNSUB}, {BOUNCES}" in pipe["main.cf"]
    assert any(line.startswith("lmtp_destination_recipient_limit") for line in lmtp["main.cf"])
    assert {line.split()[0] for line in lmtp["transport"]} == {
        line.split()[0] for line in pipe["transport"]
    }
    assert shutil.which("env") == "/usr/bin/env"
