"""The processor's and the sink's /metrics: a real processor on Kafka and a sink into a real
DuckLake, each serving its own /metrics, scraped over HTTP on loopback while traffic flows."""

import asyncio
import contextlib
from collections.abc import Callable, Sequence

import httpx
import pytest

from ingest.tenants import TenantRegistry
from processors.engine import EngineConfig
from processors.metrics import ProcessorMetrics
from processors.processor import Output, Processor, row_envelope
from tests.conftest import SettingsFactory
from tests.helpers import (
    Samples,
    eventually,
    free_port,
    metric_value,
    read_topic,
    scrape_metrics,
)
from tests.processors.kafka_run import TOPIC_OF, processor_process, scenario
from voicepulse import topics
from voicepulse.bus.kafka import KafkaBus
from voicepulse.cli import _overrides, _parser
from voicepulse.envelope import Envelope
from voicepulse.metrics import StageMetrics
from voicepulse.pipeline import Pipeline, Role, build_pipeline

RECORDS = "voicepulse_stage_records_total"
DEAD = "voicepulse_stage_dead_letters_total"
LAG = "voicepulse_stage_consumer_lag"


def _metrics_port(pipeline: Pipeline) -> int:
    assert pipeline.stage_metrics is not None
    return pipeline.stage_metrics.port


async def _send(bus: KafkaBus, envelopes: Sequence[Envelope]) -> None:
    for start in range(0, len(envelopes), 200):
        await asyncio.gather(
            *(
                bus.publish(TOPIC_OF[e.type], e.key, e.to_json())
                for e in envelopes[start : start + 200]
            )
        )


def _caught_up(samples: Samples, stage: str) -> bool:
    lag = [v for k, v in samples.get(LAG, {}).items() if ("stage", stage) in k]
    return bool(lag) and not any(lag)


def _counted(stage: str, records: int) -> Callable[[Samples], bool]:
    return lambda s: metric_value(s, RECORDS, stage=stage) == records and _caught_up(s, stage)


@pytest.mark.timeout(90)
async def test_processor_and_sink_metrics_follow_the_traffic(
    kafka_bootstrap: str,
    namespace: str,
    demo_tenants: TenantRegistry,
    settings_factory: SettingsFactory,
) -> None:
    """Records and commits count what went through; lag is 0 once caught up; a record that
    cannot be decoded is one dead letter of the stage that read it."""
    delivered = scenario(demo_tenants, seed=31, seconds=20).delivered
    half = len(delivered) // 2
    settings = settings_factory(
        kafka_bootstrap_servers=kafka_bootstrap,
        processor_wall_clock_lag_s=1e9,
        processor_metrics_port=0,
        sink_metrics_port=0,
    )
    processor = build_pipeline(settings, {Role.PROCESS}, namespace=namespace)
    sink = build_pipeline(settings, {Role.SINK}, namespace=namespace)
    async with KafkaBus(kafka_bootstrap, namespace=namespace) as bus, processor, sink:
        process_port, sink_port = _metrics_port(processor), _metrics_port(sink)
        await _send(bus, delivered[:half])
        first = await eventually(
            lambda: scrape_metrics(process_port), _counted("process", half), timeout_s=30
        )
        await bus.publish(topics.CALL_STATUS, b"AC-broken", b"not json")  # both stages read it
        await bus.publish(topics.USAGE, b"AC-broken", b"{")  # only the sink reads it
        await _send(bus, delivered[half:])
        final = await eventually(
            lambda: scrape_metrics(process_port),
            _counted("process", len(delivered) + 1),
            timeout_s=30,
        )
        outputs = [
            *await read_topic(kafka_bootstrap, namespace, topics.CALLS),
            *await read_topic(kafka_bootstrap, namespace, topics.HEALTH),
        ]
        sink_total = len(delivered) + 2 + len(outputs)
        stored = await eventually(
            lambda: scrape_metrics(sink_port), _counted("sink", sink_total), timeout_s=30
        )
    commits = "voicepulse_stage_commits_total"
    assert metric_value(final, commits, stage="process") > metric_value(
        first, commits, stage="process"
    )
    assert metric_value(final, "voicepulse_stage_commit_seconds_count", stage="process") == (
        metric_value(final, commits, stage="process")
    )
    assert metric_value(final, "voicepulse_stage_batch_records_sum", stage="process") == (
        len(delivered) + 1
    )
    assert metric_value(final, DEAD, stage="process") == 1
    assert metric_value(final, "voicepulse_stage_recoveries_total", stage="process") == 0
    assert metric_value(final, "voicepulse_processor_calls") > 0
    assert metric_value(final, "voicepulse_processor_partitions") == settings.kafka_topic_partitions
    assert "voicepulse_processor_open_windows" in final
    assert "sink" not in str(final.get(RECORDS))  # each process serves its own stages
    assert metric_value(stored, DEAD, stage="sink") == 2
    assert metric_value(stored, "voicepulse_stage_flush_rows_sum", stage="sink") > 0
    assert metric_value(stored, "voicepulse_stage_flush_seconds_count", stage="sink") >= 1
    assert metric_value(stored, commits, stage="sink") >= 1


