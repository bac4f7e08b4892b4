"""Prometheus metrics of ``voicepulse alert``: subaccount health and the alerts that fire.

From the closed windows on ``voicepulse.health`` (rows whose ``closed`` is true), per
``account_sid`` (a subaccount, or ``ISV``) and ``direction_group``:

- gauges of the last closed window: ``voicepulse_health_asr_ratio``,
  ``voicepulse_health_acd_seconds``, ``voicepulse_health_short_call_ratio``,
  ``voicepulse_health_queue_time_p95_seconds``, ``voicepulse_health_cps_utilisation_ratio``,
  ``voicepulse_health_window_end_timestamp_seconds``;
- over the closed windows of the 15 minutes up to the last one's end (the span of the default
  ``caller_id_repetitive``; the calls of each From number merged over it, which counters
  labelled by number could not give without a label per number):
  ``voicepulse_health_caller_id_top_share_15m_ratio`` (the most used From number's share) and
  ``voicepulse_health_caller_id_calls_15m`` (the calls it stands on);
- counters summed over every closed window since the start (each window counted once), from
  which Prometheus rolls up any span exactly as the alert rules do
  (``alerting/prometheus/voicepulse-rules.yml``): ``voicepulse_health_{attempts, answered,
  talk_seconds, short_calls, calls_created, trunk_cps_rejections, debugger_errors,
  cps_saturated_seconds}_total``, ``voicepulse_health_attestation_total{attestation}``, and the
  QueueTime histogram ``voicepulse_health_queue_time_seconds``;

and ``voicepulse_alerts_firing{account_sid, rule, direction_group, severity}``, 1 per firing
alert, from ``voicepulse.alerts`` read from its start (so it is whole after a restart).

The counters start again from zero when the stage restarts (Prometheus' ``increase`` and
``rate`` take that in their stride); the gauges fill again as the next windows close.
"""

import bisect
import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from alerting.notify.firing import FiringSet, FiringTracker
from ingest.server import HttpServerStage
from processors.sketch import bucket_value
from voicepulse import topics
from voicepulse.envelope import Envelope
from voicepulse.errors import BadMessage
from voicepulse.metrics import metrics_app
from voicepulse.settings import Settings
from voicepulse.stage import ConsumerStage
from voicepulse.types import Bus, Record, Stage

__all__ = ["CPS_SATURATION_LEVEL", "QUEUE_TIME_BUCKETS_S", "HealthExporter", "build_metrics"]

logger = logging.getLogger(__name__)

HEALTH_TYPE: Final = "health-minute"
METRICS_GROUP: Final = "voicepulse-alert-metrics"
CPS_SATURATION_LEVEL: Final = 0.9
"""A second is saturated when its calls created reach this share of the CPS limit."""
QUEUE_TIME_BUCKETS_S: Final = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0)
"""Upper bounds of the QueueTime histogram; 5 s, the default rule's limit, is one of them."""

_GAUGES: Final = (
    ("asr_ratio", "asr", 1.0, "Answer-seizure ratio of the last closed window"),
    ("acd_seconds", "acd_s", 1.0, "Average call duration of answered calls, last closed window"),
    ("short_call_ratio", "short_call_ratio", 1.0, "Answered calls of 12 s or less / answered"),
    ("queue_time_p95_seconds", "queue_time_p95_ms", 1000.0, "QueueTime p95, last closed window"),
    ("cps_utilisation_ratio", "cps_utilisation", 1.0, "Peak calls per second / CPS limit"),
    ("caller_id_top_share_15m_ratio", "caller_id_top_share_15m", 1.0,
     "Most used From number's share of the calls, closed windows of the last 15 min"),
    ("caller_id_calls_15m", "caller_id_calls_15m", 1.0,
     "Calls by From number, closed windows of the last 15 min"),
)  # fmt: skip
CALLER_ID_SPAN_S: Final = 900
"""The span of the caller ID gauges: the default ``caller_id_repetitive`` rule's."""
_COUNTERS: Final = (
    ("attempts", "Calls that reached a terminal status"),
    ("answered", "Answered calls"),
    ("talk_seconds", "Sum of CallDuration of answered calls"),
    ("short_calls", "Answered calls of 12 s or less"),
    ("calls_created", "Calls created"),
    ("trunk_cps_rejections", "Outbound calls refused for CPS (SIP 503, 32001, 32012)"),
    ("debugger_errors", "Error-level debugger events"),
    ("cps_saturated_seconds", "Seconds whose calls created reached 90 % of the CPS limit"),
)
_STATUSES: Final = ("completed", "busy", "no_answer", "failed", "canceled")
_ATTESTATIONS: Final = ("A", "B", "C", "failed", "none")
_ROW_COUNTS: Final = (
    "answered", "talk_seconds", "short_calls", "calls_created", "trunk_cps_rejections",
)  # fmt: skip

