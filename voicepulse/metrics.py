"""Prometheus metrics of the consuming stages (the processor, the sink), and the ``/metrics`` app.

One :class:`StageMetrics` per process holds the families, labelled by ``stage``; each stage
counts into its own :class:`StageCounters`, once per batch (never per record). The names are
listed in docs/operations.md. No label carries an unbounded value: ``stage`` is a fixed set,
``topic`` and ``partition`` those of the stage's inputs.
"""

from collections.abc import Iterator
from typing import Any, Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from voicepulse.types import TopicPartition

__all__ = ["BATCH_BUCKETS", "SECONDS_BUCKETS", "StageCounters", "StageMetrics", "metrics_app"]

BATCH_BUCKETS: Final = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 50_000)
"""Upper bounds of the batch-size histograms (records or rows)."""
SECONDS_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class StageCounters:
    """What one consuming stage counts; every method is called once per batch."""

    __slots__ = (
        "_batch",
        "_commit",
        "_commits",
        "_dead",
        "_flush",
        "_flush_rows",
        "_records",
        "_recoveries",
        "lag",
    )

    def __init__(self, metrics: "StageMetrics", stage: str) -> None:
        self._records = metrics.records.labels(stage)
        self._batch = metrics.batch_records.labels(stage)
        self._commits = metrics.commits.labels(stage)
        self._commit = metrics.commit_seconds.labels(stage)
        self._dead = metrics.dead_letters.labels(stage)
        self._recoveries = metrics.recoveries.labels(stage)
        self._flush = metrics.flush_seconds.labels(stage)
        self._flush_rows = metrics.flush_rows.labels(stage)
        self.lag: dict[TopicPartition, int] = {}
        """Per assigned input partition: records after the stage's position (end - position)."""

    def batch(self, records: int) -> None:
        """A polled batch of ``records`` handed to the stage's handler."""
        self._records.inc(records)
        self._batch.observe(records)

    def committed(self, seconds: float) -> None:
        """A commit (offsets, or a transaction with its offsets) that took ``seconds``."""
        self._commits.inc()
        self._commit.observe(seconds)

    def flushed(self, rows: int, seconds: float) -> None:
        """A batch of ``rows`` written downstream (the sink: one DuckLake transaction)."""
        self._flush.observe(seconds)
        self._flush_rows.observe(rows)

    def dead_lettered(self, records: int) -> None:
        if records:
            self._dead.inc(records)

    def recovered(self) -> None:
        self._recoveries.inc()


class StageMetrics(Collector):
    """The consuming stages' families on ``registry`` (one per process: ``voicepulse run``
    serves every stage's on one ``/metrics``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry = registry or CollectorRegistry()
        self._stages: dict[str, StageCounters] = {}
        self.records = Counter(
            "voicepulse_stage_records",
            "Input records handed to the stage",
            ["stage"],
            registry=registry,
        )
        self.batch_records = Histogram(
            "voicepulse_stage_batch_records",
            "Records per polled batch",
            ["stage"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.commits = Counter(
            "voicepulse_stage_commits",
            "Commits: Kafka transactions (processor on Kafka), else consumer offset commits",
            ["stage"],
            registry=registry,
        )
        self.commit_seconds = Histogram(
            "voicepulse_stage_commit_seconds",
            "Time to commit one transaction or offsets",
            ["stage"],
            buckets=SECONDS_BUCKETS,
            registry=registry,
        )
        self.dead_letters = Counter(
            "voicepulse_stage_dead_letters",
            "Input records sent to the dead-letter topic",
            ["stage"],
            registry=registry,
        )
        self.recoveries = Counter(
            "voicepulse_stage_recoveries",
            "Failed transactions recovered from (state restored, consumer rewound)",
            ["stage"],
            registry=registry,
        )
        self.flush_seconds = Histogram(
            "voicepulse_stage_flush_seconds",
            "Time to write one batch downstream (the sink: one DuckLake transaction)",
            ["stage"],
            buckets=SECONDS_BUCKETS,
            registry=registry,
        )
        self.flush_rows = Histogram(
            "voicepulse_stage_flush_rows",
            "Rows per batch written downstream (its _sum: rows written)",
            ["stage"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        registry.register(self)

    def stage(self, name: str) -> StageCounters:
        """The counters of stage ``name`` (the same object for the same name)."""
        counters = self._stages.get(name)
        if counters is None:
            counters = self._stages[name] = StageCounters(self, name)
        return counters

    def collect(self) -> Iterator[Any]:
        lag = GaugeMetricFamily(
            "voicepulse_stage_consumer_lag",
            "Records on an assigned input partition after the stage's position (end - position)",
            labels=["stage", "topic", "partition"],
        )
        for name, counters in sorted(self._stages.items()):
            for tp, behind in sorted(
                counters.lag.items(), key=lambda i: (i[0].topic, i[0].partition)
            ):
                lag.add_metric([name, tp.topic, str(tp.partition)], float(behind))
        yield lag


def metrics_app(registry: CollectorRegistry) -> Starlette:
    """``GET /metrics`` (Prometheus text format) of ``registry``, and ``GET /healthz``."""

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/metrics", metrics), Route("/healthz", healthz)])