def test_late_events_count_what_each_row_gained() -> None:
    """A row re-sent with more late events adds only the difference; forgotten late events
    are the processor's count."""
    processor = Processor(EngineConfig())
    metrics = ProcessorMetrics(processor, StageMetrics().stage("process"))
    for late in (0, 2, 2, 5):
        fields = {"direction_group": "outbound", "window_start": "2026-12-04T10:00:00+00:00"}
        metrics.observe(Output(rows=[row_envelope("AC1", {**fields, "late_events": late})]))
    processor.forgotten_late = 3
    samples = {m.name: m.samples[0].value for m in metrics.collect()}
    assert samples["voicepulse_processor_late_events"] == 5
    assert samples["voicepulse_processor_forgotten_late_events"] == 3


def test_process_and_sink_take_a_metrics_port() -> None:
    for command, setting in (("process", "processor_metrics_port"), ("sink", "sink_metrics_port")):
        overrides = _overrides(_parser().parse_args([command, "--metrics-port", "9200"]))
        assert overrides[setting] == 9200


@pytest.mark.timeout(90)
async def test_two_processor_processes_in_one_group_split_the_work_and_the_metrics(
    kafka_bootstrap: str, namespace: str, demo_tenants: TenantRegistry
) -> None:
    """Two `voicepulse process` in one group, each with its own /metrics: their partitions
    add up to the input's, their records to what was published, and both catch up."""
    delivered = scenario(demo_tenants, seed=32, seconds=20).delivered
    ports = [free_port(), free_port()]

    async def both() -> list[Samples]:
        try:
            return [await scrape_metrics(port) for port in ports]
        except httpx.TransportError:
            return []  # not listening yet

    def split(scrapes: list[Samples]) -> bool:
        return (
            len(scrapes) == 2
            and sum(metric_value(s, "voicepulse_processor_partitions") for s in scrapes) == 6
            and sum(metric_value(s, RECORDS, stage="process") for s in scrapes if RECORDS in s)
            == len(delivered)
            and all(_caught_up(s, "process") for s in scrapes)
        )

    with contextlib.ExitStack() as processes:
        for instance, port in enumerate(ports):
            settings = {"processor_metrics_port": str(port), "kafka_topic_partitions": "6"}
            processes.enter_context(
                processor_process(kafka_bootstrap, namespace, str(instance), settings=settings)
            )
        async with KafkaBus(kafka_bootstrap, namespace=namespace) as bus:
            # The group settled first, so that no partition changes hands (and no record is
            # handed to both) while traffic flows.
            await eventually(
                both, lambda s: len(s) == 2 and all(_holds(x, 3) for x in s), timeout_s=45
            )
            await _send(bus, delivered)
        scrapes = await eventually(both, split, timeout_s=30, interval_s=0.5)
    assert all(_holds(s, 3) for s in scrapes)


def _holds(samples: Samples, partitions: int) -> bool:
    return metric_value(samples, "voicepulse_processor_partitions") == partitions


async def test_a_kafka_consumer_reports_its_lag_per_partition(
    kafka_bootstrap: str, namespace: str
) -> None:
    """Lag is end offset minus position, per partition: what is left after a partial poll."""
    async with KafkaBus(kafka_bootstrap, namespace=namespace) as bus:
        for n in range(10):
            await bus.publish(topics.USAGE, b"AC-lag", f'{{"n": {n}}}'.encode())
        consumer = bus.consumer([topics.USAGE], "lag-test")
        await consumer.start()
        try:
            taken = await consumer.poll(timeout_s=10, max_records=4)
            lag = await consumer.lag()
        finally:
            await consumer.stop()
    assert sum(lag.values()) == 10 - len(taken)
    assert {tp.topic for tp in lag} == {topics.USAGE}


async def test_one_endpoint_serves_the_processor_and_the_sink_of_one_process(
    demo_tenants: TenantRegistry, settings_factory: SettingsFactory
) -> None:
    """As in `voicepulse run` (here on the in-process bus): both stages on the processor's
    port, the sink's setting unused."""
    delivered = scenario(demo_tenants, seed=33, seconds=10).delivered
    settings = settings_factory(processor_metrics_port=0, sink_metrics_port=free_port())
    pipeline = build_pipeline(settings, {Role.PROCESS, Role.SINK})
    assert [s.name for s in pipeline.stages].count("stage-metrics") == 1
    async with pipeline:
        for envelope in delivered:
            await pipeline.bus.publish(TOPIC_OF[envelope.type], envelope.key, envelope.to_json())
        samples = await eventually(
            lambda: scrape_metrics(_metrics_port(pipeline)),
            lambda s: _counted("process", len(delivered))(s) and _caught_up(s, "sink"),
            timeout_s=20,
        )
    assert metric_value(samples, RECORDS, stage="sink") > len(delivered)  # and the outputs
    assert metric_value(samples, "voicepulse_stage_flush_rows_sum", stage="sink") > 0
    assert metric_value(samples, "voicepulse_processor_partitions") == 1
