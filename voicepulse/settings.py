"""Settings: one frozen, validated object, built once at the entry point and passed down.

Sources, strongest first: arguments given by the CLI, environment variables (prefix
``VOICEPULSE_``), a TOML config file (``--config`` or ``VOICEPULSE_CONFIG``), the defaults.
The environment is read here and nowhere else.
"""

import ipaddress
import logging
import os
from contextvars import ContextVar
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from voicepulse.errors import ConfigError
from voicepulse.messages import VOICE_USAGE_CATEGORIES
from voicepulse.runtime import DEFAULT_GC_YOUNG_THRESHOLD

__all__ = ["Settings", "demo_tenants_path", "load_settings"]

logger = logging.getLogger(__name__)

CONFIG_ENV = "VOICEPULSE_CONFIG"
_config_file: ContextVar[Path | None] = ContextVar("voicepulse_config_file", default=None)


class Settings(BaseSettings):
    """Everything a VoicePulse process can be told (docs/operations.md, "Configuration")."""

    model_config = SettingsConfigDict(
        env_prefix="VOICEPULSE_", frozen=True, extra="forbid", populate_by_name=True
    )

    # The bus. No bootstrap servers: the in-process bus (the embedded default).
    kafka_bootstrap_servers: str | None = None
    kafka_topic_partitions: int = Field(default=6, ge=1)
    kafka_replication_factor: int = Field(default=1, ge=1)
    kafka_client_id: str = "voicepulse"
    kafka_publish_timeout_s: float = Field(
        default=2.0,
        gt=0,
        description="the receiver's deadline: an event Kafka has not acknowledged by then is "
        "spooled locally (and answered 2xx once fsynced)",
    )
    kafka_delivery_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="how long any stage's publish waits for Kafka's acknowledgement before it "
        "fails (the producer's request timeout)",
    )
    kafka_namespace: str = Field(
        default="", description="prefix of every topic and group name (several setups, one cluster)"
    )

    # The warehouse: a DuckLake catalog plus Parquet files under the data directory.
    data_dir: Path = Path("data")
    catalog: str | None = Field(
        default=None,
        description="DuckLake catalog: sqlite:PATH or a postgresql:// URL; "
        "default: a SQLite file under data_dir",
    )

    warehouse_data_path: str | None = Field(
        default=None,
        description="where the lake's Parquet files are, when not data_dir/lake: a directory "
        "every writer and reader names alike; overrides the path a catalog stored",
    )

    # Object storage for the lake's files (warehouse_data_path s3://bucket/prefix/): the usual
    # AWS variables, or VOICEPULSE_S3_*; unset, DuckDB's own stored secrets apply.
    s3_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "s3_endpoint", "VOICEPULSE_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"
        ),
        description="an S3-compatible server's URL, e.g. http://127.0.0.1:8333 (path-style)",
    )
    s3_region: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "s3_region", "VOICEPULSE_S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"
        ),
    )
    s3_access_key_id: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "s3_access_key_id", "VOICEPULSE_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"
        ),
    )
    s3_secret_access_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "s3_secret_access_key", "VOICEPULSE_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"
        ),
    )
    s3_session_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "s3_session_token", "VOICEPULSE_S3_SESSION_TOKEN", "AWS_SESSION_TOKEN"
        ),
    )

    # The receiver.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    serve_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="receiver processes answering on the port (voicepulse serve --workers)",
    )
    public_base_url: str | None = Field(
        default=None,
        description="the scheme and host Twilio calls, e.g. https://voice.example.com; "
        "default: the request's own scheme and Host header",
    )
    max_body_bytes: int = Field(default=64 * 1024, gt=0)
    tenants_file: Path | None = None
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses or networks (CIDR) of proxies whose Forwarded and "
        "X-Forwarded-* headers are believed; ignored when public_base_url is set",
    )
    webhook_shared_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="shared-key id -> secret, for X-Twilio-Webhooks-Signature-Settings",
    )
    ingest_api_key_sha256: list[str] = Field(
        default_factory=list,
        description="hex SHA-256 of each API key accepted on POST /v1/calls (bearer token)",
    )
    spool_max_bytes: int = Field(default=1024**3, gt=0)
    spool_segment_bytes: int = Field(default=8 * 1024**2, gt=0)
    tenants_reload_interval_s: float = Field(default=2.0, gt=0)
    twilio_api_base_url: str = "https://api.twilio.com"
    token_refresh_interval_s: float = Field(default=60.0, ge=0)

    # Processors (event-time windows; seconds). See docs/metrics.md, "Event time".
    processor_grace_s: int = Field(default=120, ge=0)
    processor_call_timeout_s: int = Field(default=4 * 3600, gt=0)
    processor_horizon_s: int = Field(default=3600, gt=0)
    processor_wall_clock_lag_s: float | None = Field(
        default=10.0,
        ge=0,
        description="idle windows close when the wall clock minus this passes their end plus "
        "the grace; None: only event time closes windows (replays of old traffic)",
    )
    event_time_tolerance_s: int = Field(
        default=30,
        ge=0,
        description="how far after its receipt an event may be stamped: the receiver flags an "
        "event stamped later (timestamp_in_future), the processor counts it at its receipt; "
        "at most half the grace",
    )
    processor_instance_id: str = Field(
        default="0", description="unique per processor process in one group (transactional id)"
    )
    processor_max_records: int = Field(
        default=5000,
        gt=0,
        description="records per poll of the Kafka processor; each poll is one transaction "
        "(outputs, changelog and offsets), so larger polls commit less often per record",
    )
    processor_metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="`voicepulse process`'s /metrics on host (in `voicepulse run`, that of the "
        "processor and the sink together); unset: none",
    )
    isv_cps_limit: float = Field(default=1.0, gt=0)
    gc_young_threshold: int = Field(
        default=DEFAULT_GC_YOUNG_THRESHOLD,
        ge=0,
        description="container allocations between young garbage collections in long-running "
        "commands, start-up objects frozen (voicepulse.runtime); 0: Python's defaults",
    )

    # Sink.
    sink_flush_interval_s: float = Field(default=1.0, gt=0)
    sink_batch_size: int = Field(default=50_000, gt=0)
    sink_metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="`voicepulse sink`'s /metrics on host (in `voicepulse run`: used when "
        "processor_metrics_port is unset); unset: none",
    )

    # The warehouse: catalog upkeep, billing and reconciliation (see warehouse/).
    warehouse_maintenance_interval_s: float = Field(default=600.0, gt=0)
    warehouse_snapshot_retention_s: float = Field(default=3600.0, ge=0)
    warehouse_writer_threads: int = Field(
        default=1,
        gt=0,
        description="DuckDB threads of the sink's connection: one writes a batch fastest",
    )
    warehouse_inline_row_limit: int = Field(
        default=0, ge=0, description="DuckLake data inlining: batches up to this many rows"
    )
    billing_rate_card_file: Path | None = Field(
        default=None, description="TOML rate card for calls Twilio has not rated yet"
    )
    billing_default_rate_per_minute: Decimal = Field(default=Decimal("0.0140"), ge=0)
    billing_currency: str = "USD"
    reconciliation_tolerance_minutes: Decimal = Field(default=Decimal("1"), ge=0)
    reconciliation_tolerance_cost: Decimal = Field(default=Decimal("0.01"), ge=0)

    # `voicepulse run`: demo tenants and simulated traffic. Unset: on when no tenants file is set.
    demo: bool | None = None
    demo_calls_per_second: float = Field(default=4.0, gt=0)

    # The pullers (`voicepulse pull`, and inside `run` when credentials are set): Twilio's REST
    # APIs read with the parent account's auth token or an API key.
    twilio_account_sid: str | None = Field(default=None, pattern=r"^AC[0-9a-fA-F]{32}$")
    twilio_auth_token: SecretStr | None = None
    twilio_api_key_sid: str | None = Field(default=None, pattern=r"^SK[0-9a-fA-F]{32}$")
    twilio_api_key_secret: SecretStr | None = None
    # twilio_api_base_url (above) is where the Api v2010 requests go (a fake Twilio in tests).
    twilio_insights_base_url: str | None = Field(
        default=None, description="instead of https://insights.twilio.com"
    )
    pull_discover_subaccounts: bool = Field(
        default=False, description="list subaccounts with the Accounts API, not the tenants file"
    )
    pull_concurrency: int = Field(default=4, ge=1, le=64)
    pull_interval_s: float = Field(default=60.0, gt=0)
    pull_usage_interval_s: float = Field(default=3600.0, gt=0)
    pull_backfill_days: int = Field(default=3, ge=0, le=29)
    pull_page_size: int = Field(default=200, ge=1, le=1000)
    pull_insights_page_size: int = Field(default=1000, ge=1, le=1000)
    pull_insights_retry_s: float = Field(
        default=3600.0, gt=0, description="how often Insights is tried again once refused"
    )
    pull_usage_categories: list[str] = Field(default_factory=lambda: [*VOICE_USAGE_CATEGORIES])
    pull_unrated_max_age_h: float = Field(default=48.0, gt=0)
    pull_insights_lookback_h: float = Field(default=4.0, gt=0)
    pull_max_attempts: int = Field(default=6, ge=1)
    pull_backoff_base_s: float = Field(default=0.5, gt=0)
    pull_backoff_max_s: float = Field(default=60.0, gt=0)
    pull_request_timeout_s: float = Field(default=30.0, gt=0)
    pull_rediscover_interval_s: float = Field(
        default=300.0, gt=0, description="how often the subaccounts are listed again"
    )
    pull_failing_backoff_max_s: float = Field(
        default=900.0, gt=0, description="longest wait before a failing subaccount is tried again"
    )
    pull_state_file: Path | None = Field(
        default=None, description="cursors and published digests; default data_dir/pull.sqlite"
    )
    pull_metrics_port: int | None = Field(
        default=9108, ge=0, le=65535, description="the pullers' /metrics on host; unset: none"
    )

    # The alert stage (`voicepulse alert`; see docs/alerting.md).
    alert_rules_file: Path | None = Field(
        default=None,
        description="TOML alert rules read over the defaults "
        "(`voicepulse alert --print-default-rules`)",
    )
    alert_instance_id: str = Field(
        default="0", description="unique per alert-stage process in one group (transactional id)"
    )

    # Alert notifiers (`voicepulse alert`; see docs/alerting.md).
    alert_alertmanager_urls: list[str] = Field(
        default_factory=list,
        description='Alertmanager base URLs (JSON list), e.g. ["http://127.0.0.1:9093"]; '
        "every one gets every alert",
    )
    alert_webhook_url: str | None = Field(default=None, description="signed webhook receiver")
    alert_webhook_secret: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 key of X-VoicePulse-Signature (json format: needed)"
    )
    alert_webhook_format: Literal["json", "slack"] = "json"
    alert_resend_interval_s: float = Field(
        default=60.0, gt=0, description="firing alerts are re-sent to Alertmanager this often"
    )
    alert_notify_timeout_s: float = Field(default=10.0, gt=0)
    alert_notify_backoff_max_s: float = Field(
        default=30.0, gt=0, description="longest wait between two tries of a failed delivery"
    )
    alert_metrics_port: int | None = Field(
        default=9109,
        ge=0,
        le=65535,
        description="`voicepulse alert`'s /metrics on host; unset: none",
    )
    dashboard_url: str | None = Field(
        default=None,
        description="the dashboard's public base URL, for links in notifications (generatorURL)",
    )
    # The dashboard and its JSON API (`voicepulse dashboard`, and inside `run`).
    admin_token: SecretStr | None = Field(
        default=None, description="one more operator token for the dashboard, besides stored ones"
    )
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = Field(default=8080, ge=0, le=65535)
    dashboard_cache_ttl_s: float = Field(
        default=5.0, ge=0, description="how long the dashboard reuses a warehouse answer"
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("public_base_url", "dashboard_url", "alert_webhook_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("alert_alertmanager_urls")
    @classmethod
    def _http_urls(cls, value: list[str]) -> list[str]:
        return [cls._strip_trailing_slash(url) or "" for url in value]

    @model_validator(mode="after")
    def _tolerance_under_grace(self) -> "Settings":
        # Stream time may run this far ahead of an on-time event of another subaccount: well
        # under the grace, or that event would be late.
        if 2 * self.event_time_tolerance_s > self.processor_grace_s:
            raise ValueError("event_time_tolerance_s must be at most half processor_grace_s")
        return self

    @model_validator(mode="after")
    def _webhook_signed(self) -> "Settings":
        json_hook = self.alert_webhook_url and self.alert_webhook_format == "json"
        if json_hook and self.alert_webhook_secret is None:
            raise ValueError("alert_webhook_url in json format needs alert_webhook_secret")
        return self

    @field_validator("ingest_api_key_sha256")
    @classmethod
    def _hex_digests(cls, value: list[str]) -> list[str]:
        digests = [digest.strip().lower() for digest in value]
        for digest in digests:
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError("each entry must be the hex SHA-256 of an API key (64 digits)")
        return digests

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for proxy in value:
            ipaddress.ip_network(proxy, strict=False)
        return value

    @property
    def spool_dir(self) -> Path:
        """Where the receiver spools events that Kafka did not acknowledge in time."""
        return self.data_dir / "spool"

    @property
    def uses_kafka(self) -> bool:
        return bool(self.kafka_bootstrap_servers)

    @property
    def demo_enabled(self) -> bool:
        return self.demo if self.demo is not None else self.tenants_file is None

    @property
    def catalog_path(self) -> str:
        """The DuckLake catalog as DuckLake's ATTACH takes it (after ``ducklake:``)."""
        if self.catalog:
            return self.catalog
        return f"sqlite:{self.data_dir / 'catalog.sqlite'}"

    @property
    def twilio_configured(self) -> bool:
        """Parent credentials are set (auth token or API key): the pullers can run."""
        has_key = self.twilio_api_key_sid is not None and self.twilio_api_key_secret is not None
        return self.twilio_account_sid is not None and (
            self.twilio_auth_token is not None or has_key
        )

    @property
    def pull_state_path(self) -> Path:
        return self.pull_state_file or self.data_dir / "pull.sqlite"

    @property
    def parquet_dir(self) -> Path:
        return self.data_dir / "lake"

    def masked(self) -> dict[str, Any]:
        """The effective settings for the start-up log: secrets shown as ``**********``."""
        shown = self.model_dump(mode="json")
        for name, value in self:
            if isinstance(value, SecretStr):
                shown[name] = "**********"
        return shown

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config = _config_file.get() or os.environ.get(CONFIG_ENV)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config)))
        return tuple(sources)


def demo_tenants_path() -> Path:
    """The demo tenants file that ships with VoicePulse."""
    return Path(str(resources.files("voicepulse").joinpath("demo/tenants.toml")))


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings once, from ``overrides`` (CLI), the environment and a config file."""
    config_file = config_file or _env_config_file()
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"config file not found: {config_file}")
    given = {name: value for name, value in overrides.items() if value is not None}
    token = _config_file.set(config_file)
    try:
        return Settings(**given)
    finally:
        _config_file.reset(token)


def _env_config_file() -> Path | None:
    value = os.environ.get(CONFIG_ENV)
    return Path(value) if value else None
