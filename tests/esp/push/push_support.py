"""A local HTTP server standing in for SES, SendGrid, Mailgun and Postmark's
suppression APIs: the documented paths, request bodies, answers and paging,
each provider's authentication checked (SES: Signature Version 4, verified
here from AWS's documentation with the test's own key), and a script of
trouble (down, slow, rate-limiting) taken one request at a time."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import pytest
from click.testing import CliRunner, Result

from adieu.cli import main
from adieu.esp.push.deliver import PushDeliverer
from adieu.esp.push.providers import providers
from adieu.esp.push.queue import PushQueue

SENDGRID_KEY = "SG." + secrets.token_urlsafe(24)
MAILGUN_KEY = "key-" + secrets.token_hex(16)
POSTMARK_TOKEN = secrets.token_hex(16)
AWS_KEY = "AKIA" + secrets.token_hex(8).upper()
AWS_SECRET = secrets.token_urlsafe(30)
REGION = "eu-west-1"
DOMAIN = "mg.example.com"
STREAM = "broadcast"
GROUP = 4242
TOPIC = "news"


def verify_sigv4(
    method: str, raw_path: str, headers: dict[str, str], body: bytes, secret: str, region: str
) -> str | None:
    """Check a request's Signature Version 4 the way AWS documents it; None
    when it holds, else what is wrong."""
    auth = headers.get("authorization", "")
    prefix = "AWS4-HMAC-SHA256 "
    if not auth.startswith(prefix):
        return "no AWS4-HMAC-SHA256 Authorization"
    fields = dict(p.strip().split("=", 1) for p in auth[len(prefix) :].split(","))
    if set(fields) != {"Credential", "SignedHeaders", "Signature"}:
        return "malformed Authorization"
    key, date, cred_region, service, terminal = fields["Credential"].split("/")
    if key != AWS_KEY or cred_region != region or service != "ses" or terminal != "aws4_request":
        return "wrong credential scope"
    stamp = headers.get("x-amz-date", "")
    if not stamp.startswith(date) or len(stamp) != 16:
        return "X-Amz-Date does not match the scope"
    payload = hashlib.sha256(body).hexdigest()
    if headers.get("x-amz-content-sha256") != payload:
        return "the body's hash does not match"
    signed = fields["SignedHeaders"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        return "host and x-amz-date must be signed"
    path, _, query = raw_path.partition("?")
    pairs = sorted(
        (quote(unquote(n), safe="-_.~"), quote(unquote(v), safe="-_.~"))
        for n, _, v in (p.partition("=") for p in query.split("&") if p)
    )
    canonical = "\n".join(
        [
            method,
            quote(path, safe="/-_.~"),
            "&".join(f"{n}={v}" for n, v in pairs),
            "".join(f"{h}:{' '.join(headers[h].split())}\n" for h in signed),
            ";".join(signed),
            payload,
        ]
    )
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            stamp,
            f"{date}/{region}/ses/aws4_request",
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    k = ("AWS4" + secret).encode()
    for part in (date, region, "ses", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    return None if hmac.compare_digest(expected, fields["Signature"]) else "bad signature"


@dataclass
class Lists:
    ses: dict[str, str] = field(default_factory=dict)  # address → BOUNCE/COMPLAINT
    sg_global: set[str] = field(default_factory=set)
    sg_bounces: set[str] = field(default_factory=set)
    sg_spam: set[str] = field(default_factory=set)
    sg_groups: dict[int, set[str]] = field(default_factory=dict)
    mg_unsubscribes: dict[str, set[str]] = field(default_factory=dict)  # address → tags
    mg_bounces: set[str] = field(default_factory=set)
    mg_complaints: set[str] = field(default_factory=set)
    pm: dict[str, str] = field(default_factory=dict)  # address → SuppressionReason


class StandInServer:
    """A local HTTP server standing in for providers' APIs: it reads each
    request whole, takes the next entry of its script of trouble ("down",
    "slow", "limit", "refuse"; GETs are never troubled), and otherwise hands
    the request to ``route`` under a lock. Subclasses give ``auth`` and
    ``route``; every change they make goes through ``_log``."""

    def __init__(self, page_size: int = 3) -> None:
        #: Every change made, in order: (provider, "add"/"remove", list, address).
        self.applied: list[tuple[str, str, str, str]] = []
        #: Trouble to come, one entry per request: "down", "slow", "limit", "refuse".
        self.script: list[str] = []
        self.slow_s = 1.0
        self.requests = 0
        self.bad_auth: list[str] = []
        self.page_size = page_size
        self.lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, answer, extra = stand_in.handle(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
                data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                if status != 204:
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if status != 204:
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(
        self, method: str, raw: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        with self.lock:
            self.requests += 1
            trouble = self.script.pop(0) if self.script and method != "GET" else "ok"
        if trouble == "slow":
            time.sleep(self.slow_s)  # longer than the client waits
            return 503, {"message": "slow"}, {}
        if trouble == "down":
            return 503, {"message": "Service Unavailable"}, {}
        if trouble == "limit":
            return 429, {"message": "Too Many Requests"}, {"Retry-After": "1"}
        if trouble == "refuse":
            return 400, {"message": "bad request"}, {}
        provider, _, rest = raw.lstrip("/").partition("/")
        problem = self.auth(provider, method, raw, headers, body)
        if problem:
            self.bad_auth.append(f"{provider}: {problem}")
            return 401, {"message": "unauthorized"}, {}
        with self.lock:
            return self.route(provider, method, "/" + rest, body)

    def auth(
        self, provider: str, method: str, raw: str, headers: dict[str, str], body: bytes
    ) -> str | None:
        """None when the request's credentials hold, else what is wrong."""
        raise NotImplementedError

    def route(
        self, provider: str, method: str, path: str, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        """(status, JSON-able answer or bytes, extra headers) for one request
        under ``/{provider}``, the path below it."""
        raise NotImplementedError

    def _log(self, provider: str, action: str, name: str, address: str) -> None:
        self.applied.append((provider, action, name, address))


class StandIn(StandInServer):
    """SES, SendGrid, Mailgun and Postmark on one local port (``/ses``,
    ``/sendgrid``, ``/mailgun``, ``/postmark`` as their API bases)."""

    def __init__(self, page_size: int = 3) -> None:
        self.lists = Lists()
        super().__init__(page_size)

    def settings(self) -> dict[str, Any]:
        return {
            "ses_region": REGION,
            "ses_endpoint_url": f"{self.base}/ses",
            "sendgrid_api_key": SENDGRID_KEY,
            "sendgrid_api_url": f"{self.base}/sendgrid",
            "sendgrid_groups": f"{TOPIC}={GROUP}",
            "mailgun_api_key": MAILGUN_KEY,
            "mailgun_api_url": f"{self.base}/mailgun",
            "mailgun_domain": DOMAIN,
            "postmark_server_token": POSTMARK_TOKEN,
            "postmark_api_url": f"{self.base}/postmark",
            "postmark_stream": STREAM,
        }

    # -- requests -------------------------------------------------------------------

    def auth(
        self, provider: str, method: str, raw: str, headers: dict[str, str], body: bytes
    ) -> str | None:
        if provider == "ses":
            return verify_sigv4(method, raw, headers, body, AWS_SECRET, REGION)
        if provider == "sendgrid":
            ok = headers.get("authorization") == f"Bearer {SENDGRID_KEY}"
            return None if ok else "bad bearer key"
        if provider == "mailgun":
            expected = "Basic " + base64.b64encode(f"api:{MAILGUN_KEY}".encode()).decode()
            return None if headers.get("authorization") == expected else "bad Basic credentials"
        if provider == "postmark":
            ok = headers.get("x-postmark-server-token") == POSTMARK_TOKEN
            return None if ok else "bad server token"
        return "unknown provider"

    def route(
        self, provider: str, method: str, path: str, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        result: tuple[int, Any, dict[str, str]] = getattr(self, f"_{provider}")(method, path, body)
        return result

    def _page(self, items: list[Any], query: dict[str, list[str]]) -> tuple[list[Any], int]:
        offset = int(query.get("offset", ["0"])[0])
        limit = int(query.get("limit", [str(self.page_size)])[0])
        return items[offset : offset + limit], offset + limit

    def _ses(self, method: str, path: str, body: bytes) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(path)
        base = "/v2/email/suppression/addresses"
        if method == "PUT" and parts.path == base:
            data = json.loads(body)
            if data.get("Reason") not in ("BOUNCE", "COMPLAINT") or "@" not in data.get(
                "EmailAddress", ""
            ):
                return 400, {"message": "Invalid reason"}, {}
            self.lists.ses[data["EmailAddress"]] = data["Reason"]
            self._log("ses", "add", data["Reason"], data["EmailAddress"])
            return 200, {}, {}
        if method == "DELETE" and parts.path.startswith(base + "/"):
            address = unquote(parts.path[len(base) + 1 :])
            if address not in self.lists.ses:
                return 404, {"message": "Email address does not exist on your suppression list"}, {}
            del self.lists.ses[address]
            self._log("ses", "remove", "", address)
            return 200, {}, {}
        if method == "GET" and parts.path == base:
            query = parse_qs(parts.query)
            items = sorted(self.lists.ses.items())
            offset = int(query.get("NextToken", ["0"])[0])
            page = items[offset : offset + self.page_size]
            answer: dict[str, Any] = {
                "SuppressedDestinationSummaries": [
                    {"EmailAddress": a, "Reason": r, "LastUpdateTime": 1700000000.0}
                    for a, r in page
                ]
            }
            if offset + self.page_size < len(items):
                answer["NextToken"] = str(offset + self.page_size)
            return 200, answer, {}
        return 404, {"message": "not found"}, {}

    def _sendgrid(self, method: str, path: str, body: bytes) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(path)
        p, query = parts.path, parse_qs(parts.query)
        group_base = f"/v3/asm/groups/{GROUP}/suppressions"
        if method == "POST" and p in ("/v3/asm/suppressions/global", group_base):
            emails = json.loads(body)["recipient_emails"]
            target = (
                self.lists.sg_global
                if p.endswith("global")
                else self.lists.sg_groups.setdefault(GROUP, set())
            )
            for e in emails:
                target.add(e)
                self._log("sendgrid", "add", "global" if p.endswith("global") else "group", e)
            return 201, {"recipient_emails": emails}, {}
        for prefix, name in (
            ("/v3/asm/suppressions/global/", "global"),
            (group_base + "/", "group"),
        ):
            if method == "DELETE" and p.startswith(prefix):
                email = unquote(p[len(prefix) :])
                target = (
                    self.lists.sg_global
                    if name == "global"
                    else self.lists.sg_groups.setdefault(GROUP, set())
                )
                if email in target:
                    target.discard(email)
                    self._log("sendgrid", "remove", name, email)
                return 204, b"", {}
        if method == "DELETE" and p in ("/v3/suppression/bounces", "/v3/suppression/spam_reports"):
            name = p.rsplit("/", 1)[1]
            target = self.lists.sg_bounces if name == "bounces" else self.lists.sg_spam
            for e in json.loads(body)["emails"]:
                if e in target:
                    target.discard(e)
                    self._log("sendgrid", "remove", name, e)
            return 204, b"", {}
        if method == "GET":
            sources = {
                "/v3/suppression/unsubscribes": self.lists.sg_global,
                "/v3/suppression/bounces": self.lists.sg_bounces,
                "/v3/suppression/spam_reports": self.lists.sg_spam,
            }
            if p in sources:
                page, _ = self._page(sorted(sources[p]), query)
                return 200, [{"email": e, "created": 1700000000} for e in page], {}
            if p == group_base:
                return 200, sorted(self.lists.sg_groups.get(GROUP, set())), {}
        return 404, {"errors": [{"message": "not found"}]}, {}

    def _mailgun(self, method: str, path: str, body: bytes) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(path)
        prefix = f"/v3/{DOMAIN}/"
        if not parts.path.startswith(prefix):
            return 404, {"message": "Domain not found"}, {}
        name, _, address = parts.path[len(prefix) :].partition("/")
        address = unquote(address)
        query = parse_qs(parts.query)
        if name not in ("unsubscribes", "bounces", "complaints"):
            return 404, {"message": "not found"}, {}
        if method == "POST" and not address:
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            a = form.get("address", "")
            if "@" not in a:
                return 400, {"message": "'address' parameter is not a valid address"}, {}
            if name == "unsubscribes":
                self.lists.mg_unsubscribes.setdefault(a, set()).add(form.get("tag", "*"))
            elif name == "bounces":
                self.lists.mg_bounces.add(a)
            else:
                self.lists.mg_complaints.add(a)
            self._log("mailgun", "add", name + ":" + form.get("tag", ""), a)
            return 200, {"message": f"Address has been added to the {name} table", "address": a}, {}
        if method == "DELETE" and address:
            if name == "unsubscribes":
                tags = self.lists.mg_unsubscribes.get(address)
                tag = query.get("tag", [None])[0]
                if not tags or (tag is not None and tag not in tags):
                    return 404, {"message": "Address not found in unsubscribers table"}, {}
                if tag is None:
                    del self.lists.mg_unsubscribes[address]
                else:
                    tags.discard(tag)
                    if not tags:
                        del self.lists.mg_unsubscribes[address]
                self._log("mailgun", "remove", f"unsubscribes:{tag or ''}", address)
            else:
                target = self.lists.mg_bounces if name == "bounces" else self.lists.mg_complaints
                if address not in target:
                    return 404, {"message": f"Address not found in {name} table"}, {}
                target.discard(address)
                self._log("mailgun", "remove", name, address)
            return 200, {"message": "removed", "address": address}, {}
        if method == "GET" and not address:
            rows: list[dict[str, Any]]
            if name == "unsubscribes":
                rows = [
                    {"address": a, "tags": sorted(t), "created_at": "Fri, 21 Oct 2011 11:02:55 GMT"}
                    for a, t in sorted(self.lists.mg_unsubscribes.items())
                ]
            else:
                target = self.lists.mg_bounces if name == "bounces" else self.lists.mg_complaints
                rows = [{"address": a, "created_at": "Fri, 21 Oct 2011"} for a in sorted(target)]
            after = query.get("after", [""])[0]
            rows = [r for r in rows if str(r["address"]) > after][: self.page_size]
            last = rows[-1]["address"] if rows else after
            url = f"{self.base}/mailgun{prefix}{name}"
            return (
                200,
                {
                    "items": rows,
                    "paging": {
                        "first": f"{url}?limit={self.page_size}",
                        "next": f"{url}?{urlencode({'limit': self.page_size, 'after': last})}",
                        "previous": f"{url}?limit={self.page_size}",
                        "last": f"{url}?limit={self.page_size}",
                    },
                },
                {},
            )
        return 404, {"message": "not found"}, {}

    def _postmark(self, method: str, path: str, body: bytes) -> tuple[int, Any, dict[str, str]]:
        base = f"/message-streams/{STREAM}/suppressions"
        if method == "POST" and path in (base, base + "/delete"):
            items = json.loads(body)["Suppressions"]
            answers = []
            for item in items:
                a = item["EmailAddress"]
                if path == base:
                    self.lists.pm[a] = "ManualSuppression"
                    self._log("postmark", "add", "", a)
                    answers.append({"EmailAddress": a, "Status": "Suppressed", "Message": None})
                elif self.lists.pm.get(a) == "SpamComplaint":
                    answers.append(
                        {
                            "EmailAddress": a,
                            "Status": "Failed",
                            "Message": f"You do not have the required authority to "
                            f"change this suppression: {a}",
                        }
                    )
                else:
                    if self.lists.pm.pop(a, None) is not None:
                        self._log("postmark", "remove", "", a)
                    answers.append({"EmailAddress": a, "Status": "Deleted", "Message": None})
            return 200, {"Suppressions": answers}, {}
        if method == "GET" and path == base + "/dump":
            return (
                200,
                {
                    "Suppressions": [
                        {
                            "EmailAddress": a,
                            "SuppressionReason": r,
                            "Origin": "Recipient",
                            "CreatedAt": "2020-01-01T00:00:00-05:00",
                        }
                        for a, r in sorted(self.lists.pm.items())
                    ]
                },
                {},
            )
        return 404, {"ErrorCode": 404, "Message": "not found"}, {}


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    server = StandIn()
    yield server
    server.close()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


# -- driving the deliverer and the CLI ----------------------------------------------


def deliverer_for(adieu: Any, targets: list[Any] | None = None, **options: Any) -> PushDeliverer:
    """A deliverer with short waits, for the configured providers (or ``targets``)."""
    values: dict[str, Any] = {"timeout": 0.5, "first_delay": 0.05, "max_attempts": 50}
    values.update(options)
    return PushDeliverer(
        PushQueue(adieu.engine, adieu.ledger.now),
        targets if targets is not None else providers(adieu.settings),
        **values,
    )


def pending(adieu: Any) -> int:
    return sum(c.pending for c in PushQueue(adieu.engine, adieu.ledger.now).counts().values())


def drain(adieu: Any, deliverer: PushDeliverer, seconds: float = 30) -> None:
    """Rounds until nothing waits (or fail after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while pending(adieu):
        assert time.monotonic() < deadline, f"{pending(adieu)} pushes still waiting"
        if asyncio.run(deliverer.run_once()) == 0:
            time.sleep(0.05)


def run_cli(
    adieu: Any, settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch, *args: str
) -> Result:
    """``adieu ARGS`` against ``adieu``'s ledger with ``settings``; the result."""
    for name, value in settings.items():
        monkeypatch.setenv(f"ADIEU_{name.upper()}", str(value))
    monkeypatch.setenv("ADIEU_DATA_DIR", str(adieu.settings.data_dir))
    monkeypatch.setenv("ADIEU_DATABASE_URL", adieu.settings.sqlalchemy_url)
    return CliRunner().invoke(main, list(args), catch_exceptions=False)
