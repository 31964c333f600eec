"""SQLiteStore written by a thread of this process instead of a worker process (measured)."""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from .._errors import ConfigurationError
from ._sqlite_worker import SchemaMismatchError, commit, prepare
from .sqlite import SQLiteStore, Statement, _Item, _settle

__all__ = ["ThreadedSQLiteStore"]

logger = logging.getLogger("minimax_s2v")

# What the writer thread is asked: BEGIN's form, the units, and who is told the outcome; a
# request without units ends the thread.
_Request = tuple[str, "list[list[Statement]] | None", Callable[[Any], None]]


class _Writer:
    """The thread that owns the connection: runs each batch in one transaction.

    Each outcome goes back to the event loop in one ``call_soon_threadsafe``: the loop
    wakes once per batch, not once per write.
    """

    def __init__(
        self, path: Path, synchronous: str, loop: asyncio.AbstractEventLoop, name: str
    ) -> None:
        self._path = path
        self._synchronous = synchronous
        self._loop = loop
        self._requests: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self.variables = 999
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started: asyncio.Future[None] = loop.create_future()

    async def start(self) -> None:
        """Start the thread and open the file in it."""
        self._thread.start()
        await self._started

    def submit(
        self, begin: str, units: list[list[Statement]] | None, done: Callable[[Any], None]
    ) -> None:
        """Queue a transaction; ``done`` gets its results or the error that failed it."""
        self._requests.put((begin, units, done))

    async def stop(self) -> None:
        """End the thread once what was queued before is committed."""
        stopped: asyncio.Future[None] = self._loop.create_future()
        self.submit("", None, lambda _: _settle(stopped, None, None))
        await stopped

    def _reply(self, done: Callable[[Any], None], outcome: object) -> bool:
        try:
            self._loop.call_soon_threadsafe(done, outcome)
        except RuntimeError:  # the event loop is closed: nobody is left to ask
            return False
        return True

    def _run(self) -> None:
        def opened(outcome: object) -> None:
            _settle(self._started, None, outcome if isinstance(outcome, Exception) else None)

        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self._path, isolation_level=None)
        except (sqlite3.Error, OSError) as error:
            self._reply(opened, error)
            return
        try:
            prepare(connection, str(self._path), self._synchronous)
            self.variables = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        except (sqlite3.Error, SchemaMismatchError) as error:
            connection.close()
            failure = (
                ConfigurationError(str(error)) if isinstance(error, SchemaMismatchError) else error
            )
            self._reply(opened, failure)
            return
        try:
            if not self._reply(opened, None):
                return
            while True:
                begin, units, done = self._requests.get()
                if units is None:
                    self._reply(done, None)
                    return
                try:
                    outcome: object = commit(connection, begin, units)
                except sqlite3.Error as error:
                    outcome = error
                except Exception as error:  # noqa: BLE001 - the calls are told; the thread goes on
                    if connection.in_transaction:
                        connection.rollback()
                    outcome = sqlite3.Error(f"{type(error).__name__}: {error}")
                if not self._reply(done, outcome):
                    return
        finally:
            connection.close()


class ThreadedSQLiteStore(SQLiteStore):
    """:class:`SQLiteStore` with its file owned by a thread of this process."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        max_batch: int = 1000,
    ) -> None:
        super().__init__(path, synchronous=synchronous, max_batch=max_batch)
        self._writer: _Writer | None = None

    @property
    def _running(self) -> bool:
        return self._writer is not None

    async def _start(self) -> None:
        writer = _Writer(
            self.path,
            self._synchronous,
            asyncio.get_running_loop(),
            f"minimax-s2v-sqlite-{self.path.name}",
        )
        await writer.start()
        self._variables = writer.variables
        self._writer = writer

    async def close(self) -> None:
        """Commit what is pending and stop the writer thread."""
        if self._opening is not None:
            try:
                await self.open()
            except (OSError, sqlite3.Error, ConfigurationError):
                return
        while self._writer is not None and not self._batches.idle:
            await self._call([], write=False)  # everything asked before it is committed
        writer, self._writer = self._writer, None
        if writer is not None:
            await writer.stop()

    async def _exchange(self, batch: list[_Item]) -> None:
        writer = self._writer
        if writer is None:  # the store was closed meanwhile
            self._fail(batch, sqlite3.OperationalError("the SQLiteStore is not open"))
            return
        units, owners = self._units(batch)
        writes = sum(1 for _, _, write in batch if write)
        outcome: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        writer.submit(
            "BEGIN IMMEDIATE" if writes else "BEGIN",
            units,
            lambda result: _settle(outcome, result, None),
        )
        try:
            result = await outcome
        except asyncio.CancelledError:
            self._fail(
                batch,
                sqlite3.OperationalError(
                    "the SQLiteStore stopped waiting for its writer; these writes may or may "
                    "not have been committed"
                ),
            )
            raise
        if isinstance(result, sqlite3.Error):
            logger.error("SQLite commit failed: %s", result)
            self._fail(batch, result)
            return
        self.commits += 1
        self.writes += writes
        for futures, unit in zip(owners, result, strict=True):
            failure = _unit_error(unit) if isinstance(unit, Exception) else None
            for future in futures:
                _settle(future, unit, failure)


def _unit_error(error: Exception) -> Exception:
    """The error a unit's caller gets: SQLite's own, or a value SQLite could not take."""
    if isinstance(error, sqlite3.Error):
        return error
    return sqlite3.Error(f"{type(error).__name__}: {error}")
