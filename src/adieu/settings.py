"""Settings, from the environment (``ADIEU_*``) or an ``adieu.toml`` file.

The names here are part of the public interface (docs/ARCHITECTURE.md); every
one is documented in the README, and a test checks that. Values given in code
come first, then the environment, then the file (``ADIEU_CONFIG`` names it),
then the defaults. A value that cannot be used is an ``InvalidSettings`` that
names each bad setting in one sentence.

This is a small loader of its own rather than pydantic-settings: importing
that took about 140 ms, more than a third of what ``adieu link`` or a Postfix
pipe (``adieu inbound -``, once per message) may spend starting (the start-up
benchmark, bench/startup.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from adieu.errors import InvalidSettings
from adieu.secret import Secret

AddressDisplay = Literal["mask", "full", "hash"]
InboundTrust = Literal["token", "sent", "any"]
PREFIX = "ADIEU_"


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting's default, description and limits (its type is its annotation)."""

    default: Any
    description: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    pattern: str | None = None
    #: Raises ``ValueError`` (with what is wrong) for a value that cannot be used.
    check: Callable[[Any], None] | None = None


def setting(
    *,
    default: Any,
    description: str,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    pattern: str | None = None,
    check: Callable[[Any], None] | None = None,
) -> Any:
    """Declare a setting (as a class attribute of ``Settings``)."""
    return Setting(default, description, ge, gt, le, pattern, check)


def known_zone(value: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("is not a known time zone (e.g. Europe/Stockholm)") from None


def networks(value: str) -> None:
    """Comma-separated IP networks (or single addresses)."""
    import ipaddress

    for part in filter(None, (p.strip() for p in value.split(","))):
        try:
            ipaddress.ip_network(part, strict=False)
        except ValueError:
            raise ValueError(f"names {part!r}, not an IP network (e.g. 10.0.0.0/8)") from None


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"(?=.{{1,200}}$){_LABEL}(?:\.{_LABEL})+")


def a_domain(value: str) -> None:
    if not _DOMAIN.fullmatch(value):
        raise ValueError("is not a domain name (e.g. bounces.example.com)")


def an_address(value: str) -> None:
    from adieu.addresses import canonical_or_none

    if canonical_or_none(value) is None or value.strip() != value:
        raise ValueError("is not an email address (e.g. fbl@example.com)")


def an_ec_public_key(value: str) -> None:
    """SendGrid's verification key: base64 DER (a PEM's header lines are allowed)."""
    from adieu.esp.hooks.sendgrid import public_key

    if public_key(value) is None:
        raise ValueError("is not an EC public key in base64 (copy it as SendGrid shows it)")


def a_svix_secret(value: Any) -> None:
    """A Svix signing secret: whsec_ and base64."""
    from adieu.esp.hooks.resend import secret_key

    if not secret_key(value.reveal()):
        raise ValueError("is not a signing secret (whsec_ and base64, as Resend shows it)")


