"""The receiver's Prometheus metrics, on a registry of its own (one per app).

No label ever carries a token, a body or an unbounded value (reasons and routes are fixed sets).

Under ``voicepulse serve --workers N`` every worker writes its values to the files of
prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by the parent) and
:meth:`ReceiverMetrics.exposition` serves the sum over the workers, whichever worker answers:
counters and histograms add up (a dead worker's counts included), the spool gauges are summed
over the live workers, ``bus_up`` is the lowest of them.
"""

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["ReceiverMetrics"]


class ReceiverMetrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        # Set by ``serve --workers`` before the worker started (prometheus_client reads it then).
        self._multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        self.requests = Counter(
            "voicepulse_ingest_requests",
            "Webhook requests by route and outcome",
            ["route", "outcome"],
            registry=registry,
        )
        self.rejections = Counter(
            "voicepulse_ingest_rejections",
            "Rejected webhook requests by reason",
            ["reason"],
            registry=registry,
        )
        self.odd_timestamps = Counter(
            "voicepulse_ingest_odd_timestamps",
            "Signed events kept with a Timestamp flagged timestamp_in_future or "
            "timestamp_implausible, by route and flag",
            ["route", "flag"],
            registry=registry,
        )
        self.publish_seconds = Histogram(
            "voicepulse_ingest_publish_seconds",
            "Time to make one event durable, by where it went (bus or spool)",
            ["where"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )
        self.spooled = Counter(
            "voicepulse_ingest_spooled_records",
            "Events written to the local spool because the bus did not take them in time",
            registry=registry,
        )
        self.spool_records = Gauge(
            "voicepulse_ingest_spool_records",
            "Events in the spool, not yet drained",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.spool_bytes = Gauge(
            "voicepulse_ingest_spool_bytes",
            "Bytes in the spool's segment files",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.drained = Counter(
            "voicepulse_ingest_spool_drained_records",
            "Spooled events acknowledged by the bus and removed from the spool",
            registry=registry,
        )
        self.drained_segments = Counter(
            "voicepulse_ingest_spool_drained_segments",
            "Spool segments fully acknowledged by the bus and deleted",
            registry=registry,
        )
        self.bus_up = Gauge(
            "voicepulse_ingest_bus_up",
            "1 when the last publish or drain reached the bus in time, else 0",
            registry=registry,
            multiprocess_mode="livemin",
        )
        self.bus_up.set(1)
        self.tenants = Gauge(
            "voicepulse_ingest_tenants",
            "Tenants in the registry in use",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.tenants_reload_errors = Counter(
            "voicepulse_ingest_tenants_reload_errors",
            "Tenants file reloads refused because the file had an error",
            registry=registry,
        )

    def exposition(self) -> bytes:
        """The text ``/metrics`` serves: this process's, or the sum over every worker."""
        if not self._multiprocess_dir:
            return generate_latest(self.registry)
        combined = CollectorRegistry()
        MultiProcessCollector(combined, path=self._multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(combined)
