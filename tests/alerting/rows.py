"""Closed health rows built with the processors' own window counters, for the alert tests."""

import itertools
from typing import Any

from processors.windows import Window

T0 = 1_796_000_400  # a whole hour (2026-11-28T...:00:00Z), epoch seconds


def row(
    minute: int,
    group: str = "outbound",
    *,
    attempts: int = 0,
    answered: int | None = None,
    talk_s: int = 90,
    short: int = 0,
    froms: int = 20,
    attest: str = "AAAB",
    created: int = 0,
    queue_ms: int | None = None,
    rejected: int = 0,
    errors: int = 0,
    cps_limit: float = 1.0,
    closed: bool = True,
) -> dict[str, Any]:
    """The row of window ``T0 + 60 * minute``: ``attempts`` calls ended there, of which
    ``answered`` (default: all) answered, ``short`` of them for 5 s and the rest for
    ``talk_s``; unanswered ones busy. Outbound calls cycle over ``froms`` From numbers,
    inbound ones over the attestation letters in ``attest``. ``created`` calls were created in
    the first ``created`` seconds (one a second) with queue time ``queue_ms``; ``rejected`` of
    the attempts were trunk CPS rejections; ``errors`` debugger errors."""
    answered = attempts if answered is None else answered
    window = Window()
    numbers = itertools.cycle([f"+1415555{i:04d}" for i in range(froms)])
    letters = itertools.cycle(attest)
    for i in range(attempts):
        is_answered = i < answered
        talk = (5 if i < short else talk_s) if is_answered else 0
        status = "completed" if is_answered else "busy"
        from_ = next(numbers) if group == "outbound" else None
        attestation = next(letters) if group == "inbound" else None
        window.apply(
            "end",
            (status, is_answered, talk, talk <= 12, i < rejected, from_, attestation),
            1,
        )
    for second in range(created):
        window.apply("created", (second % 60, queue_ms), 1)
    for i in range(errors):
        window.debugger(f"NO{minute}x{i}", "error", "11200")
    return {**window.fields(group, T0 + 60 * minute, cps_limit), "closed": closed}


def healthy(minute: int, **changes: Any) -> dict[str, Any]:
    """A healthy outbound minute: 10 calls, all answered for 90 s, 20 From numbers."""
    return row(minute, **({"attempts": 10} | changes))
