"""The JSON shapes of ``/api/v1`` (they make the OpenAPI document, with examples)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from adieu.text import has_controls

MAX_BATCH = 10_000
ADDRESS = Field(max_length=320, examples=["ada@example.com"])
CONTACT_KEY = r"^[0-9a-f]{64}$"


def _one_line(value: str) -> str:
    if has_controls(value):
        raise ValueError("Control characters (such as NUL, TAB or a line break) are not allowed.")
    return value


def _lines(value: str) -> str:
    if has_controls(value, lines=True):
        raise ValueError("Control characters (such as NUL) are not allowed.")
    return value


#: Text on one line: no control characters at all.
Line = Annotated[str, AfterValidator(_one_line)]
#: Text that may run over lines: TAB, LF and CR, and no other control character.
Lines = Annotated[str, AfterValidator(_lines)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    status: int = Field(examples=[401])
    code: str = Field(examples=["unauthorized"])
    message: str = Field(examples=["Send an API key: Authorization: Bearer adieu_…"])
    details: list[dict[str, Any]] | None = None


class ErrorBody(BaseModel):
    """The one error shape of every ``/api/v1`` answer that is not a success."""

    error: ErrorDetail


# -- links ----------------------------------------------------------------------


class Recipient(Strict):
    address: str = ADDRESS
    topic: Line | None = Field(default=None, max_length=64, examples=["news"])
    campaign: Line | None = Field(default=None, max_length=100, examples=["2026-11-newsletter"])
    locale: Line | None = Field(default=None, max_length=35, examples=["sv"])


class LinksRequest(Strict):
    """Defaults for the whole batch; each recipient may override them."""

    recipients: list[Recipient] = Field(min_length=1, max_length=MAX_BATCH)
    topic: Line | None = Field(default=None, max_length=64)
    campaign: Line | None = Field(default=None, max_length=100)
    locale: Line | None = Field(default=None, max_length=35)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "campaign": "2026-11-newsletter",
                    "recipients": [
                        {"address": "ada@example.com"},
                        {"address": "bo@example.org", "locale": "sv"},
                    ],
                }
            ]
        },
    )


class LinkOut(BaseModel):
    index: int
    address: str
    token: str
    url: str
    preferences_url: str
    headers: dict[str, str] = Field(
        examples=[
            {
                "List-Unsubscribe": "<https://mail.example.net/u/AbC…>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            }
        ]
    )


class ItemError(BaseModel):
    index: int
    message: str


class LinksResponse(BaseModel):
    links: list[LinkOut]
    errors: list[ItemError]


# -- check and sends -----------------------------------------------------------------


class CheckRequest(Strict):
    addresses: list[str] = Field(min_length=1, max_length=MAX_BATCH, examples=[["ada@example.com"]])
    category: Literal["marketing", "transactional"] = "marketing"
    topic: Line | None = Field(default=None, max_length=64)


class CheckResult(BaseModel):
    address: str
    allowed: bool
    reason: str = Field(
        examples=["ok"],
        description="ok, unsubscribed, complaint, hard_bounce, suppressed, topic_opt_out, "
        "not_subscribed, paused, frequency_cap or invalid_address",
    )
    since: datetime | None = None
    until: datetime | None = None


class CheckResponse(BaseModel):
    allowed: int
    refused: int
    results: list[CheckResult]


class SendsRequest(Strict):
    addresses: list[str] = Field(min_length=1, max_length=MAX_BATCH, examples=[["ada@example.com"]])
    category: Literal["marketing", "transactional"] = "marketing"
    topic: Line | None = Field(default=None, max_length=64)
    campaign: Line | None = Field(default=None, max_length=100)
    at: datetime | None = Field(default=None, description="When they were sent (default: now).")


class SendsResponse(BaseModel):
    recorded: int
    invalid: list[ItemError]


# -- contacts --------------------------------------------------------------------------


class LookupRequest(Strict):
    address: str = ADDRESS


class SuppressionOut(BaseModel):
    scope: str
    reason: str
    since: datetime


class EventOut(BaseModel):
    id: int
    type: str
    channel: str
    scope: str
    campaign: str | None
    at: str
    recorded_at: str | None
    contact: str
    address: str | None
    reason: str | None
    details: dict[str, Any] | None
    why: str | None = Field(
        default=None,
        description="For a bounce or complaint: the status code, the phrase that decided and "
        "its source, and which field named the recipient (from `details`).",
    )


class Decision(BaseModel):
    allowed: bool
    reason: str


class ContactOut(BaseModel):
    """State and full history: the proof of when, how and through which door."""

    contact: str = Field(description="The keyed hash that names this contact in URLs.")
    address: str | None = Field(description="None once erased (or never held).")
    known: bool
    erased_at: datetime | None
    suppressions: list[SuppressionOut]
    subscribed_topics: list[str]
    frequency: str
    paused_until: datetime | None
    last_marketing_send_at: datetime | None
    soft_bounces: int
    marketing: dict[str, Decision] = Field(
        description='May marketing go out now: "all", and per topic.'
    )
    history: list[EventOut]


class ChangeRequest(Strict):
    address: Line | None = Field(
        default=None,
        max_length=320,
        description="For a contact Adieu has not seen yet: its address (it must match the "
        "key), so that exports show it. Without it, only the keyed hash is kept.",
    )
    topic: Line | None = Field(default=None, max_length=64, description="Default: all marketing.")
    campaign: Line | None = Field(default=None, max_length=100)
    reason: Lines | None = Field(default=None, max_length=1000, description="Why, if they said.")


class ResubscribeRequest(ChangeRequest):
    lift: list[Literal["hard_bounce", "complaint"]] = Field(
        default_factory=list,
        max_length=2,
        description="Also lift these, on purpose: a complaint (only with a fresh opt-in) or "
        "a hard bounce (the mailbox works again). Needs a `note`; for all marketing only. "
        "Nothing lifts an erasure.",
    )
    note: Lines | None = Field(
        default=None,
        max_length=1000,
        description="Why: kept with the event, with the key that made the change.",
    )


class ChangeOut(BaseModel):
    changed: bool
    scope: str
    since: datetime | None
    event_id: int | None


class ResubscribeOut(ChangeOut):
    held: Literal["hard_bounce", "complaint"] | None = Field(
        default=None,
        description="What still stops marketing after this, if anything: lift it with `lift`.",
    )


# -- topics ------------------------------------------------------------------------------


class TopicWords(Strict):
    """A topic's name and description in one language."""

    name: Line = Field(min_length=1, max_length=200, examples=["ニュース"])
    description: Lines = Field(default="", max_length=2000)


