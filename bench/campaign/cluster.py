"""The pipeline under test: a Kafka broker of its own (``scripts/kafka/kafka``, its own port and
state directory, stopped and started again at will) and every stage as its own OS process.

Each stage is a ``voicepulse`` command with its own data directory and log file; the sink's
data directory is the warehouse. A stage is restarted with the same settings (the same port,
instance id and spool), as an operator's supervisor would restart it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

__all__ = ["Broker", "Cluster", "Stage", "free_port", "wait_listening"]

KAFKA_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "kafka" / "kafka"
SPOOL_SEGMENT_BYTES = 1024 * 1024  # small segments: a 4 MiB spool disk fills in steps

logger = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    """Return once something accepts connections on ``port``; raise if ``process`` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the process on port {port} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout_s:.0f} s")


class Broker:
    """One Kafka broker in ``state`` (KRaft, one JVM), through ``scripts/kafka/kafka``."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.bootstrap = ""

    def start(self) -> str:
        started = subprocess.run(
            [str(KAFKA_SCRIPT), "start", str(self.state)],
            capture_output=True,
            text=True,
            check=False,
        )
        if started.returncode != 0:
            raise RuntimeError(f"the broker did not start: {started.stderr.strip()}")
        self.bootstrap = started.stdout.strip().splitlines()[-1]
        return self.bootstrap

    def stop(self) -> None:
        subprocess.run([str(KAFKA_SCRIPT), "stop", str(self.state)], check=False)

    @property
    def pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            pid = int((self.state / "pid").read_text())
            os.kill(pid, 0)
            return pid
        return None


@dataclass
class Stage:
    """One stage process: ``argv`` run with ``env``, its output appended to ``log``."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    port: int | None = None  # waited for on start: the receiver's
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    held: bool = False  # down on purpose (a fault): not restarted by the supervisor
    exits: list[int] = field(default_factory=list)  # statuses of exits no fault caused
    _out: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        if self._out is None:
            self._out = self.log.open("ab")
        self.process = subprocess.Popen(
            self.argv, env=self.env, stdout=self._out, stderr=subprocess.STDOUT
        )
        self.starts += 1
        if self.port is not None:
            wait_listening(self.port, self.process)

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def restart_if_exited(self) -> int | None:
        """As a supervisor would: start again a stage that exited on its own; its status."""
        if self.held or self.process is None or self.process.poll() is None:
            return None
        status = self.process.returncode
        self.exits.append(status)
        logger.warning("%s exited on its own (status %s): restarting it", self.name, status)
        self.start()
        return status

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout_s: float = 60) -> int | None:
        """SIGTERM (a clean stop), SIGKILL after ``timeout_s``; the exit status."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop within %.0f s: killed", self.name, timeout_s)
                process.kill()
                process.wait()
        return process.returncode

    def close(self) -> None:
        self.stop()
        if self._out is not None:
            self._out.close()
            self._out = None


@dataclass
class Cluster:
    """The stages of one campaign, in data-flow order, on ``broker``."""

    root: Path
    broker: Broker
    stages: dict[str, Stage]
    receiver_port: int
    warehouse: Path

    @classmethod
    def build(cls, root: Path, broker: Broker, processors: int, receiver_workers: int) -> Cluster:
        port = free_port()
        warehouse = root / "warehouse"
        stages: dict[str, Stage] = {}
        serve = ["serve", "--port", str(port)]
        if receiver_workers > 1:
            serve += ["--workers", str(receiver_workers)]
        specs: list[tuple[str, list[str], dict[str, str]]] = [
            ("serve", serve, {"VOICEPULSE_SPOOL_SEGMENT_BYTES": str(SPOOL_SEGMENT_BYTES)}),
        ]
        for i in range(processors):
            specs.append(
                (
                    f"process-{i}",
                    ["process", "--metrics-port", str(free_port())],
                    {"VOICEPULSE_PROCESSOR_INSTANCE_ID": str(i)},
                )
            )
        specs.append(("sink", ["sink", "--metrics-port", str(free_port())], {}))
        specs.append(
            (
                "alert",
                ["alert", "--metrics-port", str(free_port())],
                {"VOICEPULSE_ALERT_INSTANCE_ID": "0"},
            )
        )
        logs = root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for name, args, extra in specs:
            data_dir = warehouse if name == "sink" else root / "stages" / name
            data_dir.mkdir(parents=True, exist_ok=True)
            env = stage_env(broker.bootstrap, data_dir) | extra
            argv = [sys.executable, "-m", "voicepulse.cli", *args]
            stages[name] = Stage(
                name, argv, env, logs / f"{name}.log", port=port if name == "serve" else None
            )
        return cls(root, broker, stages, port, warehouse)

    @property
    def spool_dir(self) -> Path:
        return Path(self.stages["serve"].env["VOICEPULSE_DATA_DIR"]) / "spool"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.receiver_port}/twilio/voice/status"

    def start(self) -> None:
        # Consumers first, so the receiver's first events find their readers.
        for name in [*list(self.stages)[1:], "serve"]:
            self.stages[name].start()

    def stop(self) -> dict[str, int | None]:
        """Stop every stage cleanly in data-flow order; their exit statuses."""
        return {name: stage.stop() for name, stage in self.stages.items()}

    def close(self) -> None:
        for stage in self.stages.values():
            stage.close()

    def pids(self) -> Iterator[tuple[str, int]]:
        """Every process to watch: the stages' (their children too) and the broker's."""
        for name, stage in self.stages.items():
            if stage.alive and stage.pid is not None:
                yield name, stage.pid
        if (pid := self.broker.pid) is not None:
            yield "kafka", pid


def stage_env(bootstrap: str, data_dir: Path) -> dict[str, str]:
    """The environment of one stage: ours, without any VOICEPULSE_* setting of the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEPULSE_")}
    return env | {
        "VOICEPULSE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "VOICEPULSE_DATA_DIR": str(data_dir),
        "VOICEPULSE_LOG_LEVEL": "INFO",
    }
