"""One call of one subaccount as every source sees it, built by the ingest side's own envelope
functions: status callbacks, the polled Call resource, Insights summaries, a debugger event.
Direction and the few values the tests compare are parameters; the rest is Twilio-shaped."""

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

from ingest.debugger import debugger_envelope
from ingest.normalize import status_callback_envelope
from ingest.pollers.envelopes import call_envelope, insights_envelope
from voicepulse.envelope import Envelope

SUB = "AC" + "3" * 32
PARENT = "AC" + "4" * 32
CALL = "CA" + "5" * 32
T0 = datetime(2026, 11, 26, 10, 5, 3, tzinfo=UTC)
"""When the call was created; it ends 50 s later."""


def callback(
    seq: int,
    status: str,
    at: datetime,
    *,
    call: str = CALL,
    direction: str = "trunking-terminating",
    **extra: str,
) -> Envelope:
    """A signed-and-accepted status callback of ``call`` (``extra``: more Twilio parameters)."""
    params = {
        "AccountSid": SUB,
        "CallSid": call,
        "CallStatus": status,
        "Direction": direction,
        "From": "+14155550100",
        "To": "+16285550100",
        "SequenceNumber": str(seq),
        "Timestamp": format_datetime(at),
        **extra,
    }
    pairs = list(params.items())
    return status_callback_envelope(
        pairs, body=urlencode(pairs).encode(), idempotency_token=None, parent_account_sid=PARENT
    )


def resource(
    price: str, *, direction: str = "trunking-terminating", queue_time: str = ""
) -> Envelope:
    """The polled Call resource of the completed call (``price`` "" while not rated)."""
    raw = {
        "sid": CALL,
        "account_sid": SUB,
        "status": "completed",
        "direction": direction,
        "from": "+14155550100",
        "to": "+16285550100",
        "queue_time": queue_time,
        "duration": "42",
        "price": price,
        "price_unit": "usd",
        "date_created": format_datetime(T0),
        "start_time": format_datetime(T0),
        "end_time": format_datetime(T0 + timedelta(seconds=50)),
    }
    return call_envelope(raw, PARENT)


def summary(
    state: str,
    *,
    direction: str = "trunking_terminating",
    call_type: str = "trunking",
    created: datetime = T0,
    **properties: Any,
) -> Envelope:
    """The call's Insights summary in ``state`` (partial, complete); ``properties`` adds to
    its PDD, who hung up and the last SIP response."""
    raw = {
        "call_sid": CALL,
        "account_sid": SUB,
        "processing_state": state,
        "call_type": call_type,
        "call_state": "completed",
        "created_time": created.isoformat(),
        "start_time": T0.isoformat(),
        "end_time": (T0 + timedelta(seconds=50)).isoformat(),
        "duration": 50,
        "properties": {
            "direction": direction,
            "pdd_ms": 1800,
            "disconnected_by": "callee",
            "last_sip_response_num": 200,
            **properties,
        },
        "tags": ["high_pdd"],
    }
    return insights_envelope(raw, PARENT)


def debugger() -> Envelope:
    """A debugger 32001 (trunk CPS rejection) event about the call, 1 s after it was created."""
    payload = {"resource_sid": CALL, "error_code": "32001", "service_sid": None}
    params = [
        ("AccountSid", SUB),
        ("ParentAccountSid", PARENT),
        ("Sid", "NO" + "6" * 32),
        ("Level", "ERROR"),
        ("Timestamp", (T0 + timedelta(seconds=1)).isoformat()),
        ("PayloadType", "application/json"),
        ("Payload", json.dumps(payload)),
    ]
    return debugger_envelope(params, parent_account_sid=PARENT)
