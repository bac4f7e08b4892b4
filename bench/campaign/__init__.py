"""The production campaign: every stage as its own OS process on a real Kafka broker of its
own, driven open loop by ``voicepulse simulate`` with its ground truth, under faults, with a
verdict computed from the topic and the warehouse against that truth.

    .venv/bin/python -m bench.campaign --rate 5000 --duration 600 --faults all --json report.json

Modules: :mod:`.cluster` (the broker and the stage processes), :mod:`.probes` (CPU and RSS per
process, every second), :mod:`.reader` (the freshness reader, a process of its own),
:mod:`.faults` (what is done to the running pipeline), :mod:`.verdict` (what must hold),
:mod:`.run` (the campaign and its report).
"""
