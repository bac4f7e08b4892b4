"""The composition root: settings in, a wired pipeline of stages out.

``build_pipeline(settings, roles)`` picks the bus (Kafka or in-process), opens the warehouse
when the sink runs, and orders the stages along the data flow. :meth:`Pipeline.run` starts
them, waits for a signal or a failed stage, and stops them in data-flow order, each one
draining its input first, so that Ctrl-C loses nothing that was already accepted.
"""

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from prometheus_client import CollectorRegistry

from alerting.exporter import build_metrics
from alerting.kafka import KafkaAlertStage
from alerting.notify.build import build_dispatcher
from alerting.rules import load_rules
from alerting.stage import alert_stage
from ingest.app import STATUS_PATH, create_app, tenant_source
from ingest.late_bus import LateStartBus
from ingest.pollers import pull_stages
from ingest.server import HttpServerStage
from ingest.tenant_source import TenantSource
from ingest.tenants import TenantRegistry, load_tenants
from processors import EngineConfig, IsvHandler, KafkaProcessorStage, isv_group, processor_stage
from simulator import Simulator, callback_rate
from voicepulse import topics
from voicepulse.bus import InProcessBus, create_bus
from voicepulse.lifecycle import Lifecycle
from voicepulse.metrics import StageMetrics, metrics_app
from voicepulse.settings import Settings, demo_tenants_path
from voicepulse.stage import ConsumerStage
from voicepulse.types import Bus, Stage
from warehouse.setup import build_sink
from warehouse.tables import SINK_TOPICS

__all__ = ["Pipeline", "Role", "build_pipeline"]

logger = logging.getLogger(__name__)

_DRAIN_TIMEOUT_S = 10.0
_DEMO_WARM_UP_S = 600  # the demo's calls began before the start (see Simulator)


class Role(StrEnum):
    SERVE = "serve"
    PROCESS = "process"
    SINK = "sink"
    SIMULATE = "simulate"
    PULL = "pull"
    DASHBOARD = "dashboard"
    ALERT = "alert"


