"""The simulated Twilio: a tool to drive and check VoicePulse, never on the product's path.

- :class:`Simulator` (``voicepulse simulate --url``) posts signed, Twilio-shaped status
  callbacks to a receiver, open loop at a target rate, and writes its ground truth;
  :func:`write_scenario` (``voicepulse simulate --envelopes``) writes a finished scenario and
  its expected metrics instead; :func:`callback_rate` sizes the ``voicepulse run`` demo.
- The traffic model (:mod:`simulator.traffic`): per-tenant profiles (:data:`PROFILES`) whose
  calls :func:`generate` draws, as envelopes (:func:`envelopes`) in a delivery order with
  duplicates and disorder (:func:`delivery`).
- The ground truth (:mod:`simulator.truth`): :func:`expected_rows`, the health rows a correct
  processor gives for the same traffic.
- The fake Twilio REST API (``voicepulse fake-twilio``) is :mod:`simulator.fake_twilio`.

The production packages (ingest, processors, warehouse, alerting, dashboards) never import this
one; only the composition (``voicepulse.cli``, ``voicepulse.pipeline``), tests and benchmarks do.
"""

from simulator.simulate import Progress, Simulator, callback_rate, write_scenario
from simulator.traffic import (
    PROFILES,
    Profile,
    SimCall,
    SimTenant,
    Traffic,
    delivery,
    envelopes,
    generate,
)
from simulator.truth import expected_rows

__all__ = [
    "PROFILES",
    "Profile",
    "Progress",
    "SimCall",
    "SimTenant",
    "Simulator",
    "Traffic",
    "callback_rate",
    "delivery",
    "envelopes",
    "expected_rows",
    "generate",
    "write_scenario",
]
