"""A store that fails on command, for the tests of what a failing journal may cost."""

from __future__ import annotations

import sqlite3
from typing import Any

from minimax_s2v import EventSource, TaskSnapshot
from minimax_s2v.stores import MemoryStore


class FlakyStore(MemoryStore):
    """A memory store whose chosen calls fail a given number of times (then work)."""

    def __init__(self) -> None:
        super().__init__()
        self.failures: dict[str, int] = {}
        self.failed: list[str] = []

    def _maybe_fail(self, name: str) -> None:
        if self.failures.get(name, 0) > 0:
            self.failures[name] -= 1
            self.failed.append(name)
            raise sqlite3.OperationalError("database or disk is full")

    async def mark_submitted(self, nonce: str, task_id: str) -> None:
        self._maybe_fail("mark_submitted")
        await super().mark_submitted(nonce, task_id)

    async def save_submission(self, submission: Any) -> None:
        self._maybe_fail("save_submission")
        await super().save_submission(submission)

    async def save_event(
        self,
        snapshot: TaskSnapshot,
        source: EventSource,
        *,
        confirmed: bool,
        nonce: str | None = None,
    ) -> None:
        self._maybe_fail("save_event")
        await super().save_event(snapshot, source, confirmed=confirmed, nonce=nonce)
