"""An emulator on its own event loop in a background thread, for sync code and any test runner."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from yarl import URL

from ._config import EmulatorConfig
from ._server import Emulator
from ._state import EmulatorState

__all__ = ["EmulatorThread"]

T = TypeVar("T")


class EmulatorThread:
    """Run an :class:`Emulator` in a daemon thread; usable from sync code and from any loop.

    Use it as a context manager::

        with EmulatorThread(seed=1) as emu:
            requests.post(f"{emu.url}/v1/video_generation", ...)
    """

    def __init__(self, config: EmulatorConfig | None = None, **changes: Any) -> None:
        self.emulator = Emulator(config, **changes)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="minimax-emulator", daemon=True
        )

    def _call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def start(self) -> URL:
        """Start the thread and the emulator; returns its base URL."""
        self._thread.start()
        return self._call(self.emulator.start())

    def stop(self) -> None:
        """Stop the emulator and its thread."""
        if not self._thread.is_alive():
            return
        self._call(self.emulator.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> EmulatorThread:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> URL:
        """The base URL."""
        return self.emulator.url

    @property
    def api_key(self) -> str:
        """A key the emulator accepts."""
        return self.emulator.api_key

    def configure(self, **changes: Any) -> None:
        """Change settings while running, from any thread."""
        self._loop.call_soon_threadsafe(lambda: self.emulator.configure(**changes))

    def state(self, *, tasks: bool = False) -> EmulatorState:
        """The counters as JSON, read on the emulator's own loop."""

        async def read() -> EmulatorState:
            return self.emulator.state(tasks=tasks)

        return self._call(read())
