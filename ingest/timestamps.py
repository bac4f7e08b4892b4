"""Event times that cannot be right, said at the door: flagged and counted, never refused.

A signed callback is always kept (a 4xx would make Twilio retry it for ever). Its Timestamp is
compared with the moment it was received:

- ``timestamp_in_future``: more than the tolerance (``event_time_tolerance_s``) after it, by
  less than a day: a clock running ahead.
- ``timestamp_implausible``: more than a day after it, or before 2008, when Twilio's first API
  opened: no clock skew explains it (a test event, a capture edited by hand, a zeroed clock).

The processor counts an event stamped more than the tolerance after its receipt, flagged either
way, at its receive time (:mod:`processors.engine`); an old one it takes as stamped. Each flagged
event is counted in ``voicepulse_ingest_odd_timestamps`` by route and flag, and logged at most
once a minute per subaccount (with how many came since the last line).
"""

import logging
import time
from collections.abc import Callable
from typing import Final

from prometheus_client import Counter

from processors.vocabulary import epoch
from voicepulse.envelope import Envelope

__all__ = ["IMPLAUSIBLE_AHEAD_S", "TWILIO_EPOCH", "TimestampCheck", "timestamp_flag"]

logger = logging.getLogger(__name__)

IMPLAUSIBLE_AHEAD_S: Final = 86_400
TWILIO_EPOCH: Final = 1_199_145_600
"""2008-01-01T00:00:00Z: no Twilio event is older."""
_LOG_EVERY_S: Final = 60.0


def timestamp_flag(event_at: int, received_at: float, tolerance_s: int) -> str | None:
    """The flag for an event stamped ``event_at`` and received at ``received_at`` (epoch
    seconds), or None when its time is plausible."""
    if event_at > received_at + IMPLAUSIBLE_AHEAD_S or event_at < TWILIO_EPOCH:
        return "timestamp_implausible"
    if event_at > received_at + tolerance_s:
        return "timestamp_in_future"
    return None


class TimestampCheck:
    """Flags, counts and logs the odd Timestamps of the envelopes the receiver accepts."""

    def __init__(
        self,
        tolerance_s: int,
        counter: Counter,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tolerance = tolerance_s
        self._counter = counter
        self._clock = clock
        self._monotonic = monotonic
        self._logged_at: dict[str, float] = {}  # per subaccount
        self._unlogged: dict[str, int] = {}

    def check(self, route: str, envelope: Envelope) -> None:
        """Add the flag to ``envelope``'s ``flags`` when its ``timestamp`` is odd."""
        event_at = epoch(envelope.fields.get("timestamp"))
        if event_at is None:
            return  # none, or unparsable (flagged as such when the envelope was built)
        received = self._clock()
        flag = timestamp_flag(event_at, received, self._tolerance)
        if flag is None:
            return
        envelope.fields["flags"].append(flag)
        self._counter.labels(route, flag).inc()
        self._log(envelope, flag, event_at - received)

    def _log(self, envelope: Envelope, flag: str, ahead_s: float) -> None:
        account = envelope.account_sid
        count = self._unlogged.get(account, 0) + 1
        now = self._monotonic()
        if now - self._logged_at.get(account, -_LOG_EVERY_S) < _LOG_EVERY_S:
            self._unlogged[account] = count
            return
        logger.warning(
            "subaccount %s: %s stamped %s (%+.0f s from its receipt), kept and flagged %s "
            "(%d such events since the last line)",
            account,
            envelope.type,
            envelope.fields.get("timestamp"),
            ahead_s,
            flag,
            count,
        )
        self._logged_at[account] = now
        self._unlogged[account] = 0