Series = tuple[str, str]  # (account_sid, direction_group)


class _Window:
    """What one series keeps: its last closed window's gauges and its running sums."""

    __slots__ = (
        "attestation", "callers", "end", "gauges", "last_start", "queue_buckets", "queue_sum",
        "sums",
    )  # fmt: skip

    def __init__(self) -> None:
        self.last_start = ""
        self.end = 0.0
        self.gauges: dict[str, float | None] = {}
        self.sums = dict.fromkeys((name for name, _ in _COUNTERS), 0.0)
        self.attestation = dict.fromkeys(_ATTESTATIONS, 0.0)  # every grade, so shares divide
        self.queue_buckets = [0] * (len(QUEUE_TIME_BUCKETS_S) + 1)  # the last one: +Inf
        self.queue_sum = 0.0
        self.callers: dict[float, dict[str, int]] = {}  # window start -> calls by From number

    def add(self, row: Mapping[str, Any]) -> None:
        """Count one closed window; a row that cannot be read raises and changes nothing."""
        end = datetime.fromisoformat(row["window_end"]).timestamp()
        floor = CPS_SATURATION_LEVEL * float(row["cps_limit"])
        deltas = {
            "attempts": sum(int(row[status]) for status in _STATUSES),
            **{name: int(row[name]) for name in _ROW_COUNTS},
            "debugger_errors": sum(row["debugger_errors"].values()),
            "cps_saturated_seconds": sum(1 for n in row["cps_per_second"] if n and n >= floor),
        }
        attestation = {str(grade): float(count) for grade, count in row["attestation"].items()}
        queue = [0] * len(self.queue_buckets)
        for index, count in row["queue_time_hist"].items():
            seconds = bucket_value(int(index)) / 1000
            queue[bisect.bisect_left(QUEUE_TIME_BUCKETS_S, seconds)] += int(count)
        queue_sum = int(row["queue_time_sum_ms"]) / 1000
        start = datetime.fromisoformat(row["window_start"]).timestamp()
        callers = {str(number): int(count) for number, count in row["from_numbers"].items()}
        # Read whole: now apply.
        self.last_start, self.end = row["window_start"], end
        self.gauges = {field: row.get(field) for _, field, _, _ in _GAUGES}
        for name, delta in deltas.items():
            self.sums[name] += delta
        for grade, count in attestation.items():
            self.attestation[grade] = self.attestation.get(grade, 0.0) + count
        self.queue_buckets = [a + b for a, b in zip(self.queue_buckets, queue, strict=True)]
        self.queue_sum += queue_sum
        self.callers[start] = callers
        for old in [old for old in self.callers if old < end - CALLER_ID_SPAN_S]:
            del self.callers[old]
        merged: dict[str, int] = {}
        for counts in self.callers.values():
            for number, count in counts.items():
                merged[number] = merged.get(number, 0) + count
        calls = sum(merged.values())
        self.gauges["caller_id_calls_15m"] = calls
        self.gauges["caller_id_top_share_15m"] = max(merged.values()) / calls if calls else None


