"""One pull of one resource (Calls, Insights summaries, Usage records) for one subaccount.

Each pull is the same three steps, and this order is its guarantee:

1. List the window from the stored cursor (a little before, so that nothing near the edge is
   lost), every page. For each page, publish the records whose digest differs from the one last
   published, wait for the bus to acknowledge them, then record their digests in the store.
2. Re-fetch, one by one, the items still pending (a call not yet rated or finished, a partial
   summary) that the window no longer covers, until they settle or pass their maximum age.
3. Only then move the cursor.

A crash before 3 re-lists the same window on restart: what was recorded is not published again,
what was published but not yet recorded is published again with the same dedupe id (harmless
downstream). Nothing is skipped, since the cursor moves only after a complete listing.
"""

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Final

from ingest.pollers.api import Record, TwilioApi
from ingest.pollers.envelopes import (
    call_envelope,
    content_digest,
    insights_envelope,
    usage_digest,
    usage_envelope,
)
from ingest.pollers.metrics import PullMetrics
from ingest.pollers.store import PullStore, StoredItem
from voicepulse import topics
from voicepulse.envelope import Envelope
from voicepulse.messages import VOICE_USAGE_CATEGORIES
from voicepulse.types import Bus

__all__ = ["CallsPull", "InsightsPull", "PullConfig", "PullContext", "ResourcePull", "UsagePull"]

TERMINAL: Final = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
INSIGHTS_RETENTION: Final = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class PullConfig:
    backfill_days: int = 3
    page_size: int = 200
    insights_page_size: int = 1000
    unrated_max_age: timedelta = timedelta(hours=48)
    insights_lookback: timedelta = timedelta(hours=4)
    calls_lag: timedelta = timedelta(hours=1)
    usage_settle_days: int = 2
    usage_categories: tuple[str, ...] = VOICE_USAGE_CATEGORIES


@dataclass(frozen=True, slots=True)
class PullContext:
    api: TwilioApi
    bus: Bus
    store: PullStore
    metrics: PullMetrics
    config: PullConfig
    clock: Callable[[], datetime]


class ResourcePull:
    """How one resource is keyed, published and kept pending; subclasses say how it is listed."""

    name: ClassVar[str]
    topic: ClassVar[str]

    def item_id(self, raw: Record) -> str:
        raise NotImplementedError

    def digest(self, raw: Record) -> str:
        return content_digest(raw)

    def item_time(self, raw: Record) -> str:
        raise NotImplementedError

    def pending(self, raw: Record) -> bool:
        return False

    def envelope(self, raw: Record, parent_sid: str) -> Envelope:
        raise NotImplementedError

    async def pull(self, ctx: PullContext, account_sid: str) -> None:
        raise NotImplementedError

    async def publish_changed(
        self, ctx: PullContext, account_sid: str, records: Sequence[Record]
    ) -> int:
        """Publish the records not published before in this exact form; then remember them."""
        keyed = [(self.item_id(r), self.digest(r), r) for r in records]
        known = await ctx.store.digests(self.name, [item_id for item_id, _, _ in keyed])
        fresh = [(i, d, r) for i, d, r in keyed if known.get(i) != d]
        if not fresh:
            return 0
        envelopes = [self.envelope(r, ctx.api.parent_sid) for _, _, r in fresh]
        await asyncio.gather(*(ctx.bus.publish(self.topic, e.key, e.to_json()) for e in envelopes))
        stored = [StoredItem(i, d, self.item_time(r), self.pending(r)) for i, d, r in fresh]
        await ctx.store.record(self.name, account_sid, stored)
        ctx.metrics.published.labels(self.name).inc(len(fresh))
        return len(fresh)

    async def refetch_pending(
        self,
        ctx: PullContext,
        account_sid: str,
        before: datetime,
        max_age: timedelta,
        fetch: Callable[[str], Any],
    ) -> None:
        """Re-fetch pending items older than ``before`` (outside the listed window)."""
        now = ctx.clock()
        for item in await ctx.store.pending(self.name, account_sid):
            moment = _moment(item.item_time)
            if moment >= before:
                continue
            raw = None if now - moment > max_age else await fetch(item.item_id)
            if raw is None:
                await ctx.store.settle(self.name, [item.item_id])
            else:
                await self.publish_changed(ctx, account_sid, [raw])
                if not self.pending(raw):
                    await ctx.store.settle(self.name, [item.item_id])


