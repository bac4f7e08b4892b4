"""The notifiers against real receivers: Alertmanager, and a signed webhook on uvicorn."""

import asyncio
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from alerting.notify import build_dispatcher
from alerting.notify.labels import Describer
from alerting.notify.notice import Notice
from alerting.silences import SilenceStore
from tests.alerting.conftest import WEBHOOK_SECRET, Alertmanager, WebhookReceiver
from tests.conftest import SettingsFactory
from tests.helpers import eventually, free_port
from voicepulse import topics
from voicepulse.bus import InProcessBus, KafkaBus
from voicepulse.envelope import Envelope
from voicepulse.pipeline import Pipeline
from voicepulse.settings import Settings
from voicepulse.types import Bus, Stage

ACME = "AC" + "a" * 32
BETA = "AC" + "b" * 32
NAMES = {ACME: "Acme Dental", BETA: "Beta Clinics"}
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)


def change(account: str, rule: str, state: str, minute: int, **fields: Any) -> Envelope:
    changed_at = (T0 + timedelta(minutes=minute)).isoformat()
    values: dict[str, Any] = {
        "rule": rule,
        "state": state,
        "severity": "warning",
        "direction_group": "outbound",
        "value": 0.52,
        "threshold": 0.7,
        "span_s": 900,
        "calls": 120,
        "starts_at": (T0 + timedelta(minutes=fields.pop("started", minute))).isoformat(),
        "changed_at": changed_at,
        "message": None,
    }
    values.update(fields)
    return Envelope(
        id=f"{account}:{rule}:outbound:{changed_at}",
        type="alert",
        account_sid=account,
        source="alerting",
        fields=values,
    )


async def publish(bus: Bus, *envelopes: Envelope) -> None:
    for envelope in envelopes:
        await bus.publish(topics.ALERTS, envelope.key, envelope.to_json())


def dispatcher(
    settings: Settings, bus: Bus, registry: CollectorRegistry | None = None
) -> tuple[Pipeline, CollectorRegistry]:
    registry = registry or CollectorRegistry()
    stages: Sequence[Stage] = build_dispatcher(settings, bus, tenant_names=NAMES, registry=registry)
    return Pipeline(bus, list(stages)), registry


def count(registry: CollectorRegistry, notifier: str, outcome: str) -> float:
    labels = {"notifier": notifier, "outcome": outcome}
    return registry.get_sample_value("voicepulse_alert_notifications_total", labels) or 0.0


def failures(registry: CollectorRegistry, notifier: str) -> float:
    labels = {"notifier": notifier}
    return registry.get_sample_value("voicepulse_alert_notifier_failures_total", labels) or 0.0


async def test_the_webhook_gets_each_firing_and_resolved_change_signed(
    settings_factory: SettingsFactory, webhook: WebhookReceiver
) -> None:
    settings = settings_factory(
        alert_webhook_url=webhook.url,
        alert_webhook_secret=WEBHOOK_SECRET,
        dashboard_url="https://pulse.example.com",
    )
    bus = InProcessBus()
    pipeline, registry = dispatcher(settings, bus)
    fired = change(ACME, "asr_low", "firing", 1, tenant=None)  # the change may not name it
    pending = change(ACME, "acd_low", "pending", 1)
    resolved = change(ACME, "asr_low", "resolved", 9, started=1, value=0.81)
    await pipeline.start()
    try:
        await publish(bus, pending, fired, resolved)
        await bus.publish(topics.ALERTS, ACME.encode(), b"not an envelope")
        await eventually(lambda: _len(webhook.deliveries), lambda n: n == 2, timeout_s=10)
    finally:
        await pipeline.stop()
    assert webhook.bad_signatures == 0
    assert list(webhook.deliveries) == [fired.id, resolved.id]  # in order, pending not told
    body = webhook.deliveries[fired.id][0]
    assert body["id"] == fired.id
    assert body["account_sid"] == ACME
    assert body["tenant"] == "Acme Dental"
    assert body["url"] == f"https://pulse.example.com/subaccounts/{ACME}"
    assert (body["rule"], body["state"], body["value"], body["threshold"]) == (
        "asr_low", "firing", 0.52, 0.7,
    )  # fmt: skip
    assert body["span_s"] == 900
    assert body["calls"] == 120
    assert webhook.deliveries[resolved.id][0]["state"] == "resolved"
    assert count(registry, "webhook", "delivered") == 2
    bad = registry.get_sample_value(
        "voicepulse_alert_notifier_bad_records_total", {"notifier": "webhook"}
    )
    assert bad == 1


