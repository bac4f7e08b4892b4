"""The pull stage: every subaccount's Calls, Insights and Usage, on a schedule, side by side.

Each subaccount has its own loop; at most ``concurrency`` of them pull at once. A subaccount
whose pulls fail backs off on its own (exponentially, up to ``max_backoff_s``) while the others
go on. Insights refused with a 4xx other than 429 (Advanced Features not enabled, no access)
puts that subaccount's Insights in status ``insights_unavailable``: logged once, shown in
``/metrics``, tried again only every ``insights_retry_s``.

Guarantees (see :mod:`ingest.pollers.resources` for the order of each pull): at least once,
with dedupe ids, so a restart or an overlap never changes a count downstream; a restart resumes
from the stored cursors.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ingest.pollers.errors import PullError
from ingest.pollers.metrics import PullMetrics
from ingest.pollers.progress import Progress
from ingest.pollers.resources import (
    CallsPull,
    InsightsPull,
    PullContext,
    ResourcePull,
    UsagePull,
)
from voicepulse.errors import BusError
from voicepulse.lifecycle import Lifecycle

__all__ = ["Puller", "Schedule", "Subaccounts"]

logger = logging.getLogger(__name__)

Subaccounts = Callable[[], Awaitable[Sequence[str]]]


@dataclass(frozen=True, slots=True)
class Schedule:
    concurrency: int = 4
    interval_s: float = 60.0
    usage_interval_s: float = 3600.0
    insights_retry_s: float = 3600.0
    max_backoff_s: float = 900.0
    rediscover_s: float = 300.0


class Puller(Lifecycle):
    """A pipeline stage (``voicepulse pull``); with ``once``, one pass over every subaccount."""

    name = "pull"

    def __init__(
        self,
        ctx: PullContext,
        subaccounts: Subaccounts,
        schedule: Schedule,
        *,
        once: bool = False,
        progress: Progress | None = None,
    ) -> None:
        self._ctx = ctx
        self._subaccounts = subaccounts
        self._schedule = schedule
        self._once = once
        self._progress = progress
        self._resources: tuple[ResourcePull, ...] = (CallsPull(), InsightsPull(), UsagePull())
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._failures: dict[tuple[str, str], int] = {}
        self._statuses: dict[tuple[str, str], str] = {}
        self._backfilling = False
        self._progress_left = 0

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    @property
    def metrics(self) -> PullMetrics:
        return self._ctx.metrics

    def status(self, account_sid: str, resource: str) -> str | None:
        """``ok``, ``failing`` or ``insights_unavailable``; None before the first pull."""
        return self._statuses.get((account_sid, resource))

    def failing(self) -> list[tuple[str, str, str]]:
        """(subaccount, resource, status) of every pull whose last attempt did not succeed."""
        return [(a, r, s) for (a, r), s in sorted(self._statuses.items()) if s != "ok"]

    async def start(self) -> None:
        if self._task is not None:
            return
        self._stopping.clear()
        await self._ctx.store.open()
        await self._ctx.api.open()
        self._task = asyncio.create_task(self._run(), name="stage:pull")

    async def wait(self) -> None:
        """Wait for the pass to end (``once``) or for the stage to stop."""
        if self._task is not None:
            await self._task

    async def drain(self, timeout_s: float) -> None:
        """Start no new pull; let those under way finish, for at most ``timeout_s``."""
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._task), timeout_s)

    async def stop(self) -> None:
        self._stopping.set()
        task, self._task = self._task, None
        try:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        finally:
            await self._ctx.api.close()
            await self._ctx.store.close()

    async def _run(self) -> None:
        """Loops for the subaccounts; listed again every ``rediscover_s`` (not with ``once``):
        new ones get a loop, ones no longer listed lose theirs."""
        gate = asyncio.Semaphore(self._schedule.concurrency)
        loops: dict[str, asyncio.Task[None]] = {}
        async with asyncio.TaskGroup() as group:
            while not self._stopping.is_set():
                accounts = await self._discover()
                if not accounts and not loops:
                    logger.warning("no subaccounts to pull")
                new = [a for a in accounts if a not in loops]
                if not loops:
                    await self._begin_progress(new)
                elif new:
                    logger.info("new subaccounts to pull: %s", ", ".join(new))
                for account_sid in new:
                    loops[account_sid] = group.create_task(
                        self._loop(account_sid, gate), name=f"pull:{account_sid}"
                    )
                for account_sid in set(loops) - set(accounts):
                    logger.info("no longer pulling %s (not listed any more)", account_sid)
                    loops.pop(account_sid).cancel()
                if self._once:
                    break
                await self._sleep(self._schedule.rediscover_s)

    async def _discover(self) -> Sequence[str]:
        """The subaccounts; a failure is retried with backoff (with ``once``, it is raised)."""
        delay = 1.0
        while not self._stopping.is_set():
            try:
                return await self._subaccounts()
            except PullError as exc:
                if self._once:
                    raise
                logger.warning("cannot list the subaccounts (again in %.0f s): %s", delay, exc)
                await self._sleep(delay)
                delay = min(delay * 2, self._schedule.max_backoff_s)
        return []

    async def _begin_progress(self, accounts: Sequence[str]) -> None:
        store = self._ctx.store
        for account_sid in accounts:
            for resource in self._resources:
                if await store.cursor(account_sid, resource.name) is None:
                    self._backfilling = True
        self._progress_left = len(accounts) * len(self._resources)
        if self._backfilling and self._progress is not None and self._progress_left:
            self._progress.begin(self._progress_left)

    async def _loop(self, account_sid: str, gate: asyncio.Semaphore) -> None:
        loop = asyncio.get_running_loop()
        due = {resource.name: 0.0 for resource in self._resources}
        first = True
        while not self._stopping.is_set():
            async with gate:
                for resource in self._resources:
                    if self._stopping.is_set():
                        return
                    if loop.time() >= due[resource.name]:
                        due[resource.name] = loop.time() + await self._pull(resource, account_sid)
                        if first:
                            self._advance_progress()
            first = False
            if self._once:
                return
            await self._sleep(max(0.0, min(due.values()) - loop.time()))

    async def _pull(self, resource: ResourcePull, account_sid: str) -> float:
        """Pull once; the delay until this resource of this subaccount is due again."""
        key = (account_sid, resource.name)
        try:
            await resource.pull(self._ctx, account_sid)
        except (PullError, BusError) as exc:
            return self._failed(resource, account_sid, exc)
        self._failures.pop(key, None)
        self._set_status(account_sid, resource.name, "ok")
        self._ctx.metrics.last_success.labels(account_sid, resource.name).set(
            datetime.now(UTC).timestamp()
        )
        self._ctx.metrics.pending.labels(resource.name).set(
            await self._ctx.store.count_pending(resource.name)
        )
        if isinstance(resource, UsagePull):
            return self._schedule.usage_interval_s
        return self._schedule.interval_s

    def _failed(self, resource: ResourcePull, account_sid: str, exc: Exception) -> float:
        key = (account_sid, resource.name)
        if (
            isinstance(resource, InsightsPull)
            and isinstance(exc, PullError)
            and exc.status is not None
            and not exc.retriable
        ):
            if self._set_status(account_sid, resource.name, "insights_unavailable"):
                logger.warning(
                    "Voice Insights unavailable for %s (Advanced Features off or no access; "
                    "retried every %.0f s): %s",
                    account_sid,
                    self._schedule.insights_retry_s,
                    exc,
                )
            return self._schedule.insights_retry_s
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        backoff: float = self._schedule.interval_s * 2.0 ** (failures - 1)
        delay = min(backoff, self._schedule.max_backoff_s)
        changed = self._set_status(account_sid, resource.name, "failing")
        log = logger.warning if changed else logger.debug
        log("pulling %s of %s failed (%d in a row; again in %.0f s): %s",
            resource.name, account_sid, failures, delay, exc)  # fmt: skip
        return delay

    def _set_status(self, account_sid: str, resource: str, status: str) -> bool:
        """Record the status; True when it changed."""
        key = (account_sid, resource)
        previous = self._statuses.get(key)
        self._statuses[key] = status
        self._ctx.metrics.set_status(account_sid, resource, status)
        if previous not in (None, status) and status == "ok":
            logger.info("pulling %s of %s works again", resource, account_sid)
        return previous != status

    def _advance_progress(self) -> None:
        """One pull of the first pass done; the bar ends with the first pass."""
        if not self._backfilling or self._progress is None or self._progress_left <= 0:
            return
        self._progress_left -= 1
        self._progress.advance()
        if self._progress_left == 0:
            self._progress.end()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