class CallsPull(ResourcePull):
    """Calls by UTC start date; unrated or unfinished calls re-fetched until priced or too old."""

    name = "calls"
    topic = topics.TWILIO_CALLS

    def item_id(self, raw: Record) -> str:
        return str(raw["sid"])

    def item_time(self, raw: Record) -> str:
        return _rfc2822_iso(raw.get("start_time") or raw.get("date_created"))

    def pending(self, raw: Record) -> bool:
        return raw.get("status") not in TERMINAL or raw.get("price") in (None, "")

    def envelope(self, raw: Record, parent_sid: str) -> Envelope:
        return call_envelope(raw, parent_sid)

    async def pull(self, ctx: PullContext, account_sid: str) -> None:
        now = ctx.clock()
        cursor = await ctx.store.cursor(account_sid, self.name)
        since = (
            date.fromisoformat(cursor) if cursor else (now - _days(ctx.config.backfill_days)).date()
        )
        async for page in ctx.api.calls(account_sid, since, ctx.config.page_size):
            await self.publish_changed(ctx, account_sid, page)
        start_of_window = datetime.combine(since, datetime.min.time(), UTC)

        async def fetch(call_sid: str) -> Record | None:
            return await ctx.api.call(account_sid, call_sid)

        await self.refetch_pending(
            ctx, account_sid, start_of_window, ctx.config.unrated_max_age, fetch
        )
        await ctx.store.set_cursor(
            account_sid, self.name, (now - ctx.config.calls_lag).date().isoformat()
        )
        await ctx.store.forget_before(
            self.name, account_sid, (start_of_window - timedelta(days=1)).isoformat()
        )


class InsightsPull(ResourcePull):
    """Summaries from an explicit StartTime; partial ones re-fetched until complete or 30 days
    old (Insights keeps 30 days)."""

    name = "insights"
    topic = topics.INSIGHTS

    def item_id(self, raw: Record) -> str:
        return str(raw["call_sid"])

    def item_time(self, raw: Record) -> str:
        value = raw.get("start_time") or raw.get("created_time")
        try:
            return _moment(str(value)).isoformat()
        except ValueError:
            return datetime.fromtimestamp(0, UTC).isoformat()

    def pending(self, raw: Record) -> bool:
        return raw.get("processing_state") != "complete"

    def envelope(self, raw: Record, parent_sid: str) -> Envelope:
        return insights_envelope(raw, parent_sid)

    async def pull(self, ctx: PullContext, account_sid: str) -> None:
        now = ctx.clock()
        cursor = await ctx.store.cursor(account_sid, self.name)
        oldest = now - INSIGHTS_RETENTION + timedelta(minutes=5)
        start = max(_moment(cursor) if cursor else now - _days(ctx.config.backfill_days), oldest)
        pages = ctx.api.summaries(account_sid, start, ctx.config.insights_page_size)
        async for page in pages:
            await self.publish_changed(ctx, account_sid, page)
        await self.refetch_pending(ctx, account_sid, start, INSIGHTS_RETENTION, ctx.api.summary)
        next_start = now - ctx.config.insights_lookback
        await ctx.store.set_cursor(account_sid, self.name, next_start.isoformat())
        await ctx.store.forget_before(
            self.name, account_sid, (start - timedelta(days=1)).isoformat()
        )


class UsagePull(ResourcePull):
    """Daily usage records of each voice category, the subaccount's own
    (``IncludeSubaccounts=false``); the last days are pulled again until they settle."""

    name = "usage"
    topic = topics.USAGE

    def item_id(self, raw: Record) -> str:
        return f"{raw['account_sid']}:{raw['category']}:{raw['start_date']}"

    def digest(self, raw: Record) -> str:
        return usage_digest(raw)

    def item_time(self, raw: Record) -> str:
        return str(raw["start_date"])

    def envelope(self, raw: Record, parent_sid: str) -> Envelope:
        return usage_envelope(raw, parent_sid)

    async def pull(self, ctx: PullContext, account_sid: str) -> None:
        today = ctx.clock().date()
        cursor = await ctx.store.cursor(account_sid, self.name)
        start = date.fromisoformat(cursor) if cursor else today - _days(ctx.config.backfill_days)
        for category in ctx.config.usage_categories:
            async for page in ctx.api.usage(account_sid, category, start, today):
                await self.publish_changed(ctx, account_sid, page)
        settled = today - _days(ctx.config.usage_settle_days)
        await ctx.store.set_cursor(account_sid, self.name, max(start, settled).isoformat())
        await ctx.store.forget_before(self.name, account_sid, (start - _days(1)).isoformat())


def _days(n: int) -> timedelta:
    return timedelta(days=n)


def _moment(value: str) -> datetime:
    """An ISO time or date from the store or from Insights, as an aware UTC datetime."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _rfc2822_iso(value: Any) -> str:
    """An Api v2010 time as ISO 8601 UTC; the epoch when Twilio gave none (never expected)."""
    try:
        moment = parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return datetime.fromtimestamp(0, UTC).isoformat()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()
