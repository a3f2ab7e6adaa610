"""Property: no sequence of operations through the doors — the landing page,
one-click, the preference center, the API with each key scope, the CLI and
inbound mail — makes an erased address sendable or lifts a complaint, unless
an operator lifts the complaint on purpose (docs/REQUIREMENTS.md, "Who may
change consent")."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adieu.cli import main
from adieu.feedback.intake import Intake
from adieu.ledger.vocabulary import Scope
from adieu.service import Adieu
from support import Client, adieu_env

_serial = itertools.count()

#: Every way a door can try to change one person's consent. ``lift`` is the
#: only operator act that may lift a complaint, and nothing lifts an erasure.
OPERATIONS = (
    "one_click",
    "page_unsubscribe",
    "page_resubscribe",
    "page_resubscribe_topic",
    "preferences_topics_on",
    "preferences_unpause",
    "api_resubscribe_read",
    "api_resubscribe_send",
    "api_resubscribe_admin",
    "api_link_then_page_resubscribe_read",
    "api_link_then_page_resubscribe_send",
    "api_unsubscribe_admin",
    "api_import_admin",
    "cli_resubscribe",
    "cli_resubscribe_topic",
    "inbound_forged_complaint",
    "inbound_forged_bounce",
    "inbound_mailto",
    "complaint",
    "erase",
    "lift",
)


class Doors:
    def __init__(self, adieu: Adieu) -> None:
        self.adieu = adieu
        adieu.ledger.add_topic("news", "News")
        adieu.ledger.add_topic("events", "Events", default_opt_in=False)
        self.keys = {
            scope: adieu.api_keys.create(f"k-{scope.value}", scope=scope)[1] for scope in Scope
        }
        self.api = {
            scope: Client(adieu, headers={"Authorization": f"Bearer {secret}"})
            for scope, secret in self.keys.items()
        }
        self.page = Client(adieu)
        self.env = adieu_env(adieu.settings)
        self.intake = Intake(adieu)

    def close(self) -> None:
        for client in (*self.api.values(), self.page):
            client.close()

    def csrf(self, token: str) -> str:
        page = self.page.request("GET", f"/p/{token}").text
        match = re.search(r'name="csrf" value="([^"]+)"', page)
        assert match is not None
        return match.group(1)

    def key(self, address: str) -> str:
        r = self.api[Scope.READ].request(
            "POST", "/api/v1/contacts/lookup", json={"address": address}
        )
        return str(r.json()["contact"])

    def cli(self, *args: str) -> None:
        result = CliRunner().invoke(main, list(args), env=self.env, catch_exceptions=False)
        assert "Traceback" not in result.output

    def page_resubscribe(self, token: str, scope: str = "all") -> None:
        r = self.page.request(
            "POST",
            f"/u/{token}/resubscribe",
            data={"csrf": self.csrf(token), "scope": scope},
        )
        assert r.status_code in (200, 403), r.text

    def mail(self, address: str, kind: str) -> None:
        """A report from a stranger naming ``address``: no token, no send."""
        if kind == "complaint":
            report = (
                "Content-Type: message/feedback-report\r\n\r\n"
                "Feedback-Type: abuse\r\nUser-Agent: x/1\r\nVersion: 1\r\n"
                f"Original-Rcpt-To: <{address}>\r\n"
            )
            report_type = "feedback-report"
        else:
            report = (
                "Content-Type: message/delivery-status\r\n\r\n"
                "Reporting-MTA: dns; mx.example.org\r\n\r\n"
                f"Final-Recipient: rfc822; {address}\r\nAction: failed\r\n"
                "Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
            )
            report_type = "delivery-status"
        raw = (
            "From: reports@forger.example\r\nTo: inbound@mail.example.net\r\n"
            "Subject: report\r\nMIME-Version: 1.0\r\n"
            f'Content-Type: multipart/report; report-type={report_type}; boundary="b"\r\n\r\n'
            "--b\r\nContent-Type: text/plain\r\n\r\nA report.\r\n"
            f"--b\r\n{report}--b--\r\n"
        )
        self.intake.process(raw.encode())

    def apply(self, address: str, operation: str) -> None:
        adieu = self.adieu
        link = adieu.link(address, topic="news")
        token = link.token
        if operation == "one_click":
            self.page.request("POST", f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
        elif operation == "page_unsubscribe":
            self.page.request("POST", f"/u/{token}", data={"adieu-page": "1", "scope": "all"})
        elif operation == "page_resubscribe":
            self.page_resubscribe(token)
        elif operation == "page_resubscribe_topic":
            self.page_resubscribe(token, "topic")
        elif operation == "preferences_topics_on":
            self.page.request(
                "POST",
                f"/p/{token}",
                data={"csrf": self.csrf(token), "topic-news": "1", "topic-events": "1"},
            )
        elif operation == "preferences_unpause":
            self.page.request(
                "POST",
                f"/p/{token}",
                data={"csrf": self.csrf(token), "pause": "none", "frequency": "every"},
            )
        elif operation.startswith("api_resubscribe_"):
            scope = Scope(operation.rsplit("_", 1)[1])
            r = self.api[scope].request(
                "POST", f"/api/v1/contacts/{self.key(address)}/resubscribe", json={}
            )
            assert r.status_code in (200, 403, 404, 409), r.text
            assert scope == Scope.ADMIN or r.status_code == 403
        elif operation.startswith("api_link_then_page_resubscribe_"):
            scope = Scope(operation.rsplit("_", 1)[1])
            r = self.api[scope].request(
                "POST", "/api/v1/links", json={"recipients": [{"address": address}]}
            )
            assert r.status_code in (200, 403), r.text
            assert (r.status_code == 200) == (scope != Scope.READ)
            if r.status_code == 200:
                self.page_resubscribe(r.json()["links"][0]["token"])
        elif operation == "api_unsubscribe_admin":
            self.api[Scope.ADMIN].request(
                "POST", f"/api/v1/contacts/{self.key(address)}/unsubscribe", json={}
            )
        elif operation == "api_import_admin":
            r = self.api[Scope.ADMIN].request(
                "POST",
                "/api/v1/suppressions/import",
                content=f"email,reason\n{address},unsubscribe\n".encode(),
                headers={"Content-Type": "text/csv"},
            )
            assert r.status_code < 500, r.text
        elif operation == "cli_resubscribe":
            self.cli("resubscribe", address)
        elif operation == "cli_resubscribe_topic":
            self.cli("resubscribe", address, "--topic", "events")
        elif operation == "inbound_forged_complaint":
            self.mail(address, "complaint")
        elif operation == "inbound_forged_bounce":
            self.mail(address, "bounce")
        elif operation == "inbound_mailto":
            mailto = EmailMessage()
            mailto["From"] = address
            mailto["To"] = f"unsubscribe+{link.token}@unsub.example.net"
            mailto["Subject"] = "unsubscribe"
            mailto.set_content("")
            self.intake.process(mailto.as_bytes(), [f"unsubscribe+{link.token}@unsub.example.net"])
        elif operation == "complaint":
            adieu.ledger.record_complaint(address)
        elif operation == "erase":
            self.cli("erase", address)
        elif operation == "lift":
            self.cli("resubscribe", address, "--lift", "complaint", "--note", "fresh opt-in")
        else:  # pragma: no cover - the table above is the list
            raise AssertionError(operation)


@pytest.fixture
def doors(adieu: Adieu) -> Iterator[Doors]:
    d = Doors(adieu)
    yield d
    d.close()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=st.lists(st.sampled_from(OPERATIONS), min_size=1, max_size=8))
def test_erasure_and_complaints_survive_every_door(doors: Doors, operations: list[str]) -> None:
    adieu = doors.adieu
    address = f"p{next(_serial)}@example.com"
    erased = complained = False
    for operation in operations:
        doors.apply(address, operation)
        if operation == "erase":
            erased = True
        elif operation == "complaint":
            complained = True
        elif operation == "lift" and not erased:
            complained = False
        status = adieu.ledger.status(address)
        held = {s.reason.value for s in status.state.suppressions if s.scope == "all"}
        if erased:
            assert status.erased_at is not None and status.address is None, operations
            for topic in (None, "news", "events"):
                assert not adieu.policy.may_send(address, topic), (operations, topic)
        if complained:
            assert "complaint" in held, operations
            assert not adieu.policy.may_send(address), operations
