"""A first start as a newcomer makes it: what ``serve`` prints works as
printed, and the commands tried next say what they do."""

from __future__ import annotations

import asyncio
import io
import os
import queue
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from _pytest.mark import ParameterSet
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st
from starlette.types import Receive, Scope, Send

from adieu.cli import main
from adieu.cli.serve import origin
from adieu.ledger.vocabulary import Channel, Frequency
from adieu.service import Adieu
from adieu.settings import Settings
from adieu.web.access_log import AccessLog, shown_path
from support import free_port

CONSOLE_SCRIPT = Path(sys.executable).with_name("adieu")


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADIEU_")}
    env["ADIEU_CONFIG"] = str(tmp_path / "none.toml")
    env["COLUMNS"] = "80"
    return env


class Served:
    """A running ``serve``: its output is read as it comes, on a thread of its
    own, so that no test ever waits on a line that does not come."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def banner(self, seconds: float = 60) -> None:
        """Up to "Press Ctrl+C to stop.", the banner's last line."""
        deadline = time.monotonic() + seconds
        while not self.lines or "Ctrl+C" not in self.lines[-1]:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                pytest.fail("no 'Press Ctrl+C to stop.' line:\n" + self.text)
            assert line is not None, "serve exited early:\n" + self.text
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def link(self) -> str:
        found = re.search(r"^  (http\S+/u/\S+)$", self.text, re.MULTILINE)
        assert found, self.text
        return found.group(1)

    def rest(self) -> str:
        """What it printed after the banner, up to its end: stops it first
        (gracefully, as Ctrl+C does), so that reading never waits."""
        self.stop()
        got = []
        while (line := self._queue.get(timeout=15)) is not None:
            got.append(line)
        return "".join(got)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def serving(tmp_path: Path, command: list[str], *args: str) -> Iterator[Served]:
    """``serve`` started as a person starts it, until its banner is out."""
    proc = subprocess.Popen(
        [*command, "serve", *args],
        cwd=tmp_path,
        env=_clean_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    served = Served(proc)
    try:
        served.banner()
        yield served
    finally:
        served.stop()
        if proc.stdout is not None:
            proc.stdout.close()


def _get(url: str, **kwargs: object) -> httpx.Response:
    """``url`` once the server answers (the banner may come just before it listens)."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return httpx.get(url, **kwargs)  # type: ignore[arg-type]
        except httpx.ConnectError:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def _launchers() -> list[ParameterSet]:
    found = [pytest.param([sys.executable, "-m", "adieu"], id="python-m-adieu")]
    found.append(
        pytest.param(
            [str(CONSOLE_SCRIPT)],
            id="console-script",
            marks=pytest.mark.skipif(not CONSOLE_SCRIPT.exists(), reason="adieu not installed"),
        )
    )
    return found


# -- serve: the banner ----------------------------------------------------------------


@pytest.mark.parametrize("command", _launchers())
def test_the_dashboard_hint_and_the_base_url_hint_work_as_printed(
    tmp_path: Path, command: list[str]
) -> None:
    port = free_port()
    with serving(tmp_path, command, "--port", str(port)) as served:
        text = served.text
        lines = text.splitlines()
        dashboard = next(i for i, line in enumerate(lines) if line.startswith("Dashboard:"))
        assert f"http://127.0.0.1:{port}/admin" in lines[dashboard]
        hint = lines[dashboard + 1].strip()
        assert hint.endswith("apikey create --name dashboard"), text

        made = subprocess.run(
            shlex.split(hint),
            cwd=tmp_path,
            env=_clean_env(tmp_path),
            capture_output=True,
            text=True,
        )
        assert made.returncode == 0, made.stderr
        assert "Creating" not in made.stderr, "the hint uses the server's own ledger"
        key = re.search(r"adieu_\S+", made.stdout)
        assert key, made.stdout
        # The key it printed signs in to this server.
        answer = _get(
            f"http://127.0.0.1:{port}/api/v1/topics",
            headers={"Authorization": f"Bearer {key.group(0)}"},
        )
        assert answer.status_code == 200, answer.text

        # Links from `adieu link` point at this server once ADIEU_BASE_URL says
        # what the banner says it should.
        said = re.search(r"ADIEU_BASE_URL=(http://\S+) ", text)
        assert said and said.group(1) == f"http://127.0.0.1:{port}", text
        env = {**_clean_env(tmp_path), "ADIEU_BASE_URL": said.group(1)}
        minted = subprocess.run(
            [*command, "link", "ann@example.com"], cwd=tmp_path, env=env, capture_output=True
        )
        url = minted.stdout.decode().splitlines()[0]
        assert url.startswith(f"http://127.0.0.1:{port}/u/")
        assert _get(url).status_code == 200

        assert lines[-1] == "Press Ctrl+C to stop."
        assert "Traceback" not in served.rest()
        assert served.proc.returncode == 0


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
def test_serve_on_ipv6_brackets_the_address_in_every_url_and_logs_no_token(
    tmp_path: Path,
) -> None:
    port = free_port()
    args = ("--host", "::1", "--port", str(port), "--access-log")
    with serving(tmp_path, [sys.executable, "-m", "adieu"], *args) as served:
        assert f"Adieu is running at http://[::1]:{port}/" in served.text
        assert f"http://[::1]:{port}/admin" in served.text
        link = served.link()
        assert link.startswith(f"http://[::1]:{port}/u/")
        token = link.rsplit("/", 1)[1]
        assert _get(link + "?email=jane%40example.com").status_code == 200
        assert _get(f"http://[::1]:{port}/api/v1/contacts/jane@example.com").status_code == 404
        logged = served.rest()
    assert "GET /u/…?… 200 " in logged, logged
    assert "GET /api/v1/contacts/… 404 " in logged
    assert token not in logged and "jane" not in logged and "example.com" not in logged


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_serve_on_every_interface_mints_links_a_browser_opens_and_says_how_to_set_the_base_url(
    tmp_path: Path, host: str
) -> None:
    if ":" in host and not _ipv6_loopback():
        pytest.skip("no IPv6 loopback")
    port = free_port()
    command = [sys.executable, "-m", "adieu"]
    with serving(tmp_path, command, "--host", host, "--port", str(port)) as served:
        urls = re.findall(r"http://\S+", served.text)
        assert urls and not any("0.0.0.0" in u or "[::]" in u for u in urls), served.text
        assert "ADIEU_BASE_URL" in served.text
        link = served.link()
        assert _get(link).status_code == 200
        assert "GET" not in served.rest(), "no request log unless asked"


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("127.0.0.1", 8000, "http://127.0.0.1:8000"),
        ("::1", 8002, "http://[::1]:8002"),
        ("0.0.0.0", 8000, "http://127.0.0.1:8000"),
        ("::", 9000, "http://[::1]:9000"),
        ("localhost", 8001, "http://localhost:8001"),
        ("fe80::1", 80, "http://[fe80::1]:80"),
    ],
)
def test_origin_is_a_url_a_browser_opens(host: str, port: int, expected: str) -> None:
    assert origin(host, port) == expected


@given(st.ip_addresses(), st.integers(1, 65535))
def test_every_listening_address_makes_a_valid_origin(address: object, port: int) -> None:
    url = httpx.URL(origin(str(address), port) + "/u/x")
    assert (url.port or 80) == port and url.path == "/u/x"
    assert url.host not in {"0.0.0.0", "::"}


# -- the request log --------------------------------------------------------------------


@given(
    st.emails(),
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=40
    ),
)
def test_the_request_log_never_shows_an_address_or_a_token(address: str, token: str) -> None:
    for path in (f"/u/{token}", f"/api/v1/contacts/{address}", f"/p/{token}/{address}/x"):
        shown = shown_path(path)
        assert token not in shown and address not in shown and "@" not in shown
        assert shown.count("/") == path.count("/")


def test_the_request_log_writes_one_line_per_request() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    out = io.StringIO()
    logged = AccessLog(app, out=out)

    async def go() -> None:
        transport = httpx.ASGITransport(app=logged)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.post("/u/AQABxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx?a=b@c.d")
            await client.get("/healthz")

    asyncio.run(go())
    first, second = out.getvalue().splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ POST /u/…\?… 204 \d+\.\d ms", first)
    assert second.endswith(" ms") and " GET /healthz 204 " in second


# -- the data directory -----------------------------------------------------------------


def _runner_in(path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(path)
    return CliRunner()


def test_a_command_says_where_it_creates_a_new_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = _runner_in(tmp_path, monkeypatch)
    first = runner.invoke(main, ["link", "ann@example.com"])
    assert first.exit_code == 0, first.output
    where = tmp_path.resolve() / "adieu-data"
    (said,) = first.stderr.splitlines()
    assert str(where) in said and "ADIEU_DATA_DIR" in said
    assert first.stdout.startswith("http://127.0.0.1:8000/u/"), "standard output is the link only"
    again = runner.invoke(main, ["status", "ann@example.com"])
    assert again.exit_code == 0 and again.stderr == ""


@pytest.mark.parametrize("command", [["db", "upgrade"], ["lint", "-"]])
def test_commands_that_make_the_data_dir_on_purpose_or_need_none_say_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    runner = _runner_in(tmp_path, monkeypatch)
    result = runner.invoke(main, command, input="Subject: x\n\nhi\n")
    assert "Creating" not in result.stderr


def test_a_data_directory_the_settings_name_is_created_without_a_word(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADIEU_DATA_DIR", str(tmp_path / "named"))
    result = _runner_in(tmp_path, monkeypatch).invoke(main, ["link", "ann@example.com"])
    assert result.exit_code == 0 and result.stderr == ""


# -- commands people try next -----------------------------------------------------------


@pytest.fixture
def run(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ADIEU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ADIEU_DATABASE_URL", database_url)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(main, list(args), input=input, catch_exceptions=False)

    return invoke


def _columns(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)


def test_status_fits_80_columns_and_shows_frequency_pause_and_the_reason_chosen(run) -> None:  # type: ignore[no-untyped-def]
    run("topic", "add", "news", "--name", "News")
    run("unsubscribe", "kim@example.com", "--topic", "news", "--reason", "asked " * 30)
    app = Adieu(Settings())
    try:
        app.ledger.add_reason(
            "kim@example.com",
            "Three a day",
            channel=Channel.LANDING_PAGE,
            choice="too_many",
            scope="news",
        )
        until = datetime.now(UTC) + timedelta(days=30)
        app.ledger.set_preferences(
            "kim@example.com", frequency=Frequency.MONTHLY, paused_until=until
        )
        events = app.ledger.history("kim@example.com")
    finally:
        app.close()
    result = run("status", "kim@example.com")
    assert result.exit_code == 0
    text = result.output
    wide = [line for line in text.splitlines() if _columns(line) > 80]
    assert not wide, text
    assert "Frequency: at most one a month" in text
    assert f"Pause: until {until:%Y-%m-%d %H:%M:%S} UTC" in text
    assert "too many emails" in text and "Three a day" in text
    for event in events:
        assert f"{event.at.astimezone(UTC):%Y-%m-%d %H:%M:%S}" in text
    assert ("asked " * 30).split()[0] in text and text.count("asked") == 30


def test_inbound_says_kept_for_review_once_and_says_what_an_auto_reply_is(run) -> None:  # type: ignore[no-untyped-def]
    unknown = run("inbound", "-", input="From: a@b.example\nSubject: hello\n\nJust saying hi.\n")
    assert unknown.exit_code == 0
    assert unknown.output.lower().count("kept for review") == 1, unknown.output
    reply = run(
        "inbound",
        "-",
        input="From: a@b.example\nSubject: Out of office\nAuto-Submitted: auto-replied\n\n"
        "Back on Monday.\n",
    )
    assert reply.exit_code == 0
    assert "automatic reply" in reply.output and "nothing to record" in reply.output


@pytest.mark.parametrize("tag", ["xx-YY", "zh", "tlh"])
def test_link_refuses_a_language_the_pages_are_not_written_in(run, tag: str) -> None:  # type: ignore[no-untyped-def]
    result = run("link", "ann@example.com", "--locale", tag)
    assert result.exit_code == 2
    assert f"not written in {tag!r}" in result.stderr and "pt-BR" in result.stderr
    assert "/u/" not in result.stdout


@pytest.mark.parametrize("tag", ["sv", "en-GB", "pt-BR", "pt-PT", "pt", "de-AT", "fr-CA"])
def test_link_takes_a_language_or_a_region_of_one(run, tag: str) -> None:  # type: ignore[no-untyped-def]
    result = run("link", "ann@example.com", "--locale", tag)
    assert result.exit_code == 0 and "/u/" in result.stdout


def test_lint_speaks_of_what_it_checks_not_of_internal_rule_ids(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    helped = run("lint", "--help").output
    assert "unsubscribe link" in helped and "List-Unsubscribe" in helped
    assert not re.search(r"\bR\d+\b", helped), helped
    message = tmp_path / "bare.eml"
    message.write_text("From: a@b.example\nSubject: news\n\nNo way out here.\n")
    findings = run("lint", str(message))
    assert findings.exit_code == 1
    assert "unsubscribe link" in findings.output
    assert not re.search(r"\[R\d+\]", findings.output), findings.output
