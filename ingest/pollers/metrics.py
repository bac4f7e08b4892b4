"""The pollers' Prometheus metrics, on a registry of their own (served by
:func:`voicepulse.metrics.metrics_app`)."""

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["STATUSES", "PullMetrics"]

STATUSES: Final = ("ok", "failing", "insights_unavailable")
"""Per subaccount and resource: pulled fine last time, failing (retried with backoff), or
Insights refused for want of Advanced Features (retried rarely)."""


class PullMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.responses = Counter(
            "voicepulse_pull_http_responses",
            "Twilio REST answers by status class (2xx, 4xx, 429, 5xx, error)",
            ["status"],
            registry=self.registry,
        )
        self.retries = Counter(
            "voicepulse_pull_retries",
            "Requests retried after a backoff, by reason (429, 5xx, network)",
            ["reason"],
            registry=self.registry,
        )
        self.published = Counter(
            "voicepulse_pull_published",
            "Envelopes published by resource (calls, insights, usage)",
            ["resource"],
            registry=self.registry,
        )
        self.status = Gauge(
            "voicepulse_pull_status",
            "1 for the current pull status of a subaccount and resource",
            ["account_sid", "resource", "status"],
            registry=self.registry,
        )
        self.last_success = Gauge(
            "voicepulse_pull_last_success_timestamp_seconds",
            "When a subaccount's resource was last pulled completely",
            ["account_sid", "resource"],
            registry=self.registry,
        )
        self.pending = Gauge(
            "voicepulse_pull_pending",
            "Items still re-fetched: unrated or unfinished calls, partial summaries",
            ["resource"],
            registry=self.registry,
        )

    def set_status(self, account_sid: str, resource: str, status: str) -> None:
        for name in STATUSES:
            self.status.labels(account_sid, resource, name).set(1 if name == status else 0)
