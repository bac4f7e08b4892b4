"""The pullers against the fake Twilio on loopback (real uvicorn) and a real Kafka broker.

The official SDK does every request (no mock anywhere): its paging, its auth, its errors.
"""

import time
from collections import defaultdict
from dataclasses import replace
from datetime import timedelta

import pytest
from prometheus_client import generate_latest

from ingest.pollers import build_puller, pull_once
from simulator.fake_twilio import FakeClock, FakeState, generate_state, serve_fake_twilio
from simulator.fake_twilio.state import FaultPlan
from tests.helpers import eventually, read_topic
from tests.pullers.conftest import PullSettings, by_id
from voicepulse import topics
from voicepulse.bus import create_bus
from voicepulse.envelope import Envelope

pytestmark = pytest.mark.kafka


def _expected_summaries(state: FakeState, backfill_days: int) -> dict[str, str]:
    """call SID -> processing state of every summary the fake serves now, in the window."""
    now = state.clock.now()
    start = now - timedelta(days=backfill_days)
    found = {}
    for call in state.calls_by_sid.values():
        summary = call.phase(now).summary
        if summary is not None and call.start >= start:
            found[call.sid] = summary
    return found


async def test_ten_thousand_calls_across_fifty_subaccounts_land_once_each(
    pull_settings: PullSettings, kafka_bootstrap: str, namespace: str
) -> None:
    state = generate_state(subaccounts=50, calls=10_000, days=2, seed=11)
    state.clock.freeze()
    async with serve_fake_twilio(state) as base:
        settings = pull_settings(
            state, base, pull_page_size=50, pull_insights_page_size=100, pull_concurrency=8
        )
        puller = await pull_once(settings, None, namespace=namespace)
    assert puller.failing() == []
    assert state.requests["calls"] >= 200  # 50 per page: four pages a subaccount at least

    calls = await read_topic(kafka_bootstrap, namespace, topics.TWILIO_CALLS)
    assert max(by_id(calls).values()) == 1
    assert {e.fields["call_sid"] for e in calls} == set(state.calls_by_sid)
    assert len(calls) == len(state.calls_by_sid)
    sample = calls[0]
    assert sample.type == "call-resource"
    assert sample.fields["origin"] == "poller"
    assert sample.parent_account_sid == state.parent.sid
    assert sample.raw is not None
    assert sample.raw["sid"] == sample.fields["call_sid"]
    assert sample.account_sid == state.calls_by_sid[sample.fields["call_sid"]].account_sid

    summaries = await read_topic(kafka_bootstrap, namespace, topics.INSIGHTS)
    assert max(by_id(summaries).values()) == 1
    expected = _expected_summaries(state, settings.pull_backfill_days)
    assert {e.fields["call_sid"]: e.fields["processing_state"] for e in summaries} == expected

    assert state.queries["usage?IncludeSubaccounts=false"] == state.requests["usage"]
    assert not [q for q in state.queries if q.startswith("summaries?EndTime")]
    usage = await read_topic(kafka_bootstrap, namespace, topics.USAGE)
    days = settings.pull_backfill_days + 1
    assert len(by_id(usage)) == 50 * len(settings.pull_usage_categories) * days
    assert max(by_id(usage).values()) == 1
    billed = sum(int(e.fields["count"] or 0) for e in usage if e.fields["category"] == "calls")
    assert billed == len(state.calls_by_sid)  # ``calls`` rolls up every call


