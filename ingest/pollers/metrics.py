"""The pollers' Prometheus metrics, on a registry of their own, and the app that serves them."""

from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

__all__ = ["STATUSES", "PullMetrics", "metrics_app"]

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


def metrics_app(metrics: PullMetrics) -> Starlette:
    """``GET /metrics`` (Prometheus text format) and ``GET /healthz`` for ``voicepulse pull``."""

    async def serve_metrics(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/metrics", serve_metrics), Route("/healthz", healthz)])
