"""The processor's own Prometheus metrics: late and forgotten events, calls and windows held.

Read from outside the engine: the late events from the health rows a turn emits (each row
carries its window's running ``late_events``), the forgotten ones from
:attr:`Processor.forgotten_late`, the state's sizes from the shards at each scrape. Dead
letters go to the stage's :class:`voicepulse.metrics.StageCounters`.
"""

from collections.abc import Iterator
from typing import Any, Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from processors.processor import Output, Processor
from voicepulse.metrics import StageCounters

__all__ = ["ProcessorMetrics"]

_SEEN_LIMIT: Final = 100_000
"""Windows whose late count is remembered; past it the older half is forgotten."""


class ProcessorMetrics(Collector):
    """Counts one processor's turns (:meth:`observe`, once per turn) and reports its state."""

    def __init__(self, processor: Processor, counters: StageCounters | None = None) -> None:
        self._processor = processor
        self._counters = counters
        self.late_events = 0
        """Late events counted in a health row since start."""
        self._late_seen: dict[str, tuple[str, int]] = {}  # row id: (window_start, late_events)

    def observe(self, out: Output) -> None:
        """Count a turn's dead letters and the late events its health rows gained."""
        if self._counters is not None:
            self._counters.dead_lettered(len(out.rejected))
        seen = self._late_seen
        for row in out.rows:
            late = row.fields.get("late_events")
            if not late:
                continue
            before = seen.get(row.id, ("", 0))[1]
            if late > before:  # a row restored after a restart starts again from its count
                self.late_events += late - before
            seen[row.id] = (str(row.fields["window_start"]), late)
        if len(seen) > _SEEN_LIMIT:
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        by_age = sorted(self._late_seen.items(), key=lambda item: item[1][0])
        self._late_seen = dict(by_age[len(by_age) // 2 :])

    def collect(self) -> Iterator[Any]:
        shards = list(self._processor.shards.values())
        yield CounterMetricFamily(
            "voicepulse_processor_late_events",
            "Events that came after their health window closed, counted in its row",
            value=self.late_events,
        )
        yield CounterMetricFamily(
            "voicepulse_processor_forgotten_late_events",
            "Late events for windows closed more than the horizon ago: in call facts, no row",
            value=self._processor.forgotten_late + sum(s.forgotten_late for s in shards),
        )
        yield GaugeMetricFamily(
            "voicepulse_processor_open_calls",
            "Calls neither terminal nor closed by timeout",
            value=sum(1 for s in shards for call in s.calls.values() if not call.finished),
        )
        yield GaugeMetricFamily(
            "voicepulse_processor_calls",
            "Calls held in state: open, and finished within the dedupe horizon",
            value=sum(len(s.calls) for s in shards),
        )
        yield GaugeMetricFamily(
            "voicepulse_processor_open_windows",
            "Health windows open (not yet closed)",
            value=sum(len(s.windows) for s in shards),
        )
        yield GaugeMetricFamily(
            "voicepulse_processor_partitions",
            "Input partitions whose state this process holds",
            value=len(shards),
        )
