"""``async with`` for anything with ``start()`` and ``stop()``."""

from types import TracebackType
from typing import Self

__all__ = ["Lifecycle"]


class Lifecycle:
    """Mixin: ``async with x:`` starts ``x`` and stops it on the way out, whatever happened.

    ``stop()`` must be harmless twice (and after a failed ``start()``), as for every stage and
    client of VoicePulse.
    """

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
