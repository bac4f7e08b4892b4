"""The sink alone in its own process, on Kafka under a test namespace (for two-process tests).

    python -m tests.warehouse.sink_process DATA_DIR BOOTSTRAP NAMESPACE

Runs until SIGINT/SIGTERM, like `voicepulse sink`.
"""

import asyncio
import logging
import sys
from pathlib import Path

from voicepulse.pipeline import Role, build_pipeline
from voicepulse.settings import Settings, demo_tenants_path


def _started() -> None:
    sys.stdout.write("started\n")
    sys.stdout.flush()


def main(data_dir: str, bootstrap: str, namespace: str) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    settings = Settings(
        data_dir=Path(data_dir),
        kafka_bootstrap_servers=bootstrap,
        tenants_file=demo_tenants_path(),
        sink_flush_interval_s=0.2,
    )
    pipeline = build_pipeline(settings, {Role.SINK}, namespace=namespace)
    asyncio.run(pipeline.run(on_started=_started))


if __name__ == "__main__":
    main(*sys.argv[1:4])
