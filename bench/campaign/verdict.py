"""What a campaign must show, computed from three independent records of the run:

1. the load driver's truth (``voicepulse simulate --truth``): one line per callback written,
   with its answer;
2. the status topic, read back from its start: the envelope ids the receiver made durable;
3. the warehouse, read at the end.

Every callback answered 2xx must be on the topic (nothing acknowledged is lost), and the topic
may hold nothing that was not sent. A callback whose answer never came (``closed``,
``timeout``: the receiver was killed, or the connection dropped) may or may not have been
stored; the topic says which, so the expected warehouse is computed from the truth lines whose
envelope is on the topic, by the metric definitions of docs/metrics.md. The warehouse must then
equal it per subaccount (and the ISV aggregate): every row once, every count exact.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson

from voicepulse.messages import ISV_ACCOUNT

__all__ = [
    "HEALTH",
    "Verdict",
    "event_id",
    "expected_figures",
    "judge",
    "judge_topic",
    "read_topic_ids",
    "read_truth",
    "warehouse_figures",
    "with_warehouse",
]

TERMINAL = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
HEALTH = (
    "attempts",
    "completed",
    "busy",
    "no_answer",
    "failed",
    "canceled",
    "answered",
    "talk_seconds",
    "short_calls",
    "trunk_cps_rejections",
)
SHORT_CALL_S = 12  # docs/metrics.md: an answered call of at most 12 s is short
_OUTBOUND = frozenset({"outbound-api", "outbound-dial", "trunking-terminating"})

Figures = dict[str, dict[str, int]]
"""account_sid (or ISV) -> figure name -> value."""


def event_id(line: Mapping[str, Any]) -> str:
    """The envelope id the receiver gives a status callback (CallSid:SequenceNumber)."""
    return f"{line['call_sid']}:{line['sequence']}"


def read_truth(path: Path) -> list[dict[str, Any]]:
    with path.open("rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]


def _ok(line: Mapping[str, Any]) -> bool:
    outcome = line["outcome"]
    return isinstance(outcome, int) and 200 <= outcome < 300


def expected_figures(truth: Iterable[Mapping[str, Any]], stored: set[str]) -> Figures:
    """The warehouse that the stored callbacks make, per subaccount and for the ISV."""
    calls: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    figures: Figures = defaultdict(Counter)
    for line in truth:
        if event_id(line) in stored:
            calls[line["call_sid"]].append(line)
            figures[line["account_sid"]]["events"] += 1
    for lines in calls.values():
        _call(figures, lines)
    isv = figures[ISV_ACCOUNT]
    for account, counts in list(figures.items()):
        if account != ISV_ACCOUNT:
            for name in HEALTH:
                isv[name] += counts[name]
    return {account: dict(counts) for account, counts in figures.items()}


def _call(figures: Figures, lines: list[Mapping[str, Any]]) -> None:
    """One call's share: counted at its terminal callback, if that was stored."""
    terminal = next(
        (x for x in lines if x["call_status"] in TERMINAL and x["call_duration"] is not None),
        None,
    )
    if terminal is None:
        return  # still open: no attempt, no calls row, nothing billed
    counts = figures[terminal["account_sid"]]
    status = terminal["call_status"]
    duration = int(terminal["call_duration"] or 0)
    in_progress = any(x["call_status"] == "in-progress" for x in lines)
    answered = in_progress or (status == "completed" and duration > 0)
    counts["calls"] += 1
    counts["attempts"] += 1
    counts[status.replace("-", "_")] += 1
    if answered:
        counts["answered"] += 1
        counts["talk_seconds"] += duration
        counts["short_calls"] += duration <= SHORT_CALL_S
        counts["billed_minutes"] += -(-duration // 60)
    outbound = terminal["direction"] in _OUTBOUND
    counts["trunk_cps_rejections"] += outbound and terminal.get("sip_response_code") == 503


def warehouse_figures(con: duckdb.DuckDBPyConnection) -> tuple[Figures, list[str]]:
    """The same figures read from the warehouse, and its rows stored more than once."""
    figures: Figures = defaultdict(dict)
    doubles: list[str] = []
    queries = {
        "events": "SELECT account_sid, count(*), count(DISTINCT event_id) FROM call_events"
        " GROUP BY ALL",
        "calls": "SELECT account_sid, count(*), count(DISTINCT call_sid) FROM calls"
        " WHERE terminal GROUP BY ALL",
        "health_minute": "SELECT account_sid, count(*),"
        " count(DISTINCT (direction_group, window_start)) FROM health_minute GROUP BY ALL",
    }
    for name, sql in queries.items():
        for account, rows, distinct in con.sql(sql).fetchall():
            if name != "health_minute":
                figures[account][name] = int(distinct)
            if rows != distinct:
                doubles.append(f"{account}: {name} holds {rows - distinct} rows twice")
    sums = ", ".join(f"sum({n})" for n in HEALTH)
    for account, *values in con.sql(
        f"SELECT account_sid, {sums} FROM health_minute GROUP BY ALL"
    ).fetchall():
        figures[account] |= {n: int(v or 0) for n, v in zip(HEALTH, values, strict=True)}
    for account, minutes in con.sql(
        "SELECT account_sid, sum(billed_minutes) FROM billed_calls GROUP BY ALL"
    ).fetchall():
        figures[account]["billed_minutes"] = int(minutes or 0)
    return dict(figures), doubles


async def topic_size(bootstrap: str, topic: str) -> int:
    """Records on ``topic`` now (the sum of its partitions' end offsets)."""
    from aiokafka import AIOKafkaConsumer

    parts = await _partitions(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        return int(sum((await consumer.end_offsets(parts)).values())) if parts else 0
    finally:
        await consumer.stop()


async def _partitions(bootstrap: str, topic: str) -> list[Any]:
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return [TopicPartition(topic, p["partition"]) for p in described["partitions"]]


async def read_topic_ids(bootstrap: str, topic: str) -> Counter[str]:
    """Every envelope id on ``topic``, from its start to its end now, with its count."""
    from aiokafka import AIOKafkaConsumer

    parts = await _partitions(bootstrap, topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_bytes=16 * 1024**2
    )
    await consumer.start()
    ids: Counter[str] = Counter()
    try:
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        left = {tp for tp in parts if ends[tp] > 0}
        while left:
            batches = await consumer.getmany(timeout_ms=1000, max_records=20000)
            for records in batches.values():
                for record in records:
                    if record.value is not None:
                        ids[_id(record.value)] += 1
            for tp in list(left):  # a partition may end in markers that yield no record
                if await consumer.position(tp) >= ends[tp]:
                    left.discard(tp)
    finally:
        await consumer.stop()
    return ids


def _id(value: bytes) -> str:
    if value.startswith(b'{"id":"'):
        return value[7 : value.index(b'"', 7)].decode()
    return str(orjson.loads(value)["id"])


@dataclass
class Verdict:
    """The outcome: ``ok`` when nothing was lost, counted twice or different from the truth."""

    problems: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    expected: Figures = field(default_factory=dict)
    actual: Figures = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": self.problems,
            "counts": self.counts,
            "expected": self.expected,
            "actual": self.actual,
        }


def judge(
    truth: list[dict[str, Any]],
    on_topic: Counter[str],
    actual: Figures,
    doubles: list[str],
    *,
    limit: int = 20,
) -> Verdict:
    """Compare the three records; each difference is one line of ``problems``."""
    return with_warehouse(judge_topic(truth, on_topic), actual, doubles, limit=limit)


def judge_topic(truth: list[dict[str, Any]], on_topic: Counter[str]) -> Verdict:
    """The topic against the truth, and the warehouse that the topic makes (``expected``)."""
    verdict = Verdict()
    sent = {event_id(x): x for x in truth}
    acked = [i for i, x in sent.items() if _ok(x)]
    lost = [i for i in acked if i not in on_topic]
    unknown = [i for i in on_topic if i not in sent]
    ambiguous = [i for i, x in sent.items() if x["outcome"] in ("closed", "timeout")]
    outcomes = Counter(str(x["outcome"]) for x in truth)
    verdict.counts = {
        "sent": len(truth),
        "answered_2xx": len(acked),
        "answered_503": outcomes.get("503", 0),
        "not_answered": len(ambiguous),
        "not_answered_but_stored": sum(1 for i in ambiguous if i in on_topic),
        "other_errors": len(truth) - len(acked) - outcomes.get("503", 0) - len(ambiguous),
        "on_topic_records": sum(on_topic.values()),
        "on_topic_distinct": len(on_topic),
        "lost_2xx": len(lost),
    }
    if len(sent) != len(truth):
        verdict.problems.append(f"the truth names {len(truth) - len(sent)} callbacks twice")
    if lost:
        verdict.problems.append(
            f"{len(lost)} callbacks answered 2xx are not on the topic, e.g. {lost[:5]}"
        )
    if unknown:
        verdict.problems.append(
            f"{len(unknown)} envelopes on the topic were never sent, e.g. {unknown[:5]}"
        )
    stored_503 = [i for i, x in sent.items() if x["outcome"] == 503 and i in on_topic]
    if stored_503:
        verdict.problems.append(f"{len(stored_503)} callbacks answered 503 were stored anyway")
    verdict.expected = expected_figures(truth, set(on_topic))
    return verdict


def with_warehouse(
    topic: Verdict, actual: Figures, doubles: list[str], *, limit: int = 20
) -> Verdict:
    """``topic``'s verdict with the warehouse compared to its ``expected``."""
    problems = [*topic.problems, *doubles, *_differences(topic.expected, actual, limit)]
    return Verdict(problems, topic.counts, topic.expected, actual)


def _differences(expected: Figures, actual: Figures, limit: int) -> list[str]:
    out = []
    for account in sorted(set(expected) | set(actual)):
        want, got = expected.get(account, {}), actual.get(account, {})
        for name in sorted(set(want) | set(got)):
            if want.get(name, 0) != got.get(name, 0):
                out.append(
                    f"{account} {name}: warehouse {got.get(name, 0)}, truth {want.get(name, 0)}"
                    f" ({got.get(name, 0) - want.get(name, 0):+d})"
                )
    if len(out) > limit:
        out = [*out[:limit], f"... and {len(out) - limit} more differences"]
    return out


def verdict_of(
    truth_path: Path, bootstrap: str, topic: str, con: duckdb.DuckDBPyConnection
) -> Verdict:
    """Read the three records and judge them."""
    on_topic = asyncio.run(read_topic_ids(bootstrap, topic))
    actual, doubles = warehouse_figures(con)
    return judge(read_truth(truth_path), on_topic, actual, doubles)
