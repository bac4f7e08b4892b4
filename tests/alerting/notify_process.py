"""The notifiers alone in their own process, on Kafka under a test namespace (kill tests).

    python -m tests.alerting.notify_process DATA_DIR BOOTSTRAP NAMESPACE WEBHOOK_URL AM_URL

Runs until SIGINT/SIGTERM (or SIGKILL); prints "started" once its stages run.
"""

import asyncio
import logging
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry

from alerting.notify import build_dispatcher
from tests.alerting.conftest import WEBHOOK_SECRET
from voicepulse.bus import create_bus
from voicepulse.pipeline import Pipeline
from voicepulse.settings import Settings


def _started() -> None:
    sys.stdout.write("started\n")
    sys.stdout.flush()


def main(data_dir: str, bootstrap: str, namespace: str, webhook: str, alertmanager: str) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    settings = Settings(
        data_dir=Path(data_dir),
        kafka_bootstrap_servers=bootstrap,
        alert_webhook_url=webhook,
        alert_webhook_secret=WEBHOOK_SECRET,
        alert_alertmanager_urls=[alertmanager],
        alert_resend_interval_s=30.0,
        alert_notify_backoff_max_s=1.0,
    )
    bus = create_bus(settings, namespace=namespace)
    stages = build_dispatcher(settings, bus, tenant_names={}, registry=CollectorRegistry())
    asyncio.run(Pipeline(bus, stages).run(on_started=_started))


if __name__ == "__main__":
    main(*sys.argv[1:6])
