"""The receiver's Prometheus metrics, on a registry of its own (one per app)."""

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["ReceiverMetrics"]


class ReceiverMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "voicepulse_ingest_requests",
            "Webhook requests by route and outcome",
            ["route", "outcome"],
            registry=self.registry,
        )
        self.rejections = Counter(
            "voicepulse_ingest_rejections",
            "Rejected webhook requests by reason",
            ["reason"],
            registry=self.registry,
        )
        self.publish_seconds = Histogram(
            "voicepulse_ingest_publish_seconds",
            "Time to make one event durable on the bus",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
