"""From Twilio's REST API to the bill: pulled Call resources join the calls assembled from
status callbacks, and a price that Twilio sets late clears the ``estimated`` flag in billing.

Real parts throughout: the fake Twilio on loopback (uvicorn), the SDK, the signed-webhook
receiver, Kafka, the processors, the sink and DuckLake, read from a second connection while the
pipeline runs.
"""

from datetime import datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingest.app import STATUS_PATH
from ingest.pollers import Puller
from ingest.tenants import load_tenants
from simulator.fake_twilio import FakeCall, FakeState, generate_state, serve_fake_twilio
from simulator.fake_twilio.command import tenants_toml
from tests.helpers import eventually, post_signed
from tests.pullers.conftest import PullSettings
from voicepulse.pipeline import Role, build_pipeline
from warehouse.lake import open_lake

pytestmark = pytest.mark.kafka


def _callbacks(call: FakeCall) -> list[tuple[datetime, dict[str, str]]]:
    """The status callbacks Twilio sends for a call of the fake, in order."""
    steps = [("initiated", call.created), ("ringing", call.start)]
    if call.answered is not None:
        steps.append(("in-progress", call.answered))
    steps.append((call.final_status, call.end))
    base = {
        "AccountSid": call.account_sid,
        "CallSid": call.sid,
        "ApiVersion": "2010-04-01",
        "Direction": call.direction,
        "From": call.from_,
        "To": call.to,
        "CallbackSource": "call-progress-events",
    }
    sent = []
    for number, (status, moment) in enumerate(steps):
        params = {**base, "CallStatus": status, "SequenceNumber": str(number)}
        params["Timestamp"] = format_datetime(moment.replace(microsecond=0))
        if number == len(steps) - 1:
            params["CallDuration"] = str(call.duration_s)
        sent.append((moment, params))
    return sent


async def _post_callbacks(state: FakeState, url: str, tenants_file: Path) -> int:
    tenants = load_tenants(tenants_file)
    ended = [c for c in state.calls_by_sid.values() if c.end <= state.clock.now()]
    # In the order Twilio sends them: by time, the calls interleaved.
    sent = sorted(
        ((moment, call, params) for call in ended for moment, params in _callbacks(call)),
        key=lambda item: (item[0], item[1].sid),
    )
    async with httpx.AsyncClient() as client:
        for _, call, params in sent:
            response = await post_signed(client, url, tenants[call.account_sid], params)
            assert response.status_code == 204, response.text
    return len(ended)


async def test_late_prices_reach_the_call_facts_and_clear_estimated_billing(
    pull_settings: PullSettings, kafka_bootstrap: str, namespace: str, tmp_path: Path
) -> None:
    state = generate_state(subaccounts=2, calls=40, days=0.1, recent_share=0.5, seed=21)
    state.clock.freeze()
    tenants_file = tmp_path / "tenants.toml"
    tenants_file.write_text(tenants_toml(state), encoding="utf-8")
    async with serve_fake_twilio(state) as base:
        settings = pull_settings(
            state,
            base,
            tenants_file=tenants_file,
            pull_discover_subaccounts=False,
            pull_interval_s=0.5,
        )
        roles = {Role.SERVE, Role.PULL, Role.PROCESS, Role.SINK}
        pipeline = build_pipeline(settings, roles, namespace=namespace)
        await pipeline.start()
        reader = open_lake(settings, read_only=True)
        try:
            assert pipeline.receiver is not None
            url = f"http://127.0.0.1:{pipeline.receiver.port}{STATUS_PATH}"
            ended = await _post_callbacks(state, url, tenants_file)

            async def billed() -> list[tuple[Any, ...]]:
                return reader.sql(
                    "SELECT count(*), count(*) FILTER (WHERE estimated), "
                    "count(*) FILTER (WHERE answered) FROM billed_calls"
                ).fetchall()

            try:
                before = await eventually(billed, lambda r: r[0][0] == ended, timeout_s=90)
            except AssertionError as exc:
                seen = reader.sql(
                    "SELECT (SELECT count(*) FROM calls), (SELECT count(*) FROM calls WHERE "
                    "terminal), (SELECT count(*) FROM call_events), "
                    "(SELECT count(*) FROM call_resources)"
                ).fetchall()
                raise AssertionError(f"{exc}; calls, terminal, events, resources: {seen}") from exc
            assert before[0][1] > 0  # answered calls Twilio has not rated yet
            state.clock.advance(timedelta(minutes=45))
            puller = pipeline.stages[0]
            assert isinstance(puller, Puller)
            try:
                after = await eventually(billed, lambda r: r[0][1] == 0, timeout_s=90)
            except AssertionError as exc:
                raise AssertionError(f"{exc}; pulls not ok: {puller.failing()}") from exc
            costs = dict(reader.sql("SELECT call_sid, cost FROM billed_calls").fetchall())
        finally:
            reader.close()
            await pipeline.stop()
    assert after[0][0] == ended
    priced = {c.sid: c.price for c in state.calls_by_sid.values() if c.end <= state.clock.now()}
    assert costs == priced
