"""The campaign: start the broker and the stages, drive the load, do the faults, sample every
process, then judge the run and report it (a progress line every 5 s, a human summary, and
``--json FILE``). Exit status 0 only when the verdict holds (and the pipeline stopped cleanly).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.campaign import faults as fault_plan
from bench.campaign.cluster import Broker, Cluster
from bench.campaign.faults import Fault
from bench.campaign.probes import Sampler
from bench.campaign.report import freshness, human, polls, recoveries
from bench.campaign.verdict import (
    Verdict,
    judge_topic,
    read_topic_ids,
    read_truth,
    topic_size,
    warehouse_figures,
    with_warehouse,
)
from voicepulse.settings import load_settings
from voicepulse.topics import CALL_STATUS
from warehouse.lake import open_lake

__all__ = ["main"]

FRESHNESS_GOAL_S = 3.0

logger = logging.getLogger("bench.campaign")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.campaign", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rate", type=float, default=5000, help="callbacks per second")
    parser.add_argument("--duration", type=float, default=600, help="seconds of load")
    parser.add_argument(
        "--faults",
        default="",
        help=f"comma-separated, from {','.join(fault_plan.KINDS)} (or 'all'); default none",
    )
    parser.add_argument("--processors", type=int, default=2)
    parser.add_argument("--receiver-workers", type=int, default=1)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--kills", type=int, default=None, help="this many kills, evenly spread")
    parser.add_argument("--broker-down", type=float, default=30.0, help="seconds")
    parser.add_argument("--spool-disk", default="4m", help="tmpfs size of the receiver's spool")
    parser.add_argument("--settle", type=float, default=180.0, help="max seconds to catch up")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=None, help="run directory (kept)")
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    parser.add_argument(
        "--short",
        action="store_true",
        help="the make-test version: 300/s for 100 s, three kills, the broker down 20 s",
    )
    return parser


def _options(argv: list[str] | None) -> argparse.Namespace:
    args = _parser().parse_args(argv)
    if args.short:
        given = set(argv or sys.argv[1:])
        defaults = {
            "--rate": ("rate", 300.0),
            "--duration": ("duration", 100.0),
            "--faults": ("faults", "kill,broker"),
            "--kills": ("kills", 3),
            "--broker-down": ("broker_down", 20.0),
            "--settle": ("settle", 90.0),
        }
        for flag, (name, value) in defaults.items():
            if flag not in given:
                setattr(args, name, value)
    kinds = (
        set(fault_plan.KINDS) if args.faults == "all" else set(filter(None, args.faults.split(",")))
    )
    unknown = kinds - set(fault_plan.KINDS)
    if unknown:
        raise SystemExit(f"unknown faults: {', '.join(sorted(unknown))}")
    args.kinds = kinds
    return args


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


class Campaign:
    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.args = args
        self.root = root
        self.broker = Broker(root / "kafka")
        self.sampler = Sampler()
        self.rng = random.Random(args.seed)
        self.faults: list[Fault] = []
        self.notes: list[str] = []
        self.truth = root / "truth.jsonl"
        self.t0 = 0.0  # monotonic, the load's start
        self.wall0 = 0.0
        self.cluster: Cluster | None = None
        self.disk: Path | None = None
        self.reader: subprocess.Popen[bytes] | None = None

    def run(self) -> dict[str, Any]:
        args = self.args
        report: dict[str, Any] = {"uptime_before": _uptime(), "cpus": os.cpu_count()}
        self.broker.start()
        try:
            self.cluster = Cluster.build(
                self.root, self.broker, args.processors, args.receiver_workers
            )
            self._mount_disk()
            self.cluster.start()
            self.reader = self._start_reader()
            report |= asyncio.run(self._load(self._start_driver()))
            report |= self._settle()
        finally:
            if self.reader is not None:  # it writes its histogram as it stops
                self.reader.send_signal(signal.SIGTERM)
                self.reader.wait(60)
            exits = self.cluster.stop() if self.cluster else {}
            if self.cluster:
                self.cluster.close()
            self.broker.stop()
            if self.disk is not None:
                fault_plan.unmount(self.disk)
        report["stage_exits"] = exits
        if self.cluster:
            unplanned = {n: s.exits for n, s in self.cluster.stages.items() if s.exits}
            report["unplanned_exits"] = unplanned
            if unplanned:
                self.notes.append(
                    f"stages that exited on their own and were restarted (status): {unplanned}"
                )
        bad = {k: v for k, v in exits.items() if v not in (0, None)}
        if bad:
            self.notes.append(f"stages that did not stop cleanly (exit status): {bad}")
        report["uptime_after"] = _uptime()
        report["notes"] = self.notes
        return report

    def _mount_disk(self) -> None:
        if "disk" not in self.args.kinds:
            return
        assert self.cluster is not None
        if "broker" not in self.args.kinds:
            self.notes.append("disk: the spool fills only while the broker is down: add 'broker'")
        why = fault_plan.mount_spool_disk(self.cluster.spool_dir, self.args.spool_disk)
        if why is None:
            self.disk = self.cluster.spool_dir
        else:
            message = f"disk fault skipped: {why}"
            logger.warning("%s", message)
            self.notes.append(message)

    def _start_driver(self) -> subprocess.Popen[bytes]:
        """``voicepulse simulate``: open loop, its truth to a file, its summary as JSON."""
        args, cluster = self.args, self.cluster
        assert cluster is not None
        command = [
            sys.executable, "-m", "voicepulse.cli", "simulate", "--url", cluster.url,
            "--rate", str(args.rate), "--seconds", str(args.duration),
            "--connections", str(args.connections), "--truth", str(self.truth),
            "--json", "--seed", str(args.seed), "--progress-every", "5",
        ]  # fmt: skip
        with (self.root / "simulate.err").open("wb") as err:
            return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err)

    async def _load(self, driver: subprocess.Popen[bytes]) -> dict[str, Any]:
        args, cluster = self.args, self.cluster
        assert cluster is not None
        await self._first_answer(driver)
        self.t0, self.wall0 = time.monotonic(), time.time()
        self.faults = fault_plan.plan(
            args.kinds,
            args.duration,
            kills=args.kills,
            broker_down_s=args.broker_down,
            rng=self.rng,
        )
        tasks = [
            asyncio.create_task(fault_plan.run_plan(cluster, self.faults, self.t0, self.rng)),
            asyncio.create_task(self._watch(driver)),
        ]
        out = await asyncio.to_thread(driver.communicate)
        for task in tasks:
            if task is tasks[0]:
                await task  # the plan ends before the load does
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        summary = orjson.loads(out[0].splitlines()[-1]) if out[0].strip() else {}
        return {"driver": summary, "driver_exit": driver.returncode}

    async def _first_answer(self, driver: subprocess.Popen[bytes]) -> None:
        """Wait for the driver's first answered callback: the load's start (the driver
        takes seconds to import and build its first calls)."""
        deadline = time.monotonic() + 120
        while driver.poll() is None and time.monotonic() < deadline:
            if self.truth.exists() and self.truth.stat().st_size > 0:
                return
            await asyncio.sleep(0.1)

    def _start_reader(self) -> subprocess.Popen[bytes]:
        assert self.cluster is not None
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.campaign.reader",
                "--data-dir",
                str(self.cluster.warehouse),
                "--out",
                str(self.root / "freshness.jsonl"),
                "--summary",
                str(self.root / "freshness-hist.json"),
            ],
            stderr=(self.root / "logs" / "reader.log").open("ab"),
        )

    async def _watch(self, driver: subprocess.Popen[bytes]) -> None:
        """Sample every second; a progress line every 5 s."""
        assert self.cluster is not None
        next_line = 5.0
        while driver.poll() is None:
            at = time.monotonic() - self.t0
            for stage in self.cluster.stages.values():
                await asyncio.to_thread(stage.restart_if_exited)
            pids = list(self.cluster.pids())
            self.sampler.sample(at, pids)
            if at >= next_line:
                next_line += 5.0
                print(self._progress(at), file=sys.stderr, flush=True)
            await asyncio.sleep(max(0.05, 1.0 - (time.monotonic() - self.t0 - at)))

    def _progress(self, at: float) -> str:
        lines = (self.root / "simulate.err").read_bytes().decode(errors="replace").splitlines()
        driver = next((x for x in reversed(lines) if " s  " in x), "driver starting")
        recent = [p for p in polls(self.root / "freshness.jsonl") if p["at"] >= time.time() - 5]
        rows = sum(int(p["n"]) for p in recent)
        worst = max((float(p.get("p95", 0)) for p in recent if p["n"]), default=None)
        fresh = "-" if worst is None else f"{worst:.1f} s"
        cpu = " ".join(
            f"{name} {s.samples[-1][1]:.2f}"
            for name, s in self.sampler.series.items()
            if s.samples and s.samples[-1][0] >= at - 1.5
        )
        done = [f"{f.kind}:{f.target}" for f in self.faults if f.started is not None]
        return (
            f"[campaign {at:5.0f} s] {driver.strip()}\n"
            f"[campaign {at:5.0f} s] warehouse +{rows:,} rows/5 s, freshness p95 {fresh};"
            f" CPU (cores) {cpu}; faults so far: {', '.join(done) or 'none'}"
        )

    def _settle(self) -> dict[str, Any]:
        """Judge the topic once it holds everything (the spool drained), then the warehouse
        until it matches or ``--settle`` s have passed."""
        assert self.cluster is not None
        started = time.monotonic()
        self._wait_topic_stable()
        on_topic = asyncio.run(read_topic_ids(self.broker.bootstrap, CALL_STATUS))
        truth = read_truth(self.truth)
        topic = judge_topic(truth, on_topic)
        settings = load_settings(None, data_dir=self.cluster.warehouse)
        verdict = with_warehouse(topic, {}, [])
        caught_up = None
        while time.monotonic() - started < self.args.settle:
            for stage in self.cluster.stages.values():
                stage.restart_if_exited()
            con = open_lake(settings, read_only=True)
            try:
                actual, doubles = warehouse_figures(con)
            finally:
                con.close()
            verdict = with_warehouse(topic, actual, doubles)
            if verdict.ok:
                caught_up = round(time.monotonic() - started, 1)
                break
            time.sleep(2.0)
        return {"verdict": verdict, "caught_up_s": caught_up, "truth": truth}

    def _wait_topic_stable(self, timeout_s: float = 120) -> None:
        """Until the status topic's size has not moved for 3 s (the receiver's spool drained)."""
        previous, deadline = -1, time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            size = asyncio.run(topic_size(self.broker.bootstrap, CALL_STATUS))
            if size == previous:
                return
            previous = size
            time.sleep(3.0)


def main(argv: list[str] | None = None) -> int:
    args = _options(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr
    )
    root = args.dir or Path(tempfile.mkdtemp(prefix="voicepulse-campaign-"))
    root.mkdir(parents=True, exist_ok=True)
    campaign = Campaign(args, root)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop cleanly, as Ctrl-C
    raw = campaign.run()
    report = _report(campaign, raw)
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(human(report))
    if args.dir is None and report["verdict"]["ok"]:
        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"run directory (logs, truth, freshness polls): {root}")
    return 0 if report["verdict"]["ok"] and not report["notes_failing"] else 1


def _report(campaign: Campaign, raw: dict[str, Any]) -> dict[str, Any]:
    args = campaign.args
    root = campaign.root
    verdict: Verdict = raw.pop("verdict")
    truth = raw.pop("truth")
    poll_rows = polls(root / "freshness.jsonl")
    recoveries(campaign.faults, poll_rows, truth, FRESHNESS_GOAL_S)
    window = 300.0 if args.duration >= 600 else args.duration / 2
    failing = [n for n in campaign.notes if "did not stop cleanly" in n]
    return {
        "options": {
            "rate": args.rate,
            "duration_s": args.duration,
            "faults": sorted(args.kinds),
            "processors": args.processors,
            "receiver_workers": args.receiver_workers,
            "connections": args.connections,
            "short": args.short,
        },
        **raw,
        "freshness": freshness(root / "freshness-hist.json", poll_rows),
        "freshness_goal_s": FRESHNESS_GOAL_S,
        "processes": campaign.sampler.summary(window),
        "rss_window_s": window,
        "faults": [f.as_dict(campaign.wall0) for f in campaign.faults],
        "verdict": verdict.as_dict(),
        "notes_failing": failing,
        "timeline": campaign.sampler.timeline(),
    }
