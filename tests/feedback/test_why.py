"""Why a bounce was recorded, where the operator looks: the event's details,
``adieu status`` (text and JSON), the API's contact document and the
dashboard's latest events. No clear address in any of it but the contact's
own."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from adieu.cli import main
from adieu.feedback.intake import Intake
from adieu.feedback.why import decisive, summary
from adieu.service import Adieu
from conftest import MakeSettings
from support import Client, adieu_env

DSN = (
    b"From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n"
    b"To: bounces@news.example.com\r\nSubject: Undelivered Mail Returned to Sender\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
    b"--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n"
    b"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n"
    b"\r\nFinal-Recipient: rfc822; kate.lee@example.org\r\nAction: failed\r\nStatus: 5.0.0\r\n"
    b"Diagnostic-Code: X-Notes; User kate.lee (kate.lee@example.org) not listed in\r\n"
    b"    Domino Directory\r\n"
    b"\r\n--B--\r\n"
)


@pytest.fixture
def app(make_settings: MakeSettings) -> Iterator[Adieu]:
    adieu = Adieu(make_settings(inbound_trust="any"))
    yield adieu
    adieu.close()


def test_the_summary_of_a_bounce_and_of_a_complaint() -> None:
    bounce = {
        "status": "5.1.1",
        "phrase": "user unknown",
        "source": "postfix",
        "meaning": "dead",
        "recipient_from": "final-recipient",
    }
    assert summary(bounce) == "5.1.1 \u201cuser unknown\u201d (postfix); named by final-recipient"
    assert decisive(bounce) == "\u201cuser unknown\u201d"
    coded = {"status": "5.2.2", "meaning": "full", "basis": "status"}
    assert decisive(coded) == "5.2.2 (full)" and summary(coded) == "5.2.2 (full)"
    complaint = {"feedback-type": "abuse", "recipient_from": "original-rcpt-to"}
    assert summary(complaint) == "abuse; named by original-rcpt-to"
    assert summary(None) == "" and summary({"by": "cli"}) == ""


def test_the_event_adieu_status_and_the_api_say_why(app: Adieu) -> None:
    result = Intake(app).process(DSN)
    assert result.applied == [("hard_bounce", "k•••@example.org")]
    (event,) = app.ledger.history("kate.lee@example.org")
    details = event.details or {}
    assert details["phrase"] == "not listed in domino directory"
    assert (details["source"], details["recipient_from"]) == ("domino", "final-recipient")
    assert "kate.lee@example.org" not in details["diagnostic"], "the diagnostic is masked"

    env = adieu_env(app.settings)
    text = CliRunner().invoke(main, ["status", "kate.lee@example.org"], env=env)
    assert text.exit_code == 0, text.output
    assert "\u201cnot listed in domino directory\u201d (domino)" in text.output
    assert "named by final-recipient" in text.output
    data = CliRunner().invoke(main, ["status", "kate.lee@example.org", "--json"], env=env)
    (shown,) = json.loads(data.output)["events"]
    assert shown["why"].startswith("5.0.0 \u201cnot listed in domino directory\u201d")
    assert shown["details"]["basis"] == "phrase"

    _, key = app.api_keys.create("ops")
    api = Client(app, headers={"Authorization": f"Bearer {key}"})
    try:
        r = api.request("POST", "/api/v1/contacts/lookup", json={"address": "kate.lee@example.org"})
        assert r.status_code == 200, r.text
        (history,) = r.json()["history"]
        assert history["why"] == shown["why"]
        assert history["details"]["phrase"] == "not listed in domino directory"
    finally:
        api.close()


def test_the_dashboard_shows_the_decisive_phrase(app: Adieu) -> None:
    Intake(app).process(DSN)
    _, key = app.api_keys.create("ops")
    client = Client(app)
    try:
        r = client.request("POST", "/admin/login", data={"key": key})
        assert r.status_code == 303
        page = client.request("GET", "/admin")
        assert page.status_code == 200
        events = page.text.split('<table id="events">', 1)[1].split("</table>", 1)[0]
        rows = [r for r in re.findall(r"<tr>.*?</tr>", events, re.S) if "hard" in r]
        assert len(rows) == 1, events
        assert "\u201cnot listed in domino directory\u201d" in rows[0]
        assert "kate.lee@example.org" not in events
    finally:
        client.close()