async def _len(mapping: dict[str, Any]) -> int:
    return len(mapping)


async def test_a_failing_webhook_is_retried_with_backoff_and_a_refusal_skipped(
    settings_factory: SettingsFactory, webhook: WebhookReceiver
) -> None:
    settings = settings_factory(alert_webhook_url=webhook.url, alert_webhook_secret=WEBHOOK_SECRET)
    bus = InProcessBus()
    pipeline, registry = dispatcher(settings, bus)
    refused, fired = change(BETA, "bogus", "firing", 2), change(ACME, "asr_low", "firing", 3)
    webhook.refuse.add(refused.id)
    webhook.fail_next = 3
    await pipeline.start()
    try:
        await publish(bus, refused, fired)
        await eventually(lambda: _len(webhook.deliveries), lambda n: n == 1, timeout_s=15)
    finally:
        await pipeline.stop()
    assert list(webhook.deliveries) == [fired.id]
    assert len(webhook.deliveries[fired.id]) == 1
    assert webhook.requests == 5  # 3 answered 503, the refusal, the delivery
    assert failures(registry, "webhook") == 3
    assert count(registry, "webhook", "rejected") == 1
    assert count(registry, "webhook", "delivered") == 1


async def test_a_retry_waits_for_the_receivers_retry_after(
    settings_factory: SettingsFactory, webhook: WebhookReceiver
) -> None:
    settings = settings_factory(alert_webhook_url=webhook.url, alert_webhook_secret=WEBHOOK_SECRET)
    bus = InProcessBus()
    pipeline, _ = dispatcher(settings, bus)
    webhook.fail_next, webhook.retry_after = 1, "2"
    await pipeline.start()
    try:
        await publish(bus, change(ACME, "asr_low", "firing", 1))
        await eventually(lambda: _len(webhook.deliveries), lambda n: n == 1, timeout_s=10)
    finally:
        await pipeline.stop()
    first, second = webhook.times
    assert second - first >= 1.95  # the backoff alone waits at most 0.5 s here


async def test_a_silenced_alert_is_not_told_but_others_are(
    settings_factory: SettingsFactory, webhook: WebhookReceiver
) -> None:
    settings = settings_factory(alert_webhook_url=webhook.url, alert_webhook_secret=WEBHOOK_SECRET)
    SilenceStore.in_data_dir(settings.data_dir).create(
        account_sid=ACME, rule="asr_low", ends_at=datetime.now(UTC) + timedelta(hours=1),
        comment="carrier maintenance", created_by="ops",
    )  # fmt: skip
    bus = InProcessBus()
    pipeline, registry = dispatcher(settings, bus)
    silenced, other = change(ACME, "asr_low", "firing", 1), change(BETA, "asr_low", "firing", 1)
    await pipeline.start()
    try:
        await publish(bus, silenced, other)
        await eventually(lambda: _len(webhook.deliveries), lambda n: n == 1, timeout_s=10)
    finally:
        await pipeline.stop()
    assert list(webhook.deliveries) == [other.id]
    assert count(registry, "webhook", "silenced") == 1


async def test_the_slack_format_is_one_line_with_a_link(
    settings_factory: SettingsFactory, webhook: WebhookReceiver
) -> None:
    settings = settings_factory(
        alert_webhook_url=webhook.url,
        alert_webhook_secret=WEBHOOK_SECRET,
        alert_webhook_format="slack",
        dashboard_url="https://pulse.example.com",
    )
    bus = InProcessBus()
    pipeline, _ = dispatcher(settings, bus)
    fired = change(ACME, "queue_time_high", "firing", 1, value=7400.0, threshold=5000.0)
    await pipeline.start()
    try:
        await publish(bus, fired)
        await eventually(lambda: _len(webhook.deliveries), lambda n: n == 1, timeout_s=10)
    finally:
        await pipeline.stop()
    (body,) = webhook.deliveries[fired.id]
    assert list(body) == ["text"]
    text = body["text"]
    assert "FIRING" in text
    assert "queue_time_high" in text
    assert "Acme Dental" in text
    assert "7400" in text
    assert "5000" in text
    assert f"<https://pulse.example.com/subaccounts/{ACME}|dashboard>" in text