async def test_late_prices_and_complete_summaries_arrive_as_new_envelopes(
    pull_settings: PullSettings, kafka_bootstrap: str, namespace: str
) -> None:
    state = generate_state(subaccounts=3, calls=300, days=1, recent_share=0.3, seed=12)
    state.clock.freeze()
    async with serve_fake_twilio(state) as base:
        settings = pull_settings(state, base)
        await pull_once(settings, None, namespace=namespace)
        first_calls = await read_topic(kafka_bootstrap, namespace, topics.TWILIO_CALLS)
        first_summaries = await read_topic(kafka_bootstrap, namespace, topics.INSIGHTS)
        state.clock.advance(timedelta(minutes=45))
        await pull_once(settings, None, namespace=namespace)
    calls = await read_topic(kafka_bootstrap, namespace, topics.TWILIO_CALLS)
    summaries = await read_topic(kafka_bootstrap, namespace, topics.INSIGHTS)
    assert max(by_id(calls).values()) == 1
    assert max(by_id(summaries).values()) == 1

    unrated = {e.fields["call_sid"] for e in first_calls if e.fields["cost"] is None}
    assert len(unrated) > 20
    latest = _latest(calls)
    assert all(latest[sid].fields["cost"] is not None for sid in unrated)
    assert all(latest[sid].fields["status"] != "in-progress" for sid in unrated)
    for sid in unrated:
        assert latest[sid].fields["cost"] == f"{state.calls_by_sid[sid].price:.5f}"

    partial = {
        e.fields["call_sid"] for e in first_summaries if e.fields["processing_state"] == "partial"
    }
    assert len(partial) > 20
    final = _latest(summaries)
    assert all(final[sid].fields["processing_state"] == "complete" for sid in partial)
    assert all(final[sid].id.split(":")[1] == "complete" for sid in partial)


def _latest(envelopes: list[Envelope]) -> dict[str, Envelope]:
    """Per call, the last envelope on its partition (one partition per subaccount)."""
    latest: dict[str, Envelope] = {}
    for envelope in sorted(envelopes, key=lambda e: e.received_at):
        latest[envelope.fields["call_sid"]] = envelope
    return latest


async def test_a_restart_in_the_middle_resumes_from_the_cursors(
    pull_settings: PullSettings, kafka_bootstrap: str, namespace: str
) -> None:
    state = generate_state(subaccounts=10, calls=2000, days=2, recent_share=0.0, seed=13)
    key_sid, (secret, _) = next(iter(state.api_keys.items()))
    async with serve_fake_twilio(state) as base:
        settings = pull_settings(
            state,
            base,
            twilio_auth_token=None,
            twilio_api_key_sid=key_sid,
            twilio_api_key_secret=secret,
            pull_page_size=20,
            pull_concurrency=2,
        )
        bus = create_bus(settings, namespace=namespace)
        await bus.start()
        puller = build_puller(settings, bus, None, once=True)
        await puller.start()

        async def pages() -> int:
            return state.requests["calls"]

        await eventually(pages, lambda n: n >= 40, timeout_s=60, interval_s=0.01)
        await puller.stop()  # mid-pass: some subaccounts done, some mid-listing, some untouched
        await bus.stop()
        listed_before = state.served["calls"]
        assert 0 < listed_before < len(state.calls_by_sid)
        puller = await pull_once(settings, None, namespace=namespace)
        listed_after = state.served["calls"] - listed_before
    assert puller.failing() == []
    calls = await read_topic(kafka_bootstrap, namespace, topics.TWILIO_CALLS)
    assert {e.fields["call_sid"] for e in calls} == set(state.calls_by_sid)
    duplicates = sum(n - 1 for n in by_id(calls).values())
    assert duplicates <= 2 * 20  # at most the pages in flight when it stopped
    # Subaccounts finished before the restart were listed again only from their cursor (today).
    assert listed_after < len(state.calls_by_sid)


async def test_a_storm_of_429_and_5xx_slows_the_pull_but_loses_nothing(
    pull_settings: PullSettings, kafka_bootstrap: str, namespace: str
) -> None:
    state = generate_state(subaccounts=4, calls=400, days=1, seed=14)
    state.clock.freeze()
    # Seeded: the draws, whichever requests they fall on, hold 429s and 5xx early on (unseeded,
    # a pull of a few dozen requests drew no 5xx about once in a hundred runs).
    state.faults = FaultPlan(rate_429=0.4, rate_5xx=0.1, retry_after_s=1, seed=1)
    async with serve_fake_twilio(state) as base:
        settings = pull_settings(
            state,
            base,
            pull_max_attempts=15,
            pull_usage_categories=["calls", "calls-outbound"],
            pull_page_size=50,
        )
        started = time.monotonic()
        puller = await pull_once(settings, None, namespace=namespace)
        elapsed = time.monotonic() - started
    assert puller.failing() == []
    scraped = generate_latest(puller.metrics.registry).decode()
    assert _sample(scraped, 'voicepulse_pull_retries_total{reason="429"}') >= 5
    assert _sample(scraped, 'voicepulse_pull_retries_total{reason="5xx"}') >= 1
    assert state.retry_gaps
    assert min(state.retry_gaps) >= 1.0  # Retry-After honoured
    assert elapsed >= 1.0
    calls = await read_topic(kafka_bootstrap, namespace, topics.TWILIO_CALLS)
    assert {e.fields["call_sid"] for e in calls} == set(state.calls_by_sid)
    assert max(by_id(calls).values()) == 1
    summaries = await read_topic(kafka_bootstrap, namespace, topics.INSIGHTS)
    assert {e.fields["call_sid"] for e in summaries} == set(_expected_summaries(state, 3))


