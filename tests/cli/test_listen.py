"""The serving commands check where they listen before anything starts: a
port outside 1–65535 or a host that is not one is one sentence and exit 2,
and a server says it is running only once its port is known to be free."""

from __future__ import annotations

import socket
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st

from adieu.cli import main
from adieu.errors import InvalidInput
from adieu.settings import Settings
from adieu.smtp.server import parse_hostport
from support import adieu_env


@pytest.fixture
def run(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ADIEU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ADIEU_DATABASE_URL", database_url)

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    return invoke


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _one_sentence_exit_2(result: Result, words: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert words in result.stderr, result.output
    assert result.stdout == "", "nothing announced"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("serve", "--port", "99999"), "99999 is not in the range 1<=x<=65535"),
        (("serve", "--port", "0"), "0 is not in the range"),
        (("serve", "--host", "not a host"), "'not a host' is not an IP address or a host name"),
        (("serve", "--host", "bad\x01host"), "is not an IP address or a host name"),
        (
            ("relay", "--listen", ":70000", "--upstream", "127.0.0.1:25"),
            "the port must be a number from 1 to 65535",
        ),
        (
            ("relay", "--listen", "127.0.0.1:70000", "--upstream", "127.0.0.1:25"),
            "the port must be a number from 1 to 65535",
        ),
        (("relay", "--upstream", "mx.example.com:smtp"), "the port must be a number"),
        (
            ("relay", "--upstream", "127.0.0.1:25", "--metrics", "127.0.0.1:123456"),
            "the port must be a number",
        ),
        (("inbound", "--listen", "nonsense"), "Cannot listen on nonsense:2526"),
        (("inbound", "--listen", "127.0.0.1:"), "the port must be a number"),
        (("inbound", "--listen", "[::1"), "is not HOST:PORT"),
    ],
)
def test_a_bad_place_to_listen_is_one_sentence_and_exit_2(  # type: ignore[no-untyped-def]
    run, args: tuple[str, ...], words: str
) -> None:
    _one_sentence_exit_2(run(*args), words)


@pytest.mark.parametrize(
    "args",
    [
        ("serve", "--port", "{port}"),
        ("serve", "--port", "{port}", "--workers", "2"),
        ("relay", "--listen", "127.0.0.1:{port}", "--upstream", "127.0.0.1:25"),
        ("inbound", "--listen", "127.0.0.1:{port}"),
    ],
)
def test_a_busy_port_is_said_before_anything_is_announced(  # type: ignore[no-untyped-def]
    run, busy_port: int, args: tuple[str, ...]
) -> None:
    result = run(*(a.format(port=busy_port) for a in args))
    _one_sentence_exit_2(result, f"Cannot listen on 127.0.0.1:{busy_port}")


def test_a_busy_metrics_port_is_said_before_the_relay_announces_itself(  # type: ignore[no-untyped-def]
    run, busy_port: int
) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    result = run(
        "relay",
        "--listen",
        f"127.0.0.1:{port}",
        "--upstream",
        "127.0.0.1:25",
        "--metrics",
        f"127.0.0.1:{busy_port}",
    )
    _one_sentence_exit_2(result, f"Cannot listen on 127.0.0.1:{busy_port}")


def test_serve_says_it_is_running_only_once_it_listens(settings: Settings) -> None:
    """The banner is printed with the port already open: a client that
    connects the moment it reads the banner is answered."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "adieu", "serve", "--port", str(port)],
        env=adieu_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().decode()
        assert first.startswith(f"Adieu is running at http://127.0.0.1:{port}/"), first
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:2525", ("127.0.0.1", 2525)),
        ("0.0.0.0:1", ("0.0.0.0", 1)),
        ("[::1]:65535", ("::1", 65535)),
        ("[::]", ("::", 25)),
        ("::1", ("::1", 25)),
        ("mx.example.com", ("mx.example.com", 25)),
        (" mx.example.com:587 ", ("mx.example.com", 587)),
    ],
)
def test_host_and_port(value: str, expected: tuple[str, int]) -> None:
    assert parse_hostport(value, 25) == expected


@pytest.mark.parametrize(
    "value",
    [
        ":25",
        "host:0",
        "host:65536",
        "host:-1",
        "host:２５",
        "a b:25",
        "[::1]x",
        "ex ample",
        "h\x00",
    ],
)
def test_what_is_not_host_and_port(value: str) -> None:
    with pytest.raises(InvalidInput):
        parse_hostport(value, 25)


@given(
    st.one_of(
        st.text(max_size=40),
        st.builds(
            "{}:{}".format,
            st.text(st.sampled_from("ab.-_:[]1 \x00é"), max_size=12),
            st.text(st.sampled_from("0123456789-+ ٢"), max_size=7),
        ),
    )
)
def test_any_text_is_a_host_and_port_or_one_sentence(value: str) -> None:
    try:
        host, port = parse_hostport(value, 25)
    except InvalidInput as refused:
        assert "\n" not in str(refused).strip("\n ")
        return
    assert 1 <= port <= 65535
    assert host and not any(c.isspace() or unicodedata.category(c) == "Cc" for c in host)


@pytest.mark.parametrize(
    ("args", "banner"),
    [
        (("relay", "--listen", "127.0.0.1:{port}", "--upstream", "127.0.0.1:25"), "Relaying from"),
        (
            (
                "relay",
                "--listen",
                "127.0.0.1:{port}",
                "--upstream",
                "127.0.0.1:25",
                "--workers",
                "2",
            ),
            "Relaying from",
        ),
        (("inbound", "--listen", "127.0.0.1:{port}"), "Receiving reports on"),
    ],
)
def test_mail_doors_say_they_are_running_only_once_they_listen(
    settings: Settings, args: tuple[str, ...], banner: str
) -> None:
    """The relay and the inbound listener print their banner with the port
    already open: a client that connects on reading it is answered."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "adieu", *(a.format(port=port) for a in args)],
        env=adieu_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().decode()
        assert first.startswith(f"{banner} 127.0.0.1:{port}"), first
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.settimeout(30)
            assert client.recv(4).startswith(b"220"), "greeted as an SMTP server"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        if proc.stdout is not None:
            proc.stdout.close()
