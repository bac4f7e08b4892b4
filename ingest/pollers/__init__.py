"""Pullers: what Twilio gives only by API (Call resources with price and queue time, Voice
Insights summaries, Usage records), read with the official SDK and published to the bus.

``build_puller(settings, bus, tenants)`` wires one from the settings; see :mod:`.puller` for the
schedule and :mod:`.resources` for the guarantees of each pull.
"""

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from ingest.pollers.api import Credentials, TwilioApi
from ingest.pollers.errors import PullError
from ingest.pollers.http import RetryPolicy
from ingest.pollers.metrics import PullMetrics
from ingest.pollers.progress import Progress, progress_for
from ingest.pollers.puller import Puller, Schedule, Subaccounts
from ingest.pollers.resources import PullConfig, PullContext
from ingest.pollers.store import PullStore
from ingest.server import HttpServerStage
from ingest.tenants import TenantRegistry, load_tenants
from voicepulse.bus import create_bus
from voicepulse.errors import ConfigError
from voicepulse.metrics import metrics_app
from voicepulse.settings import Settings
from voicepulse.types import Bus, Stage

__all__ = [
    "PullError",
    "PullMetrics",
    "Puller",
    "build_puller",
    "credentials_from",
    "progress_for",
    "pull_once",
    "pull_stages",
    "require_kafka",
]


def require_kafka(settings: Settings) -> None:
    """Refuse a pull on its own without Kafka: on the in-process bus nothing would read what it
    publishes, yet its state would record it as published, so a later run would find nothing
    new. ``voicepulse run`` runs the pullers beside the processors and the sink instead."""
    if not settings.kafka_bootstrap_servers:
        raise ConfigError(
            "without Kafka nothing would store what is pulled: run `voicepulse run` (the pullers "
            "with the processors and the sink, on the in-process bus), or set "
            "VOICEPULSE_KAFKA_BOOTSTRAP_SERVERS and run the processor and the sink on Kafka"
        )


def credentials_from(settings: Settings) -> Credentials:
    if settings.twilio_account_sid is None:
        raise ConfigError("set VOICEPULSE_TWILIO_ACCOUNT_SID (the parent account) to pull")
    credentials = Credentials(
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token,
        api_key_sid=settings.twilio_api_key_sid,
        api_key_secret=settings.twilio_api_key_secret,
        api_base_url=settings.twilio_api_base_url,
        insights_base_url=settings.twilio_insights_base_url,
    )
    credentials.check()
    return credentials


def build_puller(
    settings: Settings,
    bus: Bus,
    tenants: TenantRegistry | None,
    *,
    once: bool = False,
    progress: Progress | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Puller:
    """A pull stage from the settings; subaccounts from ``tenants`` or the Accounts API.
    ``clock`` (UTC now) is the wall clock unless given."""
    metrics = PullMetrics()
    policy = RetryPolicy(
        max_attempts=settings.pull_max_attempts,
        base_s=settings.pull_backoff_base_s,
        max_s=settings.pull_backoff_max_s,
    )
    api = TwilioApi(
        credentials_from(settings), metrics, policy, timeout_s=settings.pull_request_timeout_s
    )
    config = PullConfig(
        backfill_days=settings.pull_backfill_days,
        page_size=settings.pull_page_size,
        insights_page_size=settings.pull_insights_page_size,
        usage_categories=tuple(settings.pull_usage_categories),
        unrated_max_age=timedelta(hours=settings.pull_unrated_max_age_h),
        insights_lookback=timedelta(hours=settings.pull_insights_lookback_h),
    )
    store = PullStore(settings.pull_state_path)
    ctx = PullContext(api, bus, store, metrics, config, clock or _utc_now)
    schedule = Schedule(
        concurrency=settings.pull_concurrency,
        interval_s=settings.pull_interval_s,
        usage_interval_s=settings.pull_usage_interval_s,
        insights_retry_s=settings.pull_insights_retry_s,
        max_backoff_s=settings.pull_failing_backoff_max_s,
        rediscover_s=settings.pull_rediscover_interval_s,
    )
    source = _subaccounts(settings, api, tenants)
    return Puller(ctx, source, schedule, once=once, progress=progress)


def _subaccounts(settings: Settings, api: TwilioApi, tenants: TenantRegistry | None) -> Subaccounts:
    """The Accounts API; else ``tenants``; else the tenants file, read again on each call."""
    if settings.pull_discover_subaccounts:
        return api.subaccounts
    tenants_file = settings.tenants_file
    if tenants is None and tenants_file is None:
        raise ConfigError(
            "the pullers need subaccounts: set VOICEPULSE_TENANTS_FILE, or "
            "VOICEPULSE_PULL_DISCOVER_SUBACCOUNTS=true to list them with the Accounts API"
        )

    async def from_registry() -> Sequence[str]:
        registry = tenants
        if registry is None:
            assert tenants_file is not None
            registry = await asyncio.to_thread(load_tenants, tenants_file)
        return _children(registry, api.parent_sid)

    return from_registry


def _children(tenants: TenantRegistry, parent: str) -> list[str]:
    """The tenants that are subaccounts of ``parent`` (parents listed in the file are not)."""
    return [
        t.account_sid
        for t in tenants.values()
        if t.account_sid != parent
        and not t.fetch_subaccount_tokens
        and t.parent_account_sid in (None, parent)
    ]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def pull_stages(
    settings: Settings,
    bus: Bus,
    tenants: TenantRegistry | None,
    *,
    once: bool = False,
    progress: Progress | None = None,
) -> tuple[Puller, list[Stage]]:
    """The puller and the stages to run for it: itself, then its ``/metrics`` server."""
    puller = build_puller(settings, bus, tenants, once=once, progress=progress or progress_for())
    stages: list[Stage] = [puller]
    if settings.pull_metrics_port is not None:
        app = metrics_app(puller.metrics.registry)
        stages.append(
            HttpServerStage("pull-metrics", app, settings.host, settings.pull_metrics_port)
        )
    return puller, stages


async def pull_once(
    settings: Settings,
    tenants: TenantRegistry | None,
    *,
    namespace: str = "",
    clock: Callable[[], datetime] | None = None,
) -> Puller:
    """One pass over every subaccount, published to Kafka (:func:`require_kafka`); the puller,
    for its statuses."""
    require_kafka(settings)
    bus = create_bus(settings, namespace=namespace)
    puller = build_puller(settings, bus, tenants, once=True, progress=progress_for(), clock=clock)
    async with bus, puller:
        await puller.wait()
    return puller
