"""Settings, from the environment (``ADIEU_*``) or an ``adieu.toml`` file.

The names here are part of the public interface (docs/ARCHITECTURE.md); every one is
documented in the README, and a test checks that.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from adieu.errors import InvalidSettings

AddressDisplay = Literal["mask", "full", "hash"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ADIEU_", extra="ignore")

    data_dir: Path = Field(
        default=Path("./adieu-data"),
        description="Where the SQLite database and the key file live.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default SQLite at DATA_DIR/adieu.db. "
        "PostgreSQL: postgresql+psycopg://user@host/db",
    )
    base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Public origin of the unsubscribe links.",
    )
    keys_file: Path | None = Field(
        default=None, description="Key ring file; default DATA_DIR/keys.json."
    )
    sender_name: str = Field(default="Adieu demo", description="Shown on the pages.")
    default_locale: str = Field(default="en", description="Language when nothing else says.")
    address_display: AddressDisplay = Field(
        default="mask", description="How pages show the address (R4): mask, full or hash."
    )
    display_timezone: str = Field(
        default="UTC",
        description="Time zone for dates shown on the pages, e.g. Europe/Stockholm.",
    )
    honour_hours: int = Field(
        default=24,
        ge=0,
        le=240,
        description="Pages say a message already on its way may arrive within this many hours.",
    )
    brand_colour: str = Field(
        default="#0b5cad",
        pattern=r"^#[0-9a-fA-F]{6}$",
        description="Button colour (#rrggbb); the text on it is black or white, to read well.",
    )
    logo_file: Path | None = Field(
        default=None,
        description="A PNG, SVG, JPEG or WebP logo shown on the pages (served by Adieu).",
    )
    privacy_url: str | None = Field(
        default=None, pattern=r"^https?://", description="Link to the sender's privacy policy."
    )
    dkim_domain: str | None = Field(
        default=None, description="Sign stamped mail for this domain (d=); unset: no signing."
    )
    dkim_selector: str = Field(
        default="adieu",
        description="DKIM selector (s=); keys are DATA_DIR/dkim-SELECTOR.pem (and -ed25519.pem).",
    )
    feedback_sender: str = Field(
        default="adieu", description="Sender id, the last field of Feedback-ID."
    )
    footer_position: Literal["top", "bottom"] = Field(
        default="bottom", description="Where the unsubscribe footer goes in each body part."
    )
    footer_emphasis: str = Field(
        default="underline,centred",
        pattern=r"^((bold|underline|centred)(,(bold|underline|centred))*)?$",
        description="Comma-separated: bold, underline, centred.",
    )
    relay_allow: str = Field(
        default="127.0.0.1/32,::1/128",
        description="Client networks the relay serves without AUTH (comma-separated).",
    )
    relay_user: str | None = Field(default=None, description="User name for relay AUTH.")
    relay_password: SecretStr | None = Field(
        default=None, description="Password for relay AUTH (offered only over STARTTLS)."
    )
    upstream_user: str | None = Field(
        default=None, description="User name the relay gives its upstream (SMTP AUTH)."
    )
    upstream_password: SecretStr | None = Field(
        default=None, description="Password for the upstream; sent only over TLS."
    )
    upstream_tls: Literal["starttls", "implicit", "none"] = Field(
        default="starttls",
        description="starttls: when the upstream offers it (verified, and required, "
        "when a user is set); implicit: TLS from the first byte (port 465); none.",
    )
    upstream_ca_file: Path | None = Field(
        default=None, description="CA bundle for the upstream's certificate (default: system)."
    )
    mailto_domain: str | None = Field(
        default=None,
        description="When set, List-Unsubscribe also offers mailto:unsubscribe+TOKEN@DOMAIN.",
    )
    soft_bounce_limit: int = Field(
        default=3, ge=1, description="Soft bounces within SOFT_BOUNCE_DAYS that count as hard."
    )
    soft_bounce_days: int = Field(default=30, ge=1, description="Window for soft bounces.")
    webhook_max_attempts: int = Field(
        default=12,
        ge=1,
        le=100,
        description="Delivery attempts before a webhook delivery becomes a dead letter.",
    )
    webhook_timeout: float = Field(
        default=10.0, gt=0, le=120, description="Seconds a webhook receiver has to answer."
    )
    webhook_backoff: float = Field(
        default=5.0,
        gt=0,
        description="First retry delay in seconds; it doubles per attempt (with jitter, "
        "at most an hour).",
    )
    webhook_keep_days: int = Field(
        default=90,
        ge=1,
        description="Days delivered webhook records are kept (the report's time to honour "
        "reads them); the events themselves stay.",
    )
    webhook_deliverer: bool = Field(
        default=True,
        description="Run the webhook deliverer inside adieu serve (or run adieu webhooks run).",
    )
    metrics_public: bool = Field(
        default=True,
        description="Serve GET /metrics without an API key (false: a bearer API key is needed).",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("ADIEU_CONFIG", "adieu.toml"))
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_path),
        )

    @field_validator("display_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

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


def load_settings(**given: object) -> Settings:
    """The settings from the environment and ``adieu.toml``; a value that cannot
    be used is an ``InvalidSettings`` naming each bad setting in one sentence."""
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise InvalidSettings(_problems(exc)) from None


def _problems(exc: ValidationError) -> list[str]:
    problems: dict[str, str] = {}
    for error in exc.errors():
        name = "_".join(str(part) for part in error.get("loc", ()) if isinstance(part, str))
        setting = f"ADIEU_{name.upper()}" if name else "A setting"
        message = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
        given = error.get("input")
        shown = (
            f" (it is {given!r})"
            if isinstance(given, (str, int, float)) and repr(given) not in message
            else ""
        )
        problems.setdefault(setting, f"{setting}: {message[:1].lower()}{message[1:]}{shown}.")
    return list(problems.values())
