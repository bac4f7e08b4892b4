"""Telling people about alerts: Prometheus Alertmanager and a signed webhook (or Slack).

Each notifier reads ``voicepulse.alerts`` in its own consumer group: the topic is the outbox, so
a notification survives a restart, and a receiver that is down holds back nothing else.
"""

from alerting.notify.build import build_dispatcher
from alerting.notify.errors import DeliveryAbandoned, DeliveryFailed, DeliveryRejected, NotifyError
from alerting.notify.metrics import NotifierMetrics
from alerting.notify.webhook import SIGNATURE_HEADER, sign

__all__ = [
    "SIGNATURE_HEADER",
    "DeliveryAbandoned",
    "DeliveryFailed",
    "DeliveryRejected",
    "NotifierMetrics",
    "NotifyError",
    "build_dispatcher",
    "sign",
]
