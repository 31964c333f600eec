"""Group commit on the event loop: one batch being written, the next one gathering."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["Batcher"]

T = TypeVar("T")


class Batcher(Generic[T]):
    """Hands items to ``write`` in batches, one batch at a time.

    Items added during one turn of the event loop go together; items added while a batch is
    being written wait and go together in the next one. ``write`` settles its items' waiters.
    """

    def __init__(
        self, write: Callable[[list[T]], Awaitable[None]], *, max_batch: int | None = None
    ) -> None:
        self._write = write
        self._max_batch = max_batch
        self._pending: list[T] = []
        self._busy = False  # a batch is being written
        self._scheduled = False
        self._jobs: set[asyncio.Task[None]] = set()

    @property
    def idle(self) -> bool:
        """Nothing is being written and nothing waits."""
        return not self._busy and not self._pending

    def add(self, item: T) -> None:
        """Queue ``item`` for the next batch."""
        self._pending.append(item)
        if not self._busy and not self._scheduled:
            # Wait for the rest of this loop turn's items, then write them together.
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def take_pending(self) -> list[T]:
        """Remove and return the items not yet handed to ``write``."""
        pending, self._pending = self._pending, []
        return pending

    async def drain(self) -> None:
        """Return once everything added so far has been written."""
        while not self.idle:
            if self._jobs:
                await asyncio.gather(*self._jobs, return_exceptions=True)
            else:
                self._flush()

    def _flush(self) -> None:
        self._scheduled = False
        if self._busy or not self._pending:
            return
        size = len(self._pending) if self._max_batch is None else self._max_batch
        batch = self._pending[:size]
        del self._pending[:size]
        self._busy = True
        job = asyncio.get_running_loop().create_task(self._run(batch))
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    async def _run(self, batch: list[T]) -> None:
        try:
            await self._write(batch)
        finally:
            self._busy = False
        if self._pending:
            self._flush()  # what arrived during the write goes at once