class HealthExporter(Collector):
    """A :class:`voicepulse.stage.Handler` of ``voicepulse.health``, and the collector that
    turns what it read into metrics at each scrape."""

    def __init__(self, firing: FiringSet, tenant_names: Mapping[str, str]) -> None:
        self._firing = firing
        self._names = tenant_names
        self._series: dict[Series, _Window] = {}
        self.windows = 0

    async def handle(self, records: Sequence[Record]) -> bool:
        for record in records:
            try:
                envelope = Envelope.from_json(record.value)
            except BadMessage:
                continue  # the sink dead-letters it; here it has nothing to show
            if envelope.type == HEALTH_TYPE and envelope.fields.get("closed") is True:
                self._add(envelope)
        return True  # nothing here is owed downstream: the metrics live in memory

    async def flush(self) -> None:
        return None

    def _add(self, envelope: Envelope) -> None:
        row = envelope.fields
        window = self._series.setdefault((envelope.account_sid, row["direction_group"]), _Window())
        if row["window_start"] <= window.last_start:
            return  # a window already counted (a replay, or a late event's update)
        try:
            window.add(row)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            logger.warning("health row %s not shown in the metrics: %r", envelope.id, exc)
            return
        self.windows += 1

    def collect(self) -> Iterator[Any]:
        labels = ["account_sid", "tenant", "direction_group"]
        series = sorted(self._series.items())
        for name, field, divisor, text in _GAUGES:
            gauge = GaugeMetricFamily(f"voicepulse_health_{name}", text, labels=labels)
            for key, window in series:
                if (value := window.gauges.get(field)) is not None:
                    gauge.add_metric(self._labels(key), float(value) / divisor)
            yield gauge
        end = GaugeMetricFamily(
            "voicepulse_health_window_end_timestamp_seconds",
            "End of the last closed window (Unix time)",
            labels=labels,
        )
        for key, window in series:
            end.add_metric(self._labels(key), window.end)
        yield end
        yield from self._counters(labels, series)
        yield self._firing_gauge()

    def _counters(self, labels: list[str], series: list[tuple[Series, _Window]]) -> Iterator[Any]:
        for name, text in _COUNTERS:
            counter = CounterMetricFamily(f"voicepulse_health_{name}", text, labels=labels)
            for key, window in series:
                counter.add_metric(self._labels(key), window.sums[name])
            yield counter
        mix = CounterMetricFamily(
            "voicepulse_health_attestation",
            "Inbound calls by StirVerstat attestation (A, B, C, failed, none)",
            labels=[*labels, "attestation"],
        )
        for key, window in series:
            for grade, count in sorted(window.attestation.items()):
                mix.add_metric([*self._labels(key), grade], count)
        yield mix
        queue = HistogramMetricFamily(
            "voicepulse_health_queue_time_seconds",
            "QueueTime of outbound calls created (from the window's 1 % histogram)",
            labels=labels,
        )
        bounds = [*(str(b) for b in QUEUE_TIME_BUCKETS_S), "+Inf"]
        for key, window in series:
            running, buckets = 0, []
            for bound, count in zip(bounds, window.queue_buckets, strict=True):
                running += count
                buckets.append((bound, float(running)))
            queue.add_metric(self._labels(key), buckets, window.queue_sum)
        yield queue

    def _firing_gauge(self) -> GaugeMetricFamily:
        gauge = GaugeMetricFamily(
            "voicepulse_alerts_firing",
            "1 for each alert that fires now",
            labels=["account_sid", "tenant", "rule", "direction_group", "severity"],
        )
        for notice in sorted(self._firing.firing(), key=lambda n: n.key):
            group = notice.direction_group or ""
            tenant = self._tenant(notice.account_sid)
            labels = [notice.account_sid, tenant, notice.rule, group, notice.severity or ""]
            gauge.add_metric(labels, 1.0)
        return gauge

    def _labels(self, key: Series) -> list[str]:
        return [key[0], self._tenant(key[0]), key[1]]

    def _tenant(self, account_sid: str) -> str:
        return self._names.get(account_sid, account_sid)


def build_metrics(
    settings: Settings,
    bus: Bus,
    *,
    tenant_names: Mapping[str, str],
    registry: CollectorRegistry,
) -> list[Stage]:
    """The stages behind ``voicepulse alert``'s ``/metrics`` (``registry``, shared with the
    notifiers' counters): the health reader, the firing-alert tracker, and the HTTP server on
    ``alert_metrics_port`` (none when it is unset)."""
    firing = FiringSet()
    exporter = HealthExporter(firing, tenant_names)
    registry.register(exporter)
    stages: list[Stage] = []
    if settings.alert_metrics_port is not None:
        app = metrics_app(registry)
        stages.append(
            HttpServerStage("alert-metrics", app, settings.host, settings.alert_metrics_port)
        )
    health = ConsumerStage("alert-health-metrics", bus, [topics.HEALTH], METRICS_GROUP, exporter)
    stages += [
        health,
        FiringTracker("alert-metrics-firing", bus, firing, f"{METRICS_GROUP}-alerts"),
    ]
    return stages
