"""The backoff the pullers wait before retrying a 429, a 5xx or a failed connection."""

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from ingest.pollers.http import RetryPolicy, _retry_after


def test_backoff_grows_with_jitter_up_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=8, base_s=0.5, max_s=4.0)
    rng = random.Random(1)
    for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (7, 4.0)):
        delays = [policy.delay(attempt, None, rng) for _ in range(200)]
        assert ceiling / 2 <= min(delays)
        assert max(delays) <= ceiling
        assert max(delays) - min(delays) > ceiling / 4  # jittered, not fixed


def test_retry_after_is_honoured_as_a_floor() -> None:
    policy = RetryPolicy(base_s=0.5, max_s=60.0)
    rng = random.Random(2)
    delays = [policy.delay(1, 3.0, rng) for _ in range(100)]
    assert min(delays) >= 3.0
    assert max(delays) <= 3.5


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    assert _retry_after({"Retry-After": "2"}) == 2.0
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    waited = _retry_after({"Retry-After": soon})
    assert waited is not None
    assert 25 <= waited <= 30
    assert _retry_after({"Retry-After": "soon"}) is None
    assert _retry_after({}) is None
    assert _retry_after(None) is None
