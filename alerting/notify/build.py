"""Wiring the notifiers from the settings (called by the composition root)."""

from collections.abc import Mapping

from prometheus_client import CollectorRegistry

from alerting.notify.alertmanager import AlertmanagerNotifier, AlertmanagerResender
from alerting.notify.delivery import Backoff, NotifierStage
from alerting.notify.firing import FiringSet, FiringTracker
from alerting.notify.labels import Describer
from alerting.notify.metrics import NotifierMetrics
from alerting.notify.webhook import WebhookNotifier
from alerting.silences import SilenceStore
from voicepulse.settings import Settings
from voicepulse.types import Bus, Stage

__all__ = ["build_dispatcher"]


def build_dispatcher(
    settings: Settings,
    bus: Bus,
    *,
    tenant_names: Mapping[str, str],
    registry: CollectorRegistry,
    silences: SilenceStore | None = None,
) -> list[Stage]:
    """The stages that tell Alertmanager and the webhook about alert state changes: one
    consumer group per configured notifier, plus the Alertmanager re-sender. None configured:
    no stages (the alert history is still written by the sink)."""
    describer = Describer(tenant_names, settings.dashboard_url)
    silences = silences or SilenceStore.in_data_dir(settings.data_dir)
    metrics = NotifierMetrics(registry)
    backoff = Backoff(max_s=settings.alert_notify_backoff_max_s)
    stages: list[Stage] = []
    if settings.alert_alertmanager_urls:
        firing = FiringSet()
        notifier = AlertmanagerNotifier(
            settings.alert_alertmanager_urls,
            describer,
            firing,
            metrics=metrics,
            resend_interval_s=settings.alert_resend_interval_s,
            timeout_s=settings.alert_notify_timeout_s,
        )
        resender = AlertmanagerResender(
            notifier, firing, silences, metrics, interval_s=settings.alert_resend_interval_s
        )
        tracker = FiringTracker(
            "notify-alertmanager-firing", bus, firing, "voicepulse-notify-alertmanager-state"
        )
        # Stopped in list order: the re-sender first, then the delivery it shares a client with.
        stages += [resender, tracker, NotifierStage(bus, notifier, silences, metrics, backoff)]
    if settings.alert_webhook_url:
        webhook = WebhookNotifier(
            settings.alert_webhook_url,
            settings.alert_webhook_secret,
            describer,
            format=settings.alert_webhook_format,
            timeout_s=settings.alert_notify_timeout_s,
        )
        stages.append(NotifierStage(bus, webhook, silences, metrics, backoff))
    return stages