_TRANSLATIONS = (
    "Name and description per language, keyed by language tag (ja, pt-BR); "
    "a page in a language without one shows the default name and description."
)


class TopicIn(Strict):
    key: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", examples=["news"])
    name: Line = Field(min_length=1, max_length=200, examples=["News"])
    description: Lines = Field(default="", max_length=2000)
    default_opt_in: bool = Field(
        default=True, description="False: only people who ask for it get it (R7)."
    )
    translations: dict[str, TopicWords] = Field(
        default_factory=dict, max_length=100, description=_TRANSLATIONS
    )


class TopicPatch(Strict):
    name: Line | None = Field(default=None, min_length=1, max_length=200)
    description: Lines | None = Field(default=None, max_length=2000)
    translations: dict[str, TopicWords | None] | None = Field(
        default=None,
        max_length=100,
        description="Languages to set (name and description) or, given as null, to "
        "remove; languages not named stay as they are.",
    )


class TopicOut(BaseModel):
    key: str
    name: str
    description: str
    default_opt_in: bool
    retired: bool = Field(
        description="Deleted: refused for new links and sends; links already sent still work."
    )
    retired_at: datetime | None
    translations: dict[str, TopicWords] = Field(default_factory=dict, description=_TRANSLATIONS)


# -- suppressions, events, webhooks ------------------------------------------------------


class ImportOut(BaseModel):
    added: int
    already: int
    invalid: int
    invalid_lines: list[ItemError]


class EventPage(BaseModel):
    events: list[EventOut]
    next: str | None = Field(description="Pass as ?after= for the next page; None at the end.")


EventType = Literal[
    "*",
    "unsubscribe",
    "resubscribe",
    "preferences",
    "reason",
    "complaint",
    "hard_bounce",
    "soft_bounce",
    "suppress",
    "erase",
    "not_spam",
    "rejection",
    "unverified",
]
URL = r"^https?://[^\s/?#]+([/?#]\S*)?$"


class WebhookIn(Strict):
    url: Line = Field(max_length=2000, pattern=URL, examples=["https://crm.example.com/adieu"])
    event_types: list[EventType] = Field(
        default=["*"], min_length=1, max_length=20, examples=[["unsubscribe", "complaint"]]
    )
    description: Line = Field(default="", max_length=200)


class WebhookPatch(Strict):
    url: Line | None = Field(default=None, max_length=2000, pattern=URL)
    event_types: list[EventType] | None = Field(default=None, min_length=1, max_length=20)
    description: Line | None = Field(default=None, max_length=200)
    active: bool | None = None


class WebhookOut(BaseModel):
    id: int
    url: str
    event_types: list[str]
    description: str
    active: bool
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(
        description="Signs every delivery (Adieu-Signature); shown only now.",
    )


class DeliveryOut(BaseModel):
    id: int
    event_id: int
    event_type: str
    state: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    delivered_at: datetime | None
    last_error: str | None


class ReplayRequest(Strict):
    ids: list[int] | None = Field(default=None, max_length=10_000, description="Default: all.")


class ReplayOut(BaseModel):
    replayed: int
