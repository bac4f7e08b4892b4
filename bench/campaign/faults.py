"""Faults done to the running pipeline, each switchable, on a plan fixed before the run.

- ``kill``: SIGKILL a stage picked at random (each stage once before any twice, the receiver,
  processors and sink before the alert stage), restart it after 1 s;
- ``broker``: stop the broker (``scripts/kafka/kafka stop``), start it again after a while;
- ``rebalance``: stop one processor cleanly (its partitions move to the other), start it again;
- ``disk``: the receiver's spool lives on a small tmpfs, so while the broker is down the spool
  fills and the receiver must answer 503 (never 2xx for what it did not store). Needs root to
  mount; without it, the fault is skipped and the report says so.
"""

from __future__ import annotations

import asyncio
import logging
import random
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.campaign.cluster import Cluster

__all__ = ["KINDS", "Fault", "mount_spool_disk", "plan", "unmount"]

KINDS = ("kill", "broker", "rebalance", "disk")

logger = logging.getLogger(__name__)


@dataclass
class Fault:
    """One fault: ``at`` and ``until`` in seconds since the load started."""

    kind: str
    at: float
    hold_s: float = 0.0  # how long the broker or the processor stays down
    target: str = ""
    started: float | None = None  # wall clock
    ended: float | None = None  # wall clock: restarted, started again
    recovery_s: float | None = None
    errors: dict[str, int] = field(default_factory=dict)

    def as_dict(self, t0: float) -> dict[str, object]:
        return {
            "kind": self.kind,
            "target": self.target,
            "at_s": None if self.started is None else round(self.started - t0, 1),
            "down_s": None
            if self.started is None or self.ended is None
            else round(self.ended - self.started, 1),
            "recovery_s": self.recovery_s,
            "driver_errors": self.errors,
        }


def plan(
    kinds: set[str],
    duration_s: float,
    *,
    kills: int | None,
    broker_down_s: float,
    rng: random.Random,
) -> list[Fault]:
    """The faults of a run of ``duration_s``: the broker down at 45 % of it, a processor away
    at 70 % (for 30 s), kills every 60-90 s (``kills``: that many, evenly spread, instead)
    outside those spans; everything over 20 s before the load ends."""
    faults: list[Fault] = []
    busy: list[tuple[float, float]] = []
    if "broker" in kinds:
        at = round(duration_s * 0.45)
        faults.append(Fault("broker", at, broker_down_s, target="kafka"))
        busy.append((at - 10, at + broker_down_s + 15))
    if "rebalance" in kinds:
        at = round(duration_s * 0.7)
        faults.append(Fault("rebalance", at, 30.0, target="process-1"))
        busy.append((at - 10, at + 45))
    if "kill" in kinds:
        if kills is not None:
            times = [duration_s * 0.1 + i * duration_s * 0.35 / max(kills, 1) for i in range(kills)]
        else:
            times, t = [], rng.uniform(30, 60)
            while t < duration_s - 20:
                times.append(t)
                t += rng.uniform(60, 90)
        for t in times:
            if not any(a <= t <= b for a, b in busy) and t < duration_s - 20:
                faults.append(Fault("kill", round(t, 1)))
    return sorted(faults, key=lambda f: f.at)


async def run_plan(cluster: Cluster, faults: list[Fault], t0: float, rng: random.Random) -> None:
    """Carry out ``faults`` at their times (``t0``: the load's start, monotonic clock)."""
    bag: list[str] = []
    for fault in faults:
        await asyncio.sleep(max(0.0, t0 + fault.at - time.monotonic()))
        if fault.kind == "kill":
            if not bag:  # every stage once per round, the data path's first, in random order
                path = sorted(n for n in cluster.stages if n != "alert")
                rng.shuffle(path)
                bag = ["alert", *reversed(path)]
            fault.target = bag.pop()
            await _kill(cluster, fault)
        elif fault.kind == "broker":
            await _broker(cluster, fault)
        elif fault.kind == "rebalance":
            await _rebalance(cluster, fault)


async def _kill(cluster: Cluster, fault: Fault) -> None:
    stage = cluster.stages[fault.target]
    fault.started = time.time()
    logger.warning("fault: SIGKILL %s (pid %s)", stage.name, stage.pid)
    stage.held = True
    await asyncio.to_thread(stage.kill)
    await asyncio.sleep(1.0)  # a supervisor's restart delay
    await asyncio.to_thread(stage.start)
    stage.held = False
    fault.ended = time.time()


async def _broker(cluster: Cluster, fault: Fault) -> None:
    fault.started = time.time()
    logger.warning("fault: the broker stops for %.0f s", fault.hold_s)
    await asyncio.to_thread(cluster.broker.stop)
    await asyncio.sleep(max(0.0, fault.started + fault.hold_s - time.time()))
    await asyncio.to_thread(cluster.broker.start)
    fault.ended = time.time()
    logger.warning("fault: the broker is back after %.0f s", fault.ended - fault.started)


async def _rebalance(cluster: Cluster, fault: Fault) -> None:
    stage = cluster.stages.get(fault.target)
    if stage is None:
        fault.target = "skipped: one processor only"
        return
    fault.started = time.time()
    logger.warning("fault: %s leaves the group for %.0f s", stage.name, fault.hold_s)
    stage.held = True
    await asyncio.to_thread(stage.stop)
    await asyncio.sleep(fault.hold_s)
    await asyncio.to_thread(stage.start)
    stage.held = False
    fault.ended = time.time()


def mount_spool_disk(directory: Path, size: str) -> str | None:
    """Mount a ``size`` tmpfs on ``directory``; None when done, else why it was not."""
    directory.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return f"mounting a tmpfs needs root: {done.stderr.strip() or done.returncode}"
    return None


def unmount(directory: Path) -> None:
    subprocess.run(["umount", str(directory)], capture_output=True, check=False)