async def test_a_notification_survives_a_stop_while_its_receiver_is_down(
    settings_factory: SettingsFactory, webhook: WebhookReceiver
) -> None:
    """The receiver is down while the stage stops: nothing is committed, and the next start
    delivers the change (at least once, by the same idempotency key)."""
    settings = settings_factory(alert_webhook_url=webhook.url, alert_webhook_secret=WEBHOOK_SECRET)
    fired = change(ACME, "asr_low", "firing", 1)
    webhook.fail_next = 10**6
    bus = InProcessBus()
    first, registry = dispatcher(settings, bus)
    await first.start()
    try:
        await publish(first.bus, fired)
        await eventually(lambda: _value(failures(registry, "webhook")), lambda n: n >= 1)
    finally:
        for stage in first.stages:  # no drain: it would wait its whole timeout for the receiver
            await stage.stop()
    assert webhook.deliveries == {}

    webhook.fail_next = 0
    second, _ = dispatcher(settings, bus)
    await second.start()
    try:
        await eventually(lambda: _len(webhook.deliveries), lambda n: n == 1)
    finally:
        await second.stop()
    assert list(webhook.deliveries) == [fired.id]


async def _value(value: float) -> float:
    return value


def _am_settings(settings_factory: SettingsFactory, *urls: str, resend_s: float) -> Settings:
    return settings_factory(
        alert_alertmanager_urls=list(urls),
        alert_resend_interval_s=resend_s,
        dashboard_url="https://pulse.example.com",
    )


async def test_alertmanager_gets_firing_alerts_with_labels_and_resolves_end_them(
    settings_factory: SettingsFactory, alertmanager: Alertmanager
) -> None:
    settings = _am_settings(settings_factory, alertmanager.url, resend_s=30)
    bus = InProcessBus()
    pipeline, registry = dispatcher(settings, bus)
    await pipeline.start()
    try:
        await publish(
            bus, change(ACME, "asr_low", "firing", 1), change(BETA, "acd_low", "firing", 2)
        )
        alerts = await eventually(alertmanager.alerts, lambda found: len(found) == 2, timeout_s=10)
        (acme,) = [a for a in alerts if a["labels"]["account_sid"] == ACME]
        assert acme["labels"] == {
            "alertname": "asr_low",
            "account_sid": ACME,
            "tenant": "Acme Dental",
            "severity": "warning",
            "direction_group": "outbound",
        }
        assert acme["annotations"]["value"] == "0.52"
        assert acme["annotations"]["threshold"] == "0.7"
        assert "asr_low" in acme["annotations"]["summary"]
        assert acme["generatorURL"] == f"https://pulse.example.com/subaccounts/{ACME}"
        assert _time(acme["startsAt"]) == T0 + timedelta(minutes=1)
        assert _time(acme["endsAt"]) > datetime.now(UTC) + timedelta(seconds=90)

        await publish(bus, change(ACME, "asr_low", "resolved", 8, started=1))
        await eventually(alertmanager.alerts, lambda found: len(found) == 1, timeout_s=10)
        assert await alertmanager.alerts(account_sid=ACME) == []
    finally:
        await pipeline.stop()
    assert count(registry, "alertmanager", "delivered") == 3


async def test_alertmanager_down_for_a_while_gets_the_alerts_when_it_returns(
    settings_factory: SettingsFactory, alertmanager_at: Any
) -> None:
    manager: Alertmanager = alertmanager_at()  # not started yet: its port refuses connections
    settings = _am_settings(settings_factory, manager.url, resend_s=30)
    bus = InProcessBus()
    pipeline, registry = dispatcher(settings, bus)
    await pipeline.start()
    try:
        await publish(bus, change(ACME, "asr_low", "firing", 1))
        await eventually(lambda: _value(failures(registry, "alertmanager")), lambda n: n >= 2)
        manager.start()
        found = await eventually(manager.alerts, lambda found: len(found) == 1, timeout_s=30)
    finally:
        await pipeline.stop()
    assert found[0]["labels"]["alertname"] == "asr_low"
    assert count(registry, "alertmanager", "delivered") == 1


async def test_one_alertmanager_down_holds_back_nothing_for_the_others(
    settings_factory: SettingsFactory, alertmanager: Alertmanager
) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = _am_settings(settings_factory, down, alertmanager.url, resend_s=30)
    bus = InProcessBus()
    pipeline, registry = dispatcher(settings, bus)
    await pipeline.start()
    try:
        await publish(bus, change(ACME, "asr_low", "firing", 1))
        await eventually(alertmanager.alerts, lambda found: len(found) == 1, timeout_s=10)
        await publish(bus, change(BETA, "asr_low", "firing", 2))
        await eventually(alertmanager.alerts, lambda found: len(found) == 2, timeout_s=10)
    finally:
        await pipeline.stop()
    assert count(registry, "alertmanager", "delivered") == 2
    assert failures(registry, "alertmanager") == 2


