"""A fake Twilio for tests and demos: the Accounts, Calls, Usage Records and Voice Insights
endpoints the pollers read, on loopback, with Twilio's paging, filters, auth and faults.

Tests check its answers against Twilio's own OpenAPI specs, so it cannot drift from the API.
"""

from simulator.fake_twilio.app import TwilioError, create_fake_app
from simulator.fake_twilio.generate import generate_state, new_sid
from simulator.fake_twilio.server import serve_fake_twilio
from simulator.fake_twilio.state import FakeAccount, FakeCall, FakeClock, FakeState, FaultPlan

__all__ = [
    "FakeAccount",
    "FakeCall",
    "FakeClock",
    "FakeState",
    "FaultPlan",
    "TwilioError",
    "create_fake_app",
    "generate_state",
    "new_sid",
    "serve_fake_twilio",
]
