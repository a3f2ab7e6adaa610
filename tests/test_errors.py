"""One error map per door: each error class, fed to each door, comes out as that
door's clear answer (HTTP status and shape, SMTP reply, CLI exit status)."""

from __future__ import annotations

import asyncio
import smtplib
import sqlite3
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from click.testing import CliRunner
from fastapi import Request, Response
from sqlalchemy.exc import OperationalError

from adieu import errors
from adieu.cli import main
from adieu.errors import AdieuError, InvalidSettings, Unavailable
from adieu.feedback.intake import Intake
from adieu.secret import Secret
from adieu.service import Adieu
from adieu.smtp.inbound import InboundHandler
from adieu.smtp.relay import RelayConfig, RelayHandler
from adieu.smtp.replies import reply_for
from adieu.web.errors import ApiError, failure_of
from support import Client, free_port


def _all_errors() -> list[type[AdieuError]]:
    found: list[type[AdieuError]] = []
    todo: list[type[AdieuError]] = [AdieuError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(found, key=lambda c: c.__name__)


def _instance(cls: type[AdieuError]) -> AdieuError:
    if cls is ApiError:
        return ApiError(429, "too_many", "Slow down.")
    if cls is InvalidSettings:
        return InvalidSettings(["ADIEU_X: is wrong."])
    try:
        return cls("x")
    except TypeError:
        return cls()


ERRORS = [_instance(cls) for cls in _all_errors()]
DATABASE_DOWN = OperationalError("SELECT 1", {}, sqlite3.OperationalError("database is locked"))

#: The public codes are a contract: they do not follow class names.
PUBLIC_CODES = {
    "AdieuError": "invalid_input",
    "Erased": "erased",
    "InvalidAddress": "invalid_address",
    "InvalidInput": "invalid_input",
    "InvalidSettings": "invalid_settings",
    "InvalidToken": "invalid_token",
    "KeyRingError": "key_ring_error",
    "NotAllowed": "not_allowed",
    "NotFound": "not_found",
    "TopicExists": "topic_exists",
    "TopicRetired": "topic_retired",
    "Unavailable": "unavailable",
    "UnknownTopic": "unknown_topic",
    "WorkerFailed": "worker_failed",
}


def test_every_error_class_has_a_stable_public_code() -> None:
    codes = {type(e).__name__: e.code for e in ERRORS if not isinstance(e, ApiError)}
    assert codes == PUBLIC_CODES


# -- HTTP -----------------------------------------------------------------------


@pytest.fixture
def raising(sqlite_adieu: Adieu) -> Iterator[tuple[Client, dict[str, BaseException]]]:
    """The app, with one extra route under each kind of path that raises what is asked."""
    table: dict[str, BaseException] = {}
    client = Client(sqlite_adieu)
    # As a real server does: answer, and let the server log what was unexpected.
    client.client._transport = httpx.ASGITransport(app=client.app, raise_app_exceptions=False)

    async def boom(request: Request) -> Response:
        raise table[request.path_params["name"]]

    for prefix in ("/api/v1/test-raise", "/admin/test-raise", "/test-raise"):
        client.app.router.add_route(f"{prefix}/{{name}}", boom, methods=["GET"])
    yield client, table
    client.close()


@pytest.mark.parametrize("error", [*ERRORS, DATABASE_DOWN, RuntimeError("bug")], ids=repr)
def test_every_error_leaves_the_web_door_in_the_shape_its_path_asks_for(
    raising: tuple[Client, dict[str, BaseException]], error: BaseException
) -> None:
    client, table = raising
    table["it"] = error
    expected = failure_of(error)
    api = client.request("GET", "/api/v1/test-raise/it")
    assert api.status_code == expected.status
    assert api.json() == {
        "error": {"status": expected.status, "code": expected.code, "message": expected.message}
    }
    for path in ("/admin/test-raise/it", "/test-raise/it"):
        page = client.request("GET", path)
        assert page.status_code == expected.status, path
        assert page.headers["content-type"].startswith("text/html"), path
        assert "Traceback" not in page.text and "database is locked" not in page.text


def test_storage_trouble_is_a_503_to_retry_and_a_bug_a_500() -> None:
    down = failure_of(DATABASE_DOWN)
    assert (down.status, down.code, down.headers.get("Retry-After")) == (503, "unavailable", "5")
    assert failure_of(Unavailable()).status == 503
    assert (failure_of(RuntimeError("x")).status, failure_of(RuntimeError("x")).code) == (
        500,
        "internal",
    )
    assert failure_of(errors.UnknownTopic("x")).status == 404


def test_unknown_paths_get_a_page_on_the_public_side_and_json_on_the_api(
    sqlite_adieu: Adieu,
) -> None:
    client = Client(sqlite_adieu)
    try:
        page = client.request("GET", "/no/such/page")
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert "Page not found" in page.text and "detail" not in page.text
        wrong = client.request("PUT", "/u/AQAB")
        assert wrong.status_code == 405 and wrong.headers["content-type"].startswith("text/html")
        api = client.request("GET", "/api/v1/nothing-here")
        assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"
    finally:
        client.close()


def test_a_too_large_dashboard_form_gets_the_dashboard_s_page(sqlite_adieu: Adieu) -> None:
    client = Client(sqlite_adieu)
    try:
        r = client.request(
            "POST",
            "/admin/login",
            content=b"key=" + b"x" * 20_000,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 413
        assert r.headers["content-type"].startswith("text/html")
        assert "That form is too large." in r.text
    finally:
        client.close()


# -- SMTP -------------------------------------------------------------------------


@pytest.mark.parametrize("error", [*ERRORS, DATABASE_DOWN, RuntimeError("bug")], ids=repr)
def test_every_error_is_an_smtp_reply_never_a_500(error: BaseException) -> None:
    reply = reply_for(error)
    code = int(reply[:3])
    assert not reply.startswith("500"), reply
    assert "Traceback" not in reply and "\n" not in reply
    if isinstance(error, AdieuError) and not errors.storage_trouble(error):
        assert (code, reply.split()[1]) == error.smtp_reply
    else:  # the ledger or the code failed: the client keeps the message and retries
        assert reply.startswith("451 4.3.0"), reply


def _message(**headers: str) -> bytes:
    message = EmailMessage()
    message["From"] = "news@example.com"
    message["To"] = "ann@example.org"
    message["Subject"] = "Hello"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("Hello.\n")
    return message.as_bytes().replace(b"\n", b"\r\n")


def _envelope(*recipients: str, content: bytes = b"") -> SimpleNamespace:
    return SimpleNamespace(
        mail_from="news@example.com",
        rcpt_tos=list(recipients),
        rcpt_options=[],
        original_content=content,
    )


SESSION = SimpleNamespace(authenticated=True, peer=("127.0.0.1", 1))


def test_the_relay_refuses_an_unknown_topic_clearly(adieu: Adieu) -> None:
    handler = RelayHandler(adieu, RelayConfig(upstream=("127.0.0.1", 9)))
    try:
        content = _message(X_Adieu_Topic="no-such-topic")
        reply = asyncio.run(
            handler.handle_DATA(None, SESSION, _envelope("ann@example.org", content=content))  # type: ignore[arg-type]
        )
        assert reply.startswith("554 5.6.0 There is no topic called"), reply
    finally:
        handler.close()


def test_a_database_error_at_rcpt_is_451_on_both_smtp_doors(
    adieu: Adieu, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*args: object, **kwargs: object) -> None:
        raise DATABASE_DOWN

    handler = RelayHandler(adieu, RelayConfig(upstream=("127.0.0.1", 9)))
    try:
        monkeypatch.setattr(adieu.policy, "may_send", down)
        with pytest.raises(OperationalError) as raised:
            asyncio.run(handler.handle_RCPT(None, SESSION, _envelope(), "ann@example.org", []))  # type: ignore[arg-type]
        # aiosmtpd hands an exception in a command to the handler's hook.
        reply = asyncio.run(handler.handle_exception(raised.value))
        assert reply.startswith("451 4.3.0"), reply
    finally:
        handler.close()
    intake = Intake(adieu)
    monkeypatch.setattr(intake, "process", down)
    inbound = InboundHandler(intake)
    reply = asyncio.run(
        inbound.handle_DATA(None, SESSION, _envelope("x@example.org", content=_message()))
    )
    assert reply.startswith("451 4.3.0"), reply


def test_the_relay_over_smtp_answers_an_unknown_topic_without_a_traceback(
    adieu: Adieu,
) -> None:
    from aiosmtpd.controller import Controller

    from adieu.smtp.relay import make_smtp, parse_networks

    config = RelayConfig(upstream=("127.0.0.1", 9), allow=parse_networks(["127.0.0.1/32"]))
    handler = RelayHandler(adieu, config)

    class Relay(Controller):
        def factory(self):  # type: ignore[no-untyped-def]
            return make_smtp(handler, tls=None, size_limit=1 << 20)

    port = free_port()
    controller = Relay(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.ehlo()
            client.mail("news@example.com")
            client.rcpt("ann@example.org")
            code, text = client.data(_message(X_Adieu_Topic="nope"))
        assert code == 554 and b"There is no topic called" in text, text
        assert b"Error" not in text
    finally:
        controller.stop()
        handler.close()


# -- secrets and the CLI ------------------------------------------------------------


def test_the_relay_configuration_never_prints_its_passwords() -> None:
    config = RelayConfig(
        upstream=("127.0.0.1", 25),
        user="app",
        password=Secret("relay-pass-1"),
        upstream_user="esp",
        upstream_password=Secret("esp-pass-2"),
    )
    for text in (repr(config), str(config), repr(config.upstream_config)):
        assert "relay-pass-1" not in text and "esp-pass-2" not in text
    assert config.password is not None and config.password.reveal() == "relay-pass-1"


def test_a_bad_setting_is_one_sentence_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADIEU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ADIEU_HONOUR_HOURS", "999")
    monkeypatch.setenv("ADIEU_ADDRESS_DISPLAY", "shout")
    result = CliRunner().invoke(main, ["status", "a@example.com"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 2, result.output
    assert any("ADIEU_HONOUR_HOURS" in line for line in lines)
    assert any("ADIEU_ADDRESS_DISPLAY" in line for line in lines)
    assert "Traceback" not in result.output and "pydantic" not in result.output


# -- CLI -----------------------------------------------------------------------------


@pytest.mark.parametrize("error", [*ERRORS, DATABASE_DOWN], ids=repr)
def test_every_error_leaves_the_cli_as_a_sentence_and_its_exit_status(
    error: BaseException, monkeypatch: pytest.MonkeyPatch
) -> None:
    import click

    def fail() -> None:
        raise error

    monkeypatch.setitem(main.commands, "test-raise", click.Command("test-raise", callback=fail))
    result = CliRunner().invoke(main, ["test-raise"])
    assert "Traceback" not in result.output
    expected = error.exit_code if isinstance(error, AdieuError) else Unavailable.exit_code
    assert result.exit_code == expected
    lines = result.output.strip().splitlines()
    assert lines and all(line.startswith("Error: ") for line in lines), result.output


def test_a_bug_in_a_command_is_not_dressed_up_as_an_error_of_the_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import click

    def fail() -> None:
        raise RuntimeError("bug")

    monkeypatch.setitem(main.commands, "test-raise", click.Command("test-raise", callback=fail))
    result = CliRunner().invoke(main, ["test-raise"])
    assert result.exit_code == 1 and isinstance(result.exception, RuntimeError)
