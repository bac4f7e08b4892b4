"""The receiver's shared publish deadline (one timer for every await)."""

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from ingest.deadline import SharedDeadline


@pytest.fixture
async def deadline() -> AsyncIterator[SharedDeadline]:
    made = SharedDeadline(0.2)
    await made.start()
    try:
        yield made
    finally:
        await made.stop()


async def test_an_await_that_finishes_in_time_is_true(deadline: SharedDeadline) -> None:
    assert await deadline.within(asyncio.sleep(0.01))


async def test_a_late_await_is_cancelled_and_false(deadline: SharedDeadline) -> None:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    started = time.monotonic()
    assert not await deadline.within(never)
    assert 0.2 <= time.monotonic() - started < 0.5
    assert never.cancelled()
    # The task is usable afterwards: no cancellation is left pending on it.
    await asyncio.sleep(0.01)
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0


async def test_errors_of_the_await_propagate(deadline: SharedDeadline) -> None:
    async def fails() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await deadline.within(fails())


async def test_cancelling_the_caller_still_cancels_it(deadline: SharedDeadline) -> None:
    task = asyncio.create_task(deadline.within(asyncio.sleep(10)))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_each_concurrent_await_gets_its_own_answer(deadline: SharedDeadline) -> None:
    async def one(seconds: float) -> bool:
        return await deadline.within(asyncio.sleep(seconds))

    answers = await asyncio.gather(*(one(0.01 if i % 2 else 5.0) for i in range(100)))
    assert answers == [bool(i % 2) for i in range(100)]
