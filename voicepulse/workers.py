"""``voicepulse serve --workers N``: N receiver processes answering on one port.

The parent binds and listens on the port once, then starts N workers (multiprocessing's spawn
start method: each a fresh interpreter) that inherit the listening socket; the kernel hands each
new connection to one of the workers waiting in accept. Each worker is a whole ``serve``: its
own Kafka producer and its own spool, ``<spool>/worker-<i>`` (:func:`ingest.spool.
spool_directories`). The parent serves nothing itself and never touches Kafka.

Guarantees:

1. A worker that exits while the parent runs is started again under the same index, so that
   it owns the same spool and drains what its predecessor left there; the parent logs the exit
   code. A worker that exits before it ever served, three times in a row, stops the whole
   (a bad configuration or a spool held by another process fails the same way every time).
2. SIGTERM or SIGINT to the parent: every worker gets SIGTERM and stops as a single ``serve``
   does (in-flight requests answered, the producer flushed, what Kafka did not take kept in
   the spool for the next run); the parent exits 0 when every worker did. A second signal is
   passed on too: the workers then exit without waiting.
3. Workers run in process groups of their own, so a terminal's Ctrl-C reaches the parent only,
   which passes it on as in 2. A worker whose parent died stops itself as in 2.
4. ``/metrics`` on any worker: the sum over all of them (:mod:`ingest.metrics`).
"""

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event
from pathlib import Path
from types import FrameType
from typing import Final

from prometheus_client import multiprocess

from ingest.server import bind_socket
from voicepulse.errors import VoicePulseError
from voicepulse.pipeline import Role, build_pipeline
from voicepulse.runtime import configure_logging, event_loop_factory, tune_gc
from voicepulse.settings import Settings

__all__ = ["serve_workers"]

logger = logging.getLogger(__name__)

_BACKLOG: Final = 2048  # uvicorn's default
_STOP_TIMEOUT_S: Final = 60.0  # a worker drains in at most ~30 s (pipeline and uvicorn bounds)
_STARTUP_FAILURES: Final = 3
_MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
_SPAWN = multiprocessing.get_context("spawn")


def serve_workers(settings: Settings, on_started: Callable[[int], None]) -> int:
    """Run ``settings.serve_workers`` receivers on one port until SIGTERM/SIGINT; the exit code.

    ``on_started(port)`` is called once every worker serves.
    """
    sock = bind_socket(settings.host, settings.port)
    sock.listen(_BACKLOG)  # connections wait in the backlog while a worker restarts
    metrics_dir, owned = _metrics_dir()
    try:
        return _Supervisor(settings, sock, metrics_dir).run(on_started)
    finally:
        sock.close()
        if owned:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _metrics_dir() -> tuple[Path, bool]:
    """The directory of prometheus_client's multiprocess files, emptied; and whether it is
    ours to remove. Set in the environment, which the workers inherit."""
    given = os.environ.get(_MULTIPROC_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        return path, False
    path = Path(tempfile.mkdtemp(prefix="voicepulse-serve-metrics-"))
    os.environ[_MULTIPROC_ENV] = str(path)
    return path, True


@dataclass
class _Worker:
    index: int
    process: SpawnProcess
    ready: Event
    failures: int = 0
    """Consecutive exits before serving, this one's predecessors included."""


@dataclass
class _Supervisor:
    settings: Settings
    sock: socket.socket
    metrics_dir: Path
    signals: list[int] = field(default_factory=list)
    failed: bool = False

    def run(self, on_started: Callable[[int], None]) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _STOP_SIGNALS}
        try:
            workers = [self._start(index) for index in range(self.settings.serve_workers)]
            logger.info("serve: %d workers on port %d", len(workers), self.port)
            self._supervise(workers, on_started)
            return self._stop(workers)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signum)

    def _start(self, index: int, failures: int = 0) -> _Worker:
        ready = _SPAWN.Event()
        process = _SPAWN.Process(
            target=_worker_main,
            args=(self.settings, index, self.sock, ready),
            name=f"serve-{index}",
        )
        process.start()
        return _Worker(index, process, ready, failures)

    def _supervise(self, workers: list[_Worker], on_started: Callable[[int], None]) -> None:
        announced = False
        while not self.signals and not self.failed:
            by_sentinel = {w.process.sentinel: w for w in workers}
            for sentinel in multiprocessing.connection.wait(list(by_sentinel), timeout=0.25):
                dead = by_sentinel[sentinel]  # type: ignore[index]
                workers[dead.index] = self._replace(dead)
            if not announced and all(w.ready.is_set() for w in workers):
                announced = True
                on_started(self.port)

    def _replace(self, dead: _Worker) -> _Worker:
        """A new worker in place of ``dead`` (guarantee 1)."""
        dead.process.join()
        pid = dead.process.pid
        assert pid is not None
        multiprocess.mark_process_dead(pid, str(self.metrics_dir))  # type: ignore[no-untyped-call]
        failures = 0 if dead.ready.is_set() else dead.failures + 1
        how = _exit_text(dead.process.exitcode)
        if failures >= _STARTUP_FAILURES:
            logger.error(
                "serve worker %d (pid %d) %s before serving, %d times in a row: stopping",
                dead.index,
                pid,
                how,
                failures,
            )
            self.failed = True
            return dead
        logger.error("serve worker %d (pid %d) %s; starting it again", dead.index, pid, how)
        time.sleep(0.5 * failures)  # a worker failing at start: not in a tight loop
        return self._start(dead.index, failures)

    def _stop(self, workers: list[_Worker]) -> int:
        """Guarantee 2: SIGTERM to every worker, wait for all of them; the exit code."""
        forwarded = 0
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        self.sock.close()  # once the workers close theirs, new connections are refused
        while (alive := [w for w in workers if w.process.is_alive()]) and (
            time.monotonic() < deadline
        ):
            if forwarded <= len(self.signals):
                forwarded = len(self.signals) + 1
                for worker in alive:
                    _terminate(worker.process)
            multiprocessing.connection.wait([w.process.sentinel for w in alive], timeout=0.25)
        for worker in workers:
            if worker.process.is_alive():
                logger.error("serve worker %d did not stop in time: killed", worker.index)
                worker.process.kill()
            worker.process.join()
        codes = {w.index: w.process.exitcode for w in workers}
        logger.info("serve: workers stopped, exit codes %s", codes)
        return 0 if not self.failed and all(code == 0 for code in codes.values()) else 1


_STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


def _terminate(process: SpawnProcess) -> None:
    if process.pid is not None:
        with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
            os.kill(process.pid, signal.SIGTERM)


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        return f"was killed by {signal.Signals(-code).name} (exit code {code})"
    return f"exited with exit code {code}"


def _worker_main(settings: Settings, index: int, sock: socket.socket, ready: Event) -> None:
    """One worker: a whole ``serve`` on the inherited socket, spooling into ``worker-<index>``."""
    os.setpgid(0, 0)  # guarantee 3: a terminal's Ctrl-C goes to the parent only
    configure_logging(settings.log_level, tag=f"serve-{index}")
    _stop_with_parent()
    pipeline = build_pipeline(settings, {Role.SERVE}, worker=(index, sock))
    tune_gc(settings.gc_young_threshold)
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(pipeline.run(on_started=ready.set))
    except VoicePulseError as exc:
        logger.error("%s", exc)
        raise SystemExit(1) from exc


def _stop_with_parent() -> None:
    """SIGTERM to this worker when its parent is gone (killed without passing a signal on)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    sentinel = parent.sentinel

    def watch() -> None:
        multiprocessing.connection.wait([sentinel])
        logger.error("the serve parent process is gone: stopping")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