class Settings:
    """Adieu's settings. ``Settings(name=value, …)`` overrides what the
    environment and the file say; ``given`` names the settings set anywhere."""

    data_dir: Path = setting(
        default=Path("./adieu-data"),
        description="Where the SQLite database and the key file live.",
    )
    database_url: str | None = setting(
        default=None,
        description="SQLAlchemy URL; default SQLite at DATA_DIR/adieu.db. "
        "PostgreSQL: postgresql+psycopg://user@host/db",
    )
    base_url: str = setting(
        default="http://127.0.0.1:8000",
        description="Public origin of the unsubscribe links.",
    )
    keys_file: Path | None = setting(
        default=None, description="Key ring file; default DATA_DIR/keys.json."
    )
    sender_name: str = setting(default="Adieu demo", description="Shown on the pages.")
    default_locale: str = setting(default="en", description="Language when nothing else says.")
    address_display: AddressDisplay = setting(
        default="mask", description="How pages show the address (R4): mask, full or hash."
    )
    display_timezone: str = setting(
        default="UTC",
        description="Time zone for dates shown on the pages, e.g. Europe/Stockholm.",
        check=known_zone,
    )
    honour_hours: int = setting(
        default=24,
        ge=0,
        le=240,
        description="Pages say a message already on its way may arrive within this many hours.",
    )
    brand_colour: str = setting(
        default="#0b5cad",
        pattern=r"^#[0-9a-fA-F]{6}$",
        description="Button colour (#rrggbb); the text on it is black or white, to read well.",
    )
    logo_file: Path | None = setting(
        default=None,
        description="A PNG, SVG, JPEG or WebP logo shown on the pages (served by Adieu).",
    )
    privacy_url: str | None = setting(
        default=None, pattern=r"^https?://", description="Link to the sender's privacy policy."
    )
    dkim_domain: str | None = setting(
        default=None, description="Sign stamped mail for this domain (d=); unset: no signing."
    )
    dkim_selector: str = setting(
        default="adieu",
        description="DKIM selector (s=); keys are DATA_DIR/dkim-SELECTOR.pem (and -ed25519.pem).",
    )
    feedback_sender: str = setting(
        default="adieu", description="Sender id, the last field of Feedback-ID."
    )
    footer_position: Literal["top", "bottom"] = setting(
        default="bottom", description="Where the unsubscribe footer goes in each body part."
    )
    footer_emphasis: str = setting(
        default="underline,centred",
        pattern=r"^((bold|underline|centred)(,(bold|underline|centred))*)?$",
        description="Comma-separated: bold, underline, centred.",
    )
    relay_allow: str = setting(
        default="127.0.0.1/32,::1/128",
        description="Client networks the relay serves without AUTH (comma-separated).",
    )
    relay_user: str | None = setting(default=None, description="User name for relay AUTH.")
    relay_password: Secret | None = setting(
        default=None, description="Password for relay AUTH (offered only over STARTTLS)."
    )
    relay_max_recipients: int = setting(
        default=100,
        ge=1,
        le=10_000,
        description="Recipients the relay takes in one transaction; beyond them it answers "
        "452 4.5.3 and the client sends the rest in another (RFC 5321 §4.5.3.1.8).",
    )
    upstream_user: str | None = setting(
        default=None, description="User name the relay gives its upstream (SMTP AUTH)."
    )
    upstream_password: Secret | None = setting(
        default=None, description="Password for the upstream; sent only over TLS."
    )
    upstream_tls: Literal["starttls", "implicit", "none"] = setting(
        default="starttls",
        description="starttls: when the upstream offers it (verified, and required, "
        "when a user is set); implicit: TLS from the first byte (port 465); none.",
    )
    upstream_ca_file: Path | None = setting(
        default=None, description="CA bundle for the upstream's certificate (default: system)."
    )
    mailto_domain: str | None = setting(
        default=None,
        description="When set, List-Unsubscribe also offers mailto:unsubscribe+TOKEN@DOMAIN "
        "(a compact token: the local part stays within 64 octets and survives case folding).",
    )
    bounce_domain: str | None = setting(
        default=None,
        check=a_domain,
        description="When set, the relay sends each copy with its own return path, "
        "bounces+TOKEN@DOMAIN (a compact token naming the recipient): route DOMAIN's mail "
        "to adieu inbound.",
    )
    complaint_address: str | None = setting(
        default=None,
        check=an_address,
        description="When set, stamped mail carries CFBL-Address: ADDRESS; report=arf and "
        "CFBL-Feedback-ID (RFC 9477), if ADDRESS's domain is From's domain or below it; "
        "route ADDRESS's mail to adieu inbound.",
    )
    soft_bounce_limit: int = setting(
        default=3, ge=1, description="Soft bounces within SOFT_BOUNCE_DAYS that count as hard."
    )
    soft_bounce_days: int = setting(default=30, ge=1, description="Window for soft bounces.")
    inbound_trust: InboundTrust = setting(
        default="sent",
        description="Which returned reports may change the ledger: token (only those that "
        "carry Adieu's own token), sent (a token, or an address mailed within "
        "INBOUND_SENT_DAYS), any (every report: the route is trusted). The others are "
        "recorded as unverified and kept for review.",
    )
    inbound_sent_days: int = setting(
        default=30,
        ge=1,
        description="With INBOUND_TRUST=sent: a send to the address within this many days "
        "makes a report about it trusted.",
    )
    webhook_max_attempts: int = setting(
        default=12,
        ge=1,
        le=100,
        description="Delivery attempts before a webhook delivery becomes a dead letter.",
    )
    webhook_timeout: float = setting(
        default=10.0, gt=0, le=120, description="Seconds a webhook receiver has to answer."
    )
    webhook_backoff: float = setting(
        default=5.0,
        gt=0,
        description="First retry delay in seconds; it doubles per attempt (with jitter, "
        "at most an hour).",
    )
    webhook_keep_days: int = setting(
        default=90,
        ge=1,
        description="Days delivered webhook records are kept (the report's time to honour "
        "reads them); the events themselves stay.",
    )
    webhook_deliverer: bool = setting(
        default=True,
        description="Run the webhook deliverer inside adieu serve (or run adieu webhooks run).",
    )
    webhook_private_networks: bool = setting(
        default=True,
        description="Whether webhooks may reach private, loopback and link-local addresses "
        "(a CRM on the local network). false: each receiver's host is resolved at delivery and "
        "a delivery to any address that is not public fails.",
    )
    metrics_public: bool = setting(
        default=True,
        description="Serve GET /metrics without an API key (false: a bearer API key is needed).",
    )
    trusted_proxies: str = setting(
        default="",
        description="Networks of the reverse proxies in front of adieu serve (comma-separated, "
        "e.g. 10.0.0.0/8): only a request from one of them has its X-Forwarded-For and "
        "X-Forwarded-Proto believed. Default: none.",
        check=networks,
    )
    # -- email service providers' webhooks, POST /hooks/{provider} (adieu.esp.hooks) --
    ses_topic_arns: str = setting(
        default="",
        description="Amazon SES via SNS: the topic ARNs whose notifications are taken "
        "(comma-separated); unset: /hooks/ses answers 404.",
    )
    sns_test_ca_file: Path | None = setting(
        default=None,
        description="For tests only: a CA file trusted for SNS signing certificates, "
        "instead of the system's.",
    )
    sns_test_cert_host: str | None = setting(
        default=None,
        description="For tests only: one more host (host:port) SNS signing certificates "
        "may come from, besides sns.<region>.amazonaws.com.",
    )
    sendgrid_public_key: str | None = setting(
        default=None,
        check=an_ec_public_key,
        description="SendGrid's Event Webhook verification key (base64, as the console "
        "shows it); unset: /hooks/sendgrid answers 404.",
    )
    mailgun_signing_key: Secret | None = setting(
        default=None,
        description="Mailgun's HTTP webhook signing key; unset: /hooks/mailgun answers 404.",
    )
    postmark_webhook_user: str | None = setting(
        default=None, description="The Basic auth user name Postmark's webhook sends."
    )
    postmark_webhook_password: Secret | None = setting(
        default=None,
        description="The Basic auth password Postmark's webhook sends; unset: "
        "/hooks/postmark answers 404.",
    )
    resend_secret: Secret | None = setting(
        default=None,
        check=a_svix_secret,
        description="Resend's webhook signing secret (whsec_…); unset: /hooks/resend answers 404.",
    )
    sparkpost_webhook_user: str | None = setting(
        default=None, description="The Basic auth user name SparkPost's webhook sends."
    )
    sparkpost_webhook_password: Secret | None = setting(
        default=None, description="The Basic auth password SparkPost's webhook sends."
    )
    sparkpost_webhook_token: Secret | None = setting(
        default=None,
        description="The bearer token SparkPost's webhook sends (instead of Basic auth); "
        "neither set: /hooks/sparkpost answers 404.",
    )
    brevo_webhook_token: Secret | None = setting(
        default=None,
        description="The bearer token Brevo's webhook sends; unset: /hooks/brevo answers 404.",
    )
    mailjet_webhook_user: str | None = setting(
        default=None, description="The Basic auth user name in Mailjet's event URL."
    )
    mailjet_webhook_password: Secret | None = setting(
        default=None,
        description="The Basic auth password in Mailjet's event URL; unset: /hooks/mailjet "
        "answers 404.",
    )
    # -- Adieu's decisions out to the providers' suppression lists (adieu.esp.push) --
    ses_region: str | None = setting(
        default=None,
        pattern=r"^[a-z]{2}(-[a-z]+)+-\d$",
        description="Amazon SES: the region whose account-level suppression list gets "
        "Adieu's decisions (e.g. eu-west-1); AWS credentials from AWS_ACCESS_KEY_ID, "
        "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN). Unset: nothing is pushed to SES.",
    )
    ses_endpoint_url: str | None = setting(
        default=None,
        pattern=r"^https?://",
        description="Amazon SES: another API endpoint than https://email.<region>.amazonaws.com "
        "(a VPC endpoint, a test stand-in).",
    )
    sendgrid_api_key: Secret | None = setting(
        default=None,
        description="SendGrid: an API key with Suppressions full access; unset: nothing is "
        "pushed to SendGrid.",
    )
    sendgrid_api_url: str = setting(
        default="https://api.sendgrid.com",
        pattern=r"^https?://",
        description="SendGrid's API (https://api.eu.sendgrid.com for EU subusers).",
    )
    sendgrid_groups: str = setting(
        default="",
        pattern=r"^(\s*[a-z0-9._-]+\s*=\s*\d+\s*(,|$))*\s*$",
        description="SendGrid: Adieu topics and the unsubscribe groups that stand for them "
        "(topic=group id, comma-separated); a topic's unsubscribe goes to its group.",
    )
    mailgun_api_key: Secret | None = setting(
        default=None,
        description="Mailgun: the account's private API key (suppressions are managed with "
        "it); with ADIEU_MAILGUN_DOMAIN set, decisions are pushed to Mailgun.",
    )
    mailgun_api_url: str = setting(
        default="https://api.mailgun.net",
        pattern=r"^https?://",
        description="Mailgun's API (https://api.eu.mailgun.net for a domain in the EU region).",
    )
    mailgun_domain: str | None = setting(
        default=None,
        check=a_domain,
        description="Mailgun: the sending domain whose suppression lists get Adieu's decisions.",
    )
    postmark_server_token: Secret | None = setting(
        default=None,
        description="Postmark: the server's API token; unset: nothing is pushed to Postmark.",
    )
    postmark_api_url: str = setting(
        default="https://api.postmarkapp.com",
        pattern=r"^https?://",
        description="Postmark's API.",
    )
    postmark_stream: str = setting(
        default="broadcast",
        pattern=r"^[A-Za-z0-9_-]{1,100}$",
        description="Postmark: the message stream whose suppressions get Adieu's decisions.",
    )
    resend_api_key: Secret | None = setting(
        default=None,
        description="Resend: an API key with full access (contacts are managed with it); "
        "unset: nothing is pushed to Resend.",
    )
    resend_api_url: str = setting(
        default="https://api.resend.com",
        pattern=r"^https?://",
        description="Resend's API.",
    )
    resend_topics: str = setting(
        default="",
        pattern=r"^(\s*[a-z0-9._-]+\s*=\s*[A-Za-z0-9-]+\s*(,|$))*\s*$",
        description="Resend: Adieu topics and the Resend topics that stand for them "
        "(topic=topic id, comma-separated); a topic's unsubscribe opts out of its topic.",
    )
    sparkpost_api_key: Secret | None = setting(
        default=None,
        description="SparkPost: an API key with Suppression Lists read/write; unset: "
        "nothing is pushed to SparkPost.",
    )
    sparkpost_api_url: str = setting(
        default="https://api.sparkpost.com",
        pattern=r"^https?://",
        description="SparkPost's API (https://api.eu.sparkpost.com for SparkPost EU).",
    )
    brevo_api_key: Secret | None = setting(
        default=None,
        description="Brevo: a v3 API key; unset: nothing is pushed to Brevo.",
    )
    brevo_api_url: str = setting(
        default="https://api.brevo.com",
        pattern=r"^https?://",
        description="Brevo's API.",
    )
    brevo_lists: str = setting(
        default="",
        pattern=r"^(\s*[a-z0-9._-]+\s*=\s*\d+\s*(,|$))*\s*$",
        description="Brevo: Adieu topics and the contact lists that stand for them "
        "(topic=list id, comma-separated); a topic's unsubscribe leaves its list.",
    )
    mailjet_api_key: str | None = setting(
        default=None,
        description="Mailjet: the API key (public part); with ADIEU_MAILJET_API_SECRET set, "
        "decisions are pushed to Mailjet.",
    )
    mailjet_api_secret: Secret | None = setting(
        default=None,
        description="Mailjet: the API secret key.",
    )
    mailjet_api_url: str = setting(
        default="https://api.mailjet.com",
        pattern=r"^https?://",
        description="Mailjet's API.",
    )
    mailjet_lists: str = setting(
        default="",
        pattern=r"^(\s*[a-z0-9._-]+\s*=\s*\d+\s*(,|$))*\s*$",
        description="Mailjet: Adieu topics and the contact lists that stand for them "
        "(topic=list id, comma-separated); a topic's unsubscribe unsubscribes from its list.",
    )

    def __init__(self, **given: Any) -> None:
        values, explicit = _resolve(type(self), given)
        self.__dict__.update(values)
        self.given: frozenset[str] = explicit

    @classmethod
    def fields(cls) -> dict[str, Setting]:
        """Every setting, by name (``ADIEU_`` + the name in capitals)."""
        return {name: value for name, value in vars(cls).items() if isinstance(value, Setting)}

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (checked like any other value)."""
        values = {name: getattr(self, name) for name in self.fields()}
        parsed, _ = _resolve(type(self), {**values, **changes}, environment=False)
        copy = object.__new__(type(self))
        copy.__dict__.update(parsed)
        copy.given = self.given | frozenset(changes)
        return copy

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in sorted(self.given))
        return f"Settings({shown})"

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'adieu.db').resolve()}"

    @property
    def key_path(self) -> Path:
        return self.keys_file or self.data_dir / "keys.json"

    @property
    def emphasis(self) -> frozenset[str]:
        return frozenset(filter(None, self.footer_emphasis.split(",")))

    @property
    def base(self) -> str:
        return self.base_url.rstrip("/")

    @property
    def proxies(self) -> list[str]:
        """``trusted_proxies`` as a list of networks (empty: trust none)."""
        import ipaddress

        parts = (part.strip() for part in self.trusted_proxies.split(","))
        return [str(ipaddress.ip_network(part, strict=False)) for part in parts if part]


# -- reading and checking values ---------------------------------------------------------

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_hints: dict[type, dict[str, Any]] = {}


def _file_values() -> Mapping[str, Any]:
    path = Path(os.environ.get("ADIEU_CONFIG", "adieu.toml"))
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:  # there, but not readable: never run on defaults instead
        raise InvalidSettings([f"{path} cannot be read: {exc.strerror}."]) from None
    import tomllib

    try:
        return tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidSettings([f"{path} cannot be read as TOML: {exc}."]) from None


def _resolve(
    cls: type[Settings], given: Mapping[str, Any], *, environment: bool = True
) -> tuple[dict[str, Any], frozenset[str]]:
    fields = cls.fields()
    unknown = sorted(set(given) - set(fields))
    if unknown:
        raise TypeError(f"unknown settings: {', '.join(unknown)}")
    hints = _hints.get(cls)
    if hints is None:
        hints = _hints[cls] = get_type_hints(cls)
    file = _file_values() if environment else {}
    values: dict[str, Any] = {}
    explicit: set[str] = set()
    problems: list[str] = []
    for name, spec in fields.items():
        env = os.environ.get(PREFIX + name.upper()) if environment else None
        if name in given:
            raw = given[name]
        elif env is not None:
            raw = env
        elif name in file:
            raw = file[name]
        else:
            values[name] = spec.default
            continue
        explicit.add(name)
        try:
            values[name] = _check(hints[name], spec, raw)
        except ValueError as exc:
            problems.append(f"{PREFIX}{name.upper()}: {exc} (it is {_shown(raw)}).")
    if problems:
        raise InvalidSettings(problems)
    return values, frozenset(explicit)


def _shown(raw: Any) -> str:
    if isinstance(raw, str) and len(raw) > 80:
        raw = raw[:77] + "..."
    return repr(raw)


def _check(kind: Any, spec: Setting, raw: Any) -> Any:
    args = get_args(kind)
    if type(None) in args:  # optional: nothing, or empty text, means unset
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        (kind,) = [a for a in args if a is not type(None)]
        args = get_args(kind)
    value = _convert(kind, args, raw)
    if spec.pattern is not None and not re.search(spec.pattern, str(value)):
        raise ValueError(f"does not have the form {spec.pattern}")
    if spec.ge is not None and value < spec.ge:
        raise ValueError(f"must be at least {spec.ge:g}")
    if spec.gt is not None and value <= spec.gt:
        raise ValueError(f"must be more than {spec.gt:g}")
    if spec.le is not None and value > spec.le:
        raise ValueError(f"must be at most {spec.le:g}")
    if spec.check is not None:
        spec.check(value)
    return value


def _convert(kind: Any, args: tuple[Any, ...], raw: Any) -> Any:
    if get_origin(kind) is Literal:
        if raw not in args:
            raise ValueError(f"must be one of {', '.join(map(str, args))}")
        return raw
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ValueError("must be true or false")
    if kind is int or kind is float:
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            raise ValueError("must be a number")
        try:
            number = float(raw)
        except ValueError:
            raise ValueError("must be a number") from None
        if kind is int:
            if not number.is_integer():
                raise ValueError("must be a whole number")
            return int(number)
        return number
    if kind is Path:
        if not isinstance(raw, (str, Path)):
            raise ValueError("must be a path")
        return Path(raw)
    if kind is Secret:
        if isinstance(raw, Secret):
            return raw
        if not isinstance(raw, str):
            raise ValueError("must be text")
        return Secret(raw)
    if kind is str:
        if not isinstance(raw, str):
            raise ValueError("must be text")
        return raw
    raise TypeError(f"no reader for settings of type {kind!r}")  # pragma: no cover
