"""Prometheus Alertmanager (API v2): alert state changes as alerts, and the firing ones re-sent.

Alertmanager keeps an alert firing until its ``endsAt``, so a firing alert is sent with
``endsAt`` four re-send intervals ahead (as Prometheus does) and re-sent every interval while it
fires; a resolve is sent with ``endsAt`` at the time it resolved. If VoicePulse stops sending,
Alertmanager resolves its alerts by itself after those four intervals. Every configured
Alertmanager gets every alert (an Alertmanager cluster deduplicates between its members); a
change counts as delivered once one of them took it, so one member down holds nothing back.
"""

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from alerting.notify.errors import DeliveryFailed, post
from alerting.notify.firing import FiringSet
from alerting.notify.labels import Describer, number
from alerting.notify.metrics import NotifierMetrics
from alerting.notify.notice import Notice
from alerting.silences import SilenceStore
from voicepulse.stage import LoopStage

__all__ = ["AlertmanagerNotifier", "AlertmanagerResender", "to_alertmanager"]

logger = logging.getLogger(__name__)

_HEADERS = {"Content-Type": "application/json", "User-Agent": "voicepulse"}
_ENDS_AFTER_RESENDS = 4


def to_alertmanager(
    notice: Notice, describer: Describer, now: datetime, resend_interval_s: float
) -> dict[str, Any]:
    """One alert of ``POST /api/v2/alerts``."""
    labels = {
        "alertname": notice.rule,
        "account_sid": notice.account_sid,
        "tenant": describer.tenant(notice),
        "severity": notice.severity,
        "direction_group": notice.direction_group,
    }
    annotations = {
        "summary": describer.summary(notice),
        "value": None if notice.value is None else number(notice.value),
        "threshold": None if notice.threshold is None else number(notice.threshold),
    }
    starts = notice.starts_at or notice.changed_at
    if notice.state == "firing":
        ends = now + timedelta(seconds=_ENDS_AFTER_RESENDS * resend_interval_s)
    else:
        ends = max(notice.changed_at, starts)
    alert: dict[str, Any] = {
        "labels": {k: v for k, v in labels.items() if v},
        "annotations": {k: v for k, v in annotations.items() if v},
        "startsAt": starts.isoformat(),
        "endsAt": ends.isoformat(),
    }
    if (url := describer.url(notice)) is not None:
        alert["generatorURL"] = url
    return alert


class AlertmanagerNotifier:
    """Posts alerts to every Alertmanager in ``urls``; the latest state of each alert wins."""

    name = "alertmanager"
    batch_size = 200

    def __init__(
        self,
        urls: Sequence[str],
        describer: Describer,
        firing: FiringSet,
        *,
        metrics: NotifierMetrics,
        resend_interval_s: float,
        timeout_s: float,
    ) -> None:
        self._endpoints = [f"{url.rstrip('/')}/api/v2/alerts" for url in urls]
        self._metrics = metrics
        self._describer = describer
        self._firing = firing
        self._resend_interval_s = resend_interval_s
        self._timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None
        self._users = 0

    async def start(self) -> None:
        """Open the HTTP client; the delivery stage and the resender share it, so it closes
        when the last of them stops."""
        self._users += 1
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout_s)

    async def stop(self) -> None:
        self._users = max(0, self._users - 1)
        client = self._client
        if self._users == 0 and client is not None:
            self._client = None
            await client.aclose()

    async def deliver(self, notices: Sequence[Notice]) -> None:
        """Send each change unless a later change of the same alert is already known (then
        that one is sent when its turn comes, or re-sent while it fires)."""
        await self.send([n for n in notices if self._firing.apply(n) is n])

    async def send(self, notices: Sequence[Notice]) -> None:
        """Post ``notices`` to every Alertmanager; :class:`DeliveryFailed` unless one took them."""
        if not notices:
            return
        if self._client is None:
            raise DeliveryFailed("the Alertmanager notifier is not started")
        now = datetime.now(UTC)
        alerts = [
            to_alertmanager(n, self._describer, now, self._resend_interval_s) for n in notices
        ]
        body = orjson.dumps(alerts)
        failed: list[str] = []
        for endpoint in self._endpoints:
            try:
                await post(self._client, endpoint, content=body, headers=_HEADERS)
            except DeliveryFailed as exc:
                failed.append(str(exc))
        if len(failed) == len(self._endpoints):
            raise DeliveryFailed("; ".join(failed))
        if failed:
            # Delivered: one Alertmanager of the cluster has it. The others miss this change
            # (as they would from Prometheus) and catch up on the firing alerts at each re-send.
            self._metrics.failures.labels(self.name).inc(len(failed))
            logger.warning("an Alertmanager did not take %d alert(s): %s", len(alerts), failed)


class AlertmanagerResender(LoopStage):
    """Re-sends the firing, unsilenced alerts of a :class:`FiringSet` every interval.

    The set is shared with the notifier's delivery and kept whole, from the topic's start, by a
    :class:`~alerting.notify.firing.FiringTracker`, so a restart goes on re-sending what fires.
    A failed re-send is counted and tried again at the next interval.
    """

    def __init__(
        self,
        notifier: AlertmanagerNotifier,
        firing: FiringSet,
        silences: SilenceStore,
        metrics: NotifierMetrics,
        *,
        interval_s: float,
    ) -> None:
        super().__init__("notify-alertmanager-resend")
        self._notifier = notifier
        self._firing = firing
        self._silences = silences
        self._metrics = metrics
        self._interval_s = interval_s
        self.resent = 0

    async def drain(self, timeout_s: float) -> None:
        return None  # re-sends owe nothing to anyone at a stop

    async def _open(self) -> None:
        await self._notifier.start()

    async def _close(self) -> None:
        await self._notifier.stop()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), self._interval_s)
            except TimeoutError:
                await self.resend()

    async def resend(self) -> None:
        """Post every firing alert that no silence covers now."""
        silences = self._silences.active()
        firing = [n for n in self._firing.firing() if not n.silenced_by(silences)]
        try:
            await self._notifier.send(firing)
        except DeliveryFailed as exc:
            self._metrics.resends.labels("failed").inc()
            logger.warning("re-sending %d firing alert(s) failed: %s", len(firing), exc)
            return
        self._metrics.resends.labels("delivered").inc()
        self.resent += len(firing)