def _sample(scraped: str, name: str) -> float:
    line = next(line for line in scraped.splitlines() if line.startswith(name))
    return float(line.rsplit(" ", 1)[1])


async def test_a_failing_subaccount_and_one_without_insights_do_not_hold_the_others_back(
    pull_settings: PullSettings, kafka_bootstrap: str, namespace: str
) -> None:
    state = generate_state(subaccounts=4, calls=200, days=1, seed=15)
    broken, no_insights, *healthy = list(state.subaccounts)
    state.faults.failing_accounts[broken] = 500
    state.set_insights(no_insights, enabled=False)
    async with serve_fake_twilio(state) as base:
        settings = pull_settings(state, base, pull_max_attempts=2)
        puller = await pull_once(settings, None, namespace=namespace)
    statuses = defaultdict(set)
    for account_sid, resource, status in puller.failing():
        statuses[account_sid].add((resource, status))
    assert statuses[broken] == {("calls", "failing"), ("insights", "failing"), ("usage", "failing")}
    assert statuses[no_insights] == {("insights", "insights_unavailable")}
    assert set(statuses) == {broken, no_insights}
    calls = await read_topic(kafka_bootstrap, namespace, topics.TWILIO_CALLS)
    pulled = {e.fields["call_sid"] for e in calls}
    for account_sid in [no_insights, *healthy]:
        assert {c.sid for c in state.calls_by_account[account_sid]} <= pulled
    assert not {c.sid for c in state.calls_by_account[broken]} & pulled


async def test_items_left_behind_by_the_window_are_fetched_one_by_one_until_settled(
    pull_settings: PullSettings, kafka_bootstrap: str, namespace: str
) -> None:
    """Unrated calls and partial summaries older than the listing windows are re-fetched
    (Call and Summary fetches through the SDK) until priced or complete; a call never rated
    is given up after the maximum age."""
    state = generate_state(subaccounts=2, calls=120, days=1, recent_share=0.4, seed=16)
    state.clock.freeze()
    never = replace(
        next(c for c in state.calls_by_sid.values() if c.end < state.clock.now()),
        sid="CA" + "f" * 32,
        price_delay=timedelta(days=100),
    )
    state.add_calls([never])
    ours = FakeClock()
    ours.freeze()
    async with serve_fake_twilio(state) as base:
        settings = pull_settings(state, base)

        async def pull() -> None:
            puller = await pull_once(settings, None, namespace=namespace, clock=ours.now)
            assert puller.failing() == []

        await pull()
        first_calls = await read_topic(kafka_bootstrap, namespace, topics.TWILIO_CALLS)
        unrated = {e.fields["call_sid"] for e in first_calls if e.fields["cost"] is None}
        assert never.sid in unrated
        ours.advance(timedelta(hours=26))
        await pull()  # still listed from the old cursor; the cursors move past these calls
        assert state.requests["call"] == 0
        state.clock.advance(timedelta(minutes=45))  # Twilio rates them, Insights completes
        ours.advance(timedelta(minutes=1))
        await pull()
        assert state.requests["call"] == len(unrated)
        assert state.requests["summary"] > 0
        ours.advance(timedelta(days=3))  # the never-rated call is now past the maximum age
        await pull()
        await pull()
        assert state.requests["call"] == len(unrated)
    calls = _latest(await read_topic(kafka_bootstrap, namespace, topics.TWILIO_CALLS))
    assert all(calls[sid].fields["cost"] is not None for sid in unrated - {never.sid})
    assert calls[never.sid].fields["cost"] is None
    summaries = await read_topic(kafka_bootstrap, namespace, topics.INSIGHTS)
    assert max(by_id(summaries).values()) == 1
    assert {s.fields["processing_state"] for s in _latest(summaries).values()} == {"complete"}