async def test_firing_alerts_are_resent_and_rebuilt_after_a_restart(
    settings_factory: SettingsFactory, alertmanager: Alertmanager
) -> None:
    """A restarted dispatcher re-sends what fires (and only that) to an Alertmanager that
    forgot everything, with no new change on the topic."""
    settings = _am_settings(settings_factory, alertmanager.url, resend_s=0.5)
    SilenceStore.in_data_dir(settings.data_dir).create(
        account_sid=BETA, ends_at=datetime.now(UTC) + timedelta(hours=1),
        comment="onboarding", created_by="ops",
    )  # fmt: skip
    bus = InProcessBus()
    first, _ = dispatcher(settings, bus)
    await first.start()
    try:
        await publish(
            bus,
            change(ACME, "asr_low", "firing", 1),
            change(ACME, "acd_low", "firing", 1),
            change(ACME, "acd_low", "resolved", 5, started=1),
            change(BETA, "asr_low", "firing", 1),  # silenced: never sent
        )
        await eventually(alertmanager.alerts, lambda found: len(found) == 1, timeout_s=10)
    finally:
        await first.stop()

    alertmanager.wipe()
    alertmanager.start()
    assert await alertmanager.alerts() == []
    second, registry = dispatcher(settings, bus)
    await second.start()
    try:
        found = await eventually(alertmanager.alerts, lambda found: len(found) == 1, timeout_s=10)
        resends = await eventually(
            lambda: _value(_resends(registry)), lambda n: n >= 3, timeout_s=10
        )
    finally:
        await second.stop()
    assert [a["labels"]["alertname"] for a in found] == ["asr_low"]
    assert found[0]["labels"]["account_sid"] == ACME
    assert resends >= 3
    assert count(registry, "alertmanager", "delivered") == 0  # nothing new to deliver


def _resends(registry: CollectorRegistry) -> float:
    labels = {"outcome": "delivered"}
    return registry.get_sample_value("voicepulse_alert_resends_total", labels) or 0.0


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.kafka
async def test_no_notification_is_lost_when_the_notifier_is_killed(
    tmp_path: Path,
    webhook: WebhookReceiver,
    alertmanager: Alertmanager,
    kafka_bootstrap: str,
    namespace: str,
) -> None:
    """SIGKILL while it delivers: after a restart, the webhook has seen every
    state change (at least once, by id) and Alertmanager holds exactly the alerts that fire."""
    accounts = [f"AC{n:032x}" for n in range(1, 6)]
    changes = [
        change(account, rule, state, minute, started=1)
        for minute, state in ((1, "firing"), (5, "resolved"), (9, "firing"))
        for account in accounts
        for rule in ("asr_low", "acd_low")
    ]
    bus = KafkaBus(kafka_bootstrap, namespace=namespace)
    await bus.start()
    try:
        await publish(bus, *changes)
    finally:
        await bus.stop()
    webhook.delay_s = 0.05  # slow enough that a kill lands mid-stream
    argv = [sys.executable, "-m", "tests.alerting.notify_process", str(tmp_path / "data"),
            kafka_bootstrap, namespace, webhook.url, alertmanager.url]  # fmt: skip
    for kill_at in (12, len(changes)):
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            await eventually(lambda: _len(webhook.deliveries), _reached(kill_at), timeout_s=60)
        finally:
            last = kill_at == len(changes)
            process.send_signal(signal.SIGTERM if last else signal.SIGKILL)
            await process.wait()
    assert set(webhook.deliveries) == {c.id for c in changes}
    assert webhook.bad_signatures == 0
    firing = await alertmanager.alerts()
    assert len(firing) == 10
    assert {a["labels"]["account_sid"] for a in firing} == set(accounts)


def _reached(count: int) -> Callable[[int], bool]:
    return lambda n: n >= count


def test_notifications_link_to_the_dashboard_page_of_the_subaccount_or_the_isv() -> None:
    describer = Describer(NAMES, "https://pulse.example.com")
    acme = Notice.from_envelope(change(ACME, "asr_low", "firing", 1))
    isv = Notice.from_envelope(change("ISV", "cps_saturated", "firing", 1))
    assert describer.url(acme) == f"https://pulse.example.com/subaccounts/{ACME}"
    assert describer.url(isv) == "https://pulse.example.com/isv"
    assert describer.tenant(acme) == "Acme Dental"
    assert Describer(NAMES).url(acme) is None
