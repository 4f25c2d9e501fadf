"""The workspace file, ``winback.toml``, validated with pydantic.

Every section is a small model with ``extra="forbid"``, so a misspelt key is an error that
names the key and the file instead of a silently ignored setting. The policy section takes
its defaults from the business profile it names; any key given in the file overrides them.
"""

from __future__ import annotations

import tomllib
from datetime import timedelta
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from winback.domain import ChannelStatus, EventType, Profile
from winback.durations import parse_duration
from winback.errors import ConfigError

CONFIG_FILE = "winback.toml"

# Thresholds from current practice per business profile (issue 3): what counts as customer
# activity, and the days after which a customer is at risk, dormant and lost.
PROFILES: dict[str, dict[str, Any]] = {
    "ecommerce": {
        "customer_activity": ["purchase"],
        "at_risk_after": 120,
        "dormant_after": 180,
        "lost_after": 365,
        "protect_subscribers": False,
    },
    "retail": {
        "customer_activity": ["purchase", "open", "click"],
        "at_risk_after": 120,
        "dormant_after": 240,
        "lost_after": 540,
        "protect_subscribers": False,
    },
    "travel": {
        "customer_activity": ["purchase"],
        "at_risk_after": 270,
        "dormant_after": 365,
        "lost_after": 730,
        "protect_subscribers": False,
    },
    "subscription": {
        "customer_activity": ["login", "visit"],
        "at_risk_after": 30,
        "dormant_after": 60,
        "lost_after": 180,
        "protect_subscribers": True,
    },
    "newsletter": {
        "customer_activity": ["open", "click", "reply", "visit"],
        "at_risk_after": 90,
        "dormant_after": 180,
        "lost_after": 365,
        "protect_subscribers": False,
    },
}

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class KeyProblem(ValueError):
    """A problem a section validator finds with one of its keys: the error message
    names ``section.key`` rather than the section alone."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class WorkspaceSection(Section):
    name: str = "winback"
    timezone: str = "UTC"
    default_region: str = "FR"
    language: Literal["fr", "en"] = "fr"
    public_url: str = "http://127.0.0.1:8025"
    shop_url: str = "https://shop.example.com"
    brand_name: str = "winback"
    brand_color: str = "#2b6cb0"

    @field_validator("shop_url")
    @classmethod
    def _web_address(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError(f"{value!r} is not a web address (write https://...)")
        return value.rstrip("/")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as Europe/Paris)"
            ) from None
        return value

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        region = value.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown phone region {value!r} (use a country code such as FR)")
        return region

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class ImportSection(Section):
    default_consent: Literal["subscribed", "none"] = "subscribed"


class PolicySection(Section):
    profile: Profile = "ecommerce"
    customer_activity: list[EventType]
    at_risk_after: int = Field(gt=0)
    dormant_after: int = Field(gt=0)
    lost_after: int = Field(gt=0)
    protect_subscribers: bool
    clock: Literal["days", "p_alive"] = "days"
    at_risk_p_alive: float = Field(0.5, gt=0, lt=1)
    dormant_p_alive: float = Field(0.3, gt=0, lt=1)
    lost_p_alive: float = Field(0.1, gt=0, lt=1)

    @model_validator(mode="before")
    @classmethod
    def _profile_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        profile = data.get("profile", "ecommerce")
        return {**PROFILES.get(profile, PROFILES["ecommerce"]), **data}

    @model_validator(mode="after")
    def _ordered(self) -> PolicySection:
        if not self.at_risk_after < self.dormant_after < self.lost_after:
            raise ValueError(
                "thresholds must grow: at_risk_after < dormant_after < lost_after "
                f"(got {self.at_risk_after}, {self.dormant_after}, {self.lost_after})"
            )
        if not self.at_risk_p_alive > self.dormant_p_alive > self.lost_p_alive:
            raise ValueError(
                "p_alive thresholds must fall: at_risk_p_alive > dormant_p_alive > lost_p_alive"
            )
        return self


class ScoringSection(Section):
    # An open with no machine flag that comes this soon after delivery is a proxy prefetch.
    machine_open_seconds: int = Field(2, ge=0)


class EngineSection(Section):
    """Where ``winback score`` computes the facts: ``embedded`` in the store itself,
    ``duckdb`` in DuckDB over the workspace's columnar history (full runs; the history is
    brought up to date first), or ``spark`` on a Spark cluster (``master``) over the
    Parquet export of the event history that ``winback events export`` writes to
    ``events_path`` (a folder, relative to the workspace, or an object-store URL such as
    ``s3://bucket/history``)."""

    kind: Literal["embedded", "duckdb", "spark"] = "embedded"
    master: str = Field("local[*]", min_length=1)
    events_path: str = Field("history", min_length=1)


class CostSection(Section):
    currency: str = "EUR"
    email: float = Field(0.001, ge=0)
    sms: float = Field(0.045, ge=0)


class ResultsSection(Section):
    attribution_days: int = Field(7, ge=0, le=365)


class LinksSection(Section):
    utm: bool = True
    utm_source: str = Field("winback", min_length=1, max_length=100)


class EmailSection(Section):
    host: str = "127.0.0.1"
    port: int = Field(25, gt=0, lt=65536)
    username: str | None = None
    password: str | None = None
    tls: Literal["none", "starttls", "tls"] = "none"
    from_: str = Field("winback <news@example.com>", alias="from")
    reply_to: str | None = None
    unsubscribe_mailto: str | None = None
    rate_per_second: float = Field(50, gt=0)
    dispatch_batch: int = Field(100, ge=1, le=1000)
    dkim_domain: str | None = None
    dkim_selector: str | None = None
    dkim_key_file: str | None = None

    @model_validator(mode="after")
    def _dkim_all_or_nothing(self) -> EmailSection:
        settings = {
            "dkim_domain": self.dkim_domain,
            "dkim_selector": self.dkim_selector,
            "dkim_key_file": self.dkim_key_file,
        }
        missing = [key for key, value in settings.items() if not value]
        if missing and len(missing) < len(settings):
            raise KeyProblem(
                missing[0],
                "DKIM signing needs dkim_domain, dkim_selector and dkim_key_file together; "
                "set the missing ones or remove all",
            )
        return self


class SmsSection(Section):
    provider: Literal["file", "smsfactor"] = "file"
    sender: str = "WINBACK"
    stop_mention: str = "STOP au 36111"
    api_url: str = "https://api.smsfactor.com"
    api_token: str | None = None
    rate_per_second: float = Field(10, gt=0)
    dispatch_batch: int = Field(100, ge=1, le=1000)

    @field_validator("sender")
    @classmethod
    def _sender_name(cls, value: str) -> str:
        # Alphanumeric sender IDs: 3 to 11 ASCII letters or digits, not all digits (an
        # all-digit sender reads as a phone number), as French operators accept them.
        if not (3 <= len(value) <= 11 and value.isascii() and value.isalnum()):
            raise ValueError(
                f"{value!r} is not a sender name: use 3 to 11 letters or digits, "
                "without spaces or accents"
            )
        if value.isdigit():
            raise ValueError(f"{value!r} is not a sender name: it needs at least one letter")
        return value


class FrequencySection(Section):
    max_per_week: int = Field(3, ge=1)


class BouncesSection(Section):
    soft_limit: int = Field(3, ge=1)
    soft_window: Duration = timedelta(days=30)


class RetentionSection(Section):
    erase_after: Duration = timedelta(days=3 * 365)
    ask_before_erase: bool = False
    ask_ahead: Duration = timedelta(weeks=4)


class QuietHoursSection(Section):
    sms: bool = True
    email: bool = False
    start_hour: int = Field(8, ge=0, le=23)
    end_hour: int = Field(20, ge=1, le=24)


class ModelsSection(Section):
    kind: Literal["bgnbd", "pareto"] = "bgnbd"
    time_unit: Literal["days", "weeks"] = "weeks"
    horizon_months: int = Field(12, ge=1)
    monthly_discount_rate: float = Field(0.01, ge=0, lt=1)


class SimulateSection(Section):
    """Reaction rates ``winback simulate`` plays a journey against, per message sent
    (purchases per step wait), until fitted models give each contact their own."""

    email_open_rate: float = Field(0.20, ge=0, le=1)
    email_click_rate: float = Field(0.02, ge=0, le=1)
    sms_click_rate: float = Field(0.03, ge=0, le=1)
    sms_reply_rate: float = Field(0.005, ge=0, le=1)
    purchase_rate: float = Field(0.01, ge=0, le=1)
    unsubscribe_rate: float = Field(0.003, ge=0, le=1)
    offer_boost: float = Field(1.5, ge=0)


class WebSection(Section):
    """``winback serve``: the preference centre's choices, the bot-click rule, and the
    secrets that verify each ESP's event webhooks (a webhook whose secret is not set is
    refused). The brand name and colour of the pages are ``workspace.brand_name`` and
    ``workspace.brand_color``."""

    topics: list[str] = []
    pause: Duration = timedelta(days=91)
    bot_click_seconds: int = Field(10, ge=0)
    max_body_bytes: int = Field(2_000_000, gt=0)
    # A signed webhook whose signature time is further than this from the server's clock
    # is refused (Mailgun, SendGrid, SNS): a captured request cannot be played later.
    webhook_max_age: Duration = timedelta(days=1)
    mailgun_signing_key: str | None = None
    sendgrid_public_key: str | None = None
    # SendGrid's unsubscribe groups (``asm_group_id``) and the topic each one stands for:
    # a ``group_unsubscribe`` takes the person out of that topic only.
    sendgrid_groups: dict[str, str] = {}
    ses_certificate: str | None = None
    postmark_token: str | None = None
    brevo_token: str | None = None

    @model_validator(mode="after")
    def _groups_are_topics(self) -> WebSection:
        for group, topic in self.sendgrid_groups.items():
            if topic not in self.topics:
                raise KeyProblem(
                    "sendgrid_groups",
                    f"group {group} is mapped to {topic!r}, which is not one of web.topics",
                )
        return self


class Config(Section):
    """The whole workspace file. Every section is optional and has working defaults."""

    workspace: WorkspaceSection = WorkspaceSection()
    import_: ImportSection = Field(ImportSection(), alias="import")
    policy: PolicySection = Field(default_factory=lambda: PolicySection.model_validate({}))
    scoring: ScoringSection = ScoringSection()
    engine: EngineSection = EngineSection()
    cost: CostSection = CostSection()
    results: ResultsSection = ResultsSection()
    links: LinksSection = LinksSection()
    email: EmailSection = EmailSection()
    sms: SmsSection = SmsSection()
    frequency: FrequencySection = FrequencySection()
    bounces: BouncesSection = BouncesSection()
    retention: RetentionSection = RetentionSection()
    quiet_hours: QuietHoursSection = QuietHoursSection()
    models: ModelsSection = ModelsSection()
    simulate: SimulateSection = SimulateSection()
    web: WebSection = WebSection()

    @property
    def default_consent(self) -> ChannelStatus:
        return ChannelStatus(self.import_.default_consent)


def parse_config(data: dict[str, Any], source: str = CONFIG_FILE) -> Config:
    """Validate a parsed TOML document; errors name the file and the dotted key."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            loc = list(error["loc"])
            problem = error.get("ctx", {}).get("error")
            if isinstance(problem, KeyProblem):
                loc.append(problem.key)
            key = ".".join(str(part) for part in loc) or "(top level)"
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key (check its spelling against the commented winback.toml)"
            lines.append(f"{source}: {key}: {message}")
        raise ConfigError("\n".join(lines)) from None


def load_config(path: Path) -> Config:
    """Read and validate ``winback.toml``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such file; run `winback init {path.parent}` to create a workspace"
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, str(path))


def render_config(profile: Profile, name: str) -> str:
    """The commented ``winback.toml`` that ``winback init`` writes for a profile, from
    ``config_template.txt`` (every key, its default and its meaning: the reference pages
    are generated from it)."""
    policy = PROFILES[profile]
    activity = ", ".join(f'"{kind}"' for kind in policy["customer_activity"])
    protect = "true" if policy["protect_subscribers"] else "false"
    template = files("winback").joinpath("config_template.txt").read_text(encoding="utf-8")
    return template.format(
        name=name,
        profile=profile,
        activity=activity,
        at_risk=policy["at_risk_after"],
        dormant=policy["dormant_after"],
        lost=policy["lost_after"],
        protect=protect,
    )