@dataclass
class Pipeline(Lifecycle):
    """Stages in data-flow order over one bus, with what must be closed after them."""

    bus: Bus
    stages: list[Stage]
    closers: list[Callable[[], None]] = field(default_factory=list)
    receiver: HttpServerStage | None = None
    dashboard: HttpServerStage | None = None
    stage_metrics: HttpServerStage | None = None
    """The processor's and the sink's ``/metrics``, when a port is set."""

    async def start(self) -> None:
        """Start the bus, then the stages against the data flow, so each finds its consumer."""
        await self.bus.start()
        try:
            for stage in reversed(self.stages):
                await stage.start()
                logger.info("started %s", stage.name)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop every stage in data-flow order, draining each; harmless to call twice.

        A stage that fails while draining or stopping (its task failed: stopping re-raises
        that) does not keep the others running: every later stage is still drained and
        stopped, the bus stopped and the closers run (a sink behind a failed processor still
        flushes). The first failure is raised afterwards.
        """
        first: Exception | None = None
        for stage in self.stages:
            try:
                await stage.drain(_DRAIN_TIMEOUT_S)
                await stage.stop()
            except Exception as exc:  # noqa: BLE001 - every stage must still be stopped
                logger.error("stage %s failed while stopping: %r", stage.name, exc)
                first = first or exc
        await self.bus.stop()
        closers, self.closers = self.closers, []
        for close in closers:
            close()
        if first is not None:
            raise first

    async def run(self, on_started: Callable[[], None] | None = None) -> None:
        """Start, run until SIGINT/SIGTERM or until a stage fails, then stop cleanly."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, stop, sig)
        await self.start()
        if on_started is not None:
            on_started()
        failed: BaseException | None = None
        try:
            failed = await self._wait(stop)
        finally:
            logger.info("stopping")
            await self.stop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        if failed is not None:
            raise failed
        logger.info("stopped cleanly")

    def _on_signal(self, stop: asyncio.Event, sig: signal.Signals) -> None:
        if stop.is_set():
            logger.warning("second %s: exiting without waiting", sig.name)
            os._exit(128 + sig.value)
        logger.info("%s received: finishing in-flight work (again to force)", sig.name)
        stop.set()

    async def _wait(self, stop: asyncio.Event) -> BaseException | None:
        watched: set[asyncio.Task[Any]] = {t for s in self.stages if (t := s.task) is not None}
        stopper: asyncio.Task[Any] = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                done, watched = await asyncio.wait(
                    {stopper, *watched}, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done - {stopper}:
                    if not task.cancelled() and task.exception() is not None:
                        logger.error("%s failed", task.get_name(), exc_info=task.exception())
                        return task.exception()
                watched.discard(stopper)
            return None
        finally:
            stopper.cancel()


def build_pipeline(
    settings: Settings,
    roles: Iterable[Role],
    *,
    tenants: TenantRegistry | None = None,
    namespace: str = "",
    worker: tuple[int, socket.socket] | None = None,
) -> Pipeline:
    """Wire the stages for ``roles`` from ``settings``; nothing is started yet. ``worker``: the
    receiver is the worker of this index among ``serve --workers``, on this listening socket."""
    roles = set(roles)
    namespace = namespace or settings.kafka_namespace
    bus: Bus = (
        create_bus(settings, namespace=namespace) if roles != {Role.DASHBOARD} else InProcessBus()
    )
    if roles == {Role.SERVE}:
        bus = LateStartBus(bus)  # the receiver comes up, and spools, while Kafka is away
    pipeline = Pipeline(bus=bus, stages=[])
    if tenants is None and settings.tenants_file is None:
        logger.warning(
            "no tenants file configured: using the demo tenants (%s)", demo_tenants_path()
        )
    if Role.SERVE in roles:
        if tenants is not None:
            source = TenantSource(tenants, shared_keys=settings.webhook_shared_keys)
        else:
            source = tenant_source(settings, fallback=demo_tenants_path())
        index, sock = worker if worker is not None else (None, None)
        app = create_app(settings, bus, source, worker=index)
        pipeline.receiver = HttpServerStage("serve", app, settings.host, settings.port, sock=sock)
        pipeline.stages.append(pipeline.receiver)
    if roles & {Role.PROCESS, Role.SINK, Role.ALERT}:
        registry = tenants if tenants is not None else _tenants(settings)
    metrics = StageMetrics()
    if Role.PROCESS in roles:
        pipeline.stages.extend(_processor_stages(settings, bus, registry, namespace, metrics))
    if Role.ALERT in roles:
        pipeline.stages.extend(_alert_stages(settings, bus, registry, namespace))
    if Role.SINK in roles:
        counters = metrics.stage("sink")
        sink, con = build_sink(settings, bus, registry, metrics=counters)
        pipeline.closers.append(con.close)
        pipeline.stages.append(
            ConsumerStage("sink", bus, SINK_TOPICS, "voicepulse-sink", sink, metrics=counters)
        )
    if (port := _stage_metrics_port(settings, roles)) is not None:
        app = metrics_app(metrics.registry)
        pipeline.stage_metrics = HttpServerStage("stage-metrics", app, settings.host, port)
        pipeline.stages.append(
            pipeline.stage_metrics
        )  # last in data-flow order: scraped to the end
    if Role.DASHBOARD in roles:
        from dashboards.stage import dashboard_stage

        # First in data-flow order: started after the sink (which creates the warehouse).
        pipeline.dashboard = dashboard_stage(settings)
        pipeline.stages.insert(0, pipeline.dashboard)
    if Role.PULL in roles:
        _, pull = pull_stages(settings, bus, tenants)
        pipeline.stages[0:0] = pull
    if Role.SIMULATE in roles:
        receiver = pipeline.receiver
        if receiver is None:
            raise ValueError("the demo simulator runs only beside the receiver")
        demo = load_tenants(demo_tenants_path())
        pipeline.stages.insert(
            0,
            Simulator(
                lambda: f"http://127.0.0.1:{receiver.port}{STATUS_PATH}",
                demo,
                rate=callback_rate(demo, settings.demo_calls_per_second),
                connections=2,
                warm_up_s=_DEMO_WARM_UP_S,
            ),
        )
    return pipeline


def _stage_metrics_port(settings: Settings, roles: set[Role]) -> int | None:
    """The port of the processor's and the sink's one ``/metrics``: the processor's setting
    when it runs and sets one, else the sink's."""
    if Role.PROCESS in roles and settings.processor_metrics_port is not None:
        return settings.processor_metrics_port
    if Role.SINK in roles:
        return settings.sink_metrics_port
    return None


def _processor_stages(
    settings: Settings, bus: Bus, registry: TenantRegistry, namespace: str, metrics: StageMetrics
) -> list[Stage]:
    limits = {sid: tenant.cps_limit for sid, tenant in registry.items()}
    config = EngineConfig(
        grace_s=settings.processor_grace_s,
        call_timeout_s=settings.processor_call_timeout_s,
        horizon_s=settings.processor_horizon_s,
        cps_limit=lambda account: limits.get(account, 1.0),
        future_tolerance_s=settings.event_time_tolerance_s,
    )
    process: Stage
    if settings.kafka_bootstrap_servers:
        process = KafkaProcessorStage(
            settings.kafka_bootstrap_servers,
            config,
            namespace=namespace,
            instance_id=settings.processor_instance_id,
            partitions=settings.kafka_topic_partitions,
            replication_factor=settings.kafka_replication_factor,
            wall_clock_lag_s=settings.processor_wall_clock_lag_s,
            max_records=settings.processor_max_records,
            metrics=metrics,
        )
    else:
        process, _ = processor_stage(
            bus, config, wall_clock_lag_s=settings.processor_wall_clock_lag_s, metrics=metrics
        )
    isv = ConsumerStage(
        "isv", bus, [topics.HEALTH], isv_group(), IsvHandler(bus, settings.isv_cps_limit)
    )
    return [process, isv]


def _alert_stages(
    settings: Settings, bus: Bus, registry: TenantRegistry, namespace: str
) -> list[Stage]:
    """The alert stage, then what reads its output: the notifiers and the metrics."""
    rules = load_rules(settings.alert_rules_file)
    names = {sid: tenant.name for sid, tenant in registry.items()}
    alert: Stage
    if settings.kafka_bootstrap_servers:
        alert = KafkaAlertStage(
            settings.kafka_bootstrap_servers,
            rules,
            tenant_names=names,
            namespace=namespace,
            instance_id=settings.alert_instance_id,
            partitions=settings.kafka_topic_partitions,
            replication_factor=settings.kafka_replication_factor,
        )
    else:
        alert, _ = alert_stage(bus, rules, names)
    metrics = CollectorRegistry()
    return [
        alert,
        *build_dispatcher(settings, bus, tenant_names=names, registry=metrics),
        *build_metrics(settings, bus, tenant_names=names, registry=metrics),
    ]


def _tenants(settings: Settings) -> TenantRegistry:
    return load_tenants(settings.tenants_file or demo_tenants_path())
