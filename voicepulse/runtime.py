"""Process-wide tuning for the long-running commands (``run``, ``serve``, ``process``, ...).

The garbage collector: CPython starts a young-generation collection every 700 container
allocations. A processor turn allocates a few containers per event (decoded envelopes, window
keys, fact dicts) that all die by the end of the batch, so with the default most young
collections find nothing to free, and the objects of the batch in flight get promoted and are
scanned again by the full collections, which also walk every object alive since start-up
(modules, settings, the pipeline). :func:`tune_gc` raises the young threshold, so a batch's
garbage is freed by reference counting before a collection sees it, and moves what exists at
start-up into the permanent generation, which collections skip. Collection is not disabled:
reference cycles made later are still found and freed.
"""

import asyncio
import gc
import logging
import sys
from collections.abc import Callable
from typing import Final

__all__ = [
    "DEFAULT_GC_YOUNG_THRESHOLD",
    "configure_logging",
    "event_loop_factory",
    "tune_gc",
]

logger = logging.getLogger(__name__)

DEFAULT_GC_YOUNG_THRESHOLD: Final = 20_000
"""Container allocations between young collections (CPython's default is 700)."""


def tune_gc(young_threshold: int = DEFAULT_GC_YOUNG_THRESHOLD) -> None:
    """Collect once, freeze what is alive, and raise the young-generation threshold; call it
    once, after start-up and before the work. ``young_threshold`` 0 leaves the collector as
    Python set it."""
    if young_threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)
    logger.debug(
        "gc: %d start-up objects frozen, young threshold %d", gc.get_freeze_count(), young_threshold
    )


def configure_logging(level: str, tag: str = "") -> None:
    """The log format of every long-running command, on stderr; ``tag`` marks each line (which
    worker of ``serve --workers`` wrote it)."""
    tag = f"[{tag}] " if tag else ""
    logging.basicConfig(
        level=level,
        format=f"%(asctime)s %(levelname)s {tag}%(name)s: %(message)s",
        stream=sys.stderr,
    )
    # aiokafka reports every reconnect attempt at ERROR; our own messages say what matters.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("httpx").setLevel(logging.WARNING)


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (as uvicorn chooses it), else asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
