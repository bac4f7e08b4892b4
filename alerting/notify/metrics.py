"""The notifiers' Prometheus counters (served by ``voicepulse alert`` on its metrics port)."""

from prometheus_client import CollectorRegistry, Counter

__all__ = ["NotifierMetrics"]


class NotifierMetrics:
    """Counters labelled by notifier (``alertmanager``, ``webhook``); no unbounded labels."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.notifications = Counter(
            "voicepulse_alert_notifications",
            "Alert state changes by notifier and outcome: delivered, silenced, rejected, "
            "superseded (a later change of the same alert was already known)",
            ["notifier", "outcome"],
            registry=registry,
        )
        self.failures = Counter(
            "voicepulse_alert_notifier_failures",
            "Delivery attempts that failed and will be retried (no answer, 5xx, 429)",
            ["notifier"],
            registry=registry,
        )
        self.bad_records = Counter(
            "voicepulse_alert_notifier_bad_records",
            "Records on voicepulse.alerts that are not a readable alert change (skipped)",
            ["notifier"],
            registry=registry,
        )
        self.resends = Counter(
            "voicepulse_alert_resends",
            "Re-sends of the firing alerts to Alertmanager, by outcome (delivered, failed)",
            ["outcome"],
            registry=registry,
        )
