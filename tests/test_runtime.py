"""The garbage-collector tuning of the long-running commands."""

import gc
from collections.abc import Iterator

import pytest

from voicepulse.runtime import tune_gc


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restore_gc")
def test_tune_gc_freezes_start_up_objects_and_raises_the_young_threshold() -> None:
    _, middle, old = gc.get_threshold()
    tune_gc(12_345)
    assert gc.get_threshold() == (12_345, middle, old)
    assert gc.get_freeze_count() > 0
    assert gc.isenabled()


@pytest.mark.usefixtures("restore_gc")
def test_tune_gc_zero_leaves_the_collector_alone() -> None:
    before = gc.get_threshold()
    tune_gc(0)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
