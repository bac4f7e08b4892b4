"""Analysts read while the sink writes: two processes, a reader that never restarts.

The sink runs in its own process on a real Kafka broker; this process publishes call facts in
waves and keeps one read-only connection open the whole time, querying in a tight loop from a
second thread. Each wave must become visible to that same connection, and the writer must keep
its pace while the reader hammers the catalog.
"""

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from tests.conftest import SettingsFactory
from tests.helpers import eventually
from tests.warehouse.envelopes import call_fact
from voicepulse import topics
from voicepulse.bus import KafkaBus
from voicepulse.settings import Settings
from warehouse.lake import open_lake

WAVES = 4
PER_WAVE = 200


@pytest.fixture
def sink_process(
    kafka_bootstrap: str, namespace: str, settings_factory: SettingsFactory
) -> Iterator[Settings]:
    settings = settings_factory(kafka_bootstrap_servers=kafka_bootstrap)
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.warehouse.sink_process",
         str(settings.data_dir), kafka_bootstrap, namespace],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "started", process.stderr
        yield settings
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        sys.stderr.write(err[-20_000:])  # the sink's log, shown when the test fails
        assert process.returncode == 0, err
        assert "Traceback" not in err


async def test_a_reader_in_another_process_sees_new_rows_without_restarting(
    sink_process: Settings, kafka_bootstrap: str, namespace: str
) -> None:
    bus = KafkaBus(kafka_bootstrap, namespace=namespace)
    await bus.start()
    reader = open_lake(sink_process, read_only=True)
    hammer = _Hammer(sink_process)
    hammer.start()
    try:
        seen = []
        for wave in range(WAVES):
            started = time.monotonic()
            for i in range(PER_WAVE):
                envelope = call_fact(f"CA{wave:02d}{i:04d}", 1)
                await bus.publish(topics.CALLS, envelope.key, envelope.to_json())
            want = (wave + 1) * PER_WAVE

            async def count() -> int:
                row = reader.sql("SELECT count(*) FROM calls").fetchone()
                return int(row[0]) if row else 0

            seen.append(await eventually(count, want.__eq__, timeout_s=60))
            assert time.monotonic() - started < 30, "the writer slowed down under the reader"
    finally:
        hammer.stop()
        reader.close()
        await bus.stop()
    assert seen == [PER_WAVE * (w + 1) for w in range(WAVES)]
    assert hammer.queries > 10
    assert hammer.errors == []


class _Hammer(threading.Thread):
    """A second read-only connection querying the lake without pause."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self._con = open_lake(settings, read_only=True)
        self._halt = threading.Event()
        self.queries = 0
        self.errors: list[str] = []

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self._con.sql("SELECT account_sid, count(*) FROM calls GROUP BY ALL").fetchall()
            except Exception as exc:  # noqa: BLE001 - recorded and asserted on
                self.errors.append(repr(exc))
            self.queries += 1

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)
        self._con.close()
