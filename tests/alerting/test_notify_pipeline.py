"""The notifiers inside the pipeline: simulated low-ASR traffic through the processors and the
alert stage reaches a real Alertmanager and the signed webhook."""

from collections.abc import Awaitable, Callable

from tests.alerting.conftest import WEBHOOK_SECRET, Alertmanager, WebhookReceiver
from tests.alerting.traffic_rows import publish_low_asr_traffic
from tests.conftest import SettingsFactory
from tests.helpers import eventually
from voicepulse.bus import InProcessBus
from voicepulse.pipeline import Role, build_pipeline


async def test_a_low_asr_tenant_reaches_alertmanager_and_the_webhook(
    settings_factory: SettingsFactory, alertmanager: Alertmanager, webhook: WebhookReceiver
) -> None:
    settings = settings_factory(
        processor_wall_clock_lag_s=None,
        alert_alertmanager_urls=[alertmanager.url],
        alert_webhook_url=webhook.url,
        alert_webhook_secret=WEBHOOK_SECRET,
        dashboard_url="https://pulse.example.com",
    )
    pipeline = build_pipeline(settings, {Role.PROCESS, Role.ALERT})
    bus = pipeline.bus
    assert isinstance(bus, InProcessBus)
    await pipeline.start()
    try:
        account = await publish_low_asr_traffic(bus)
        found = await eventually(
            lambda: alertmanager.alerts(alertname="asr_low"), lambda a: bool(a), timeout_s=60
        )
        await eventually(_firing(webhook), lambda n: n >= 1, timeout_s=10)
    finally:
        await pipeline.stop()
    (alert,) = found
    assert alert["labels"]["account_sid"] == account
    assert alert["generatorURL"] == f"https://pulse.example.com/subaccounts/{account}"
    assert webhook.bad_signatures == 0


def _firing(webhook: WebhookReceiver) -> Callable[[], Awaitable[int]]:
    async def count() -> int:
        return sum(
            1
            for bodies in webhook.deliveries.values()
            if bodies[0]["rule"] == "asr_low" and bodies[0]["state"] == "firing"
        )

    return count
