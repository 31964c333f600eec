"""How the command line reports progress: a live display, plain lines, or JSON lines."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from typing import Any, TextIO

from ._errors import terminal_safe

__all__ = ["Reporter", "make_reporter"]


class Reporter:
    """Plain lines on a stream; the base of the other reporters."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.stream = stream or sys.stdout
        self.current: dict[str, str] = {}  # key -> its latest status
        self.started = time.monotonic()
        self.finished = 0

    @property
    def counts(self) -> Counter[str]:
        """How many items are in each status now."""
        return Counter(self.current.values())

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def line(self, text: str) -> None:
        """Say something."""
        print(terminal_safe(text), file=self.stream, flush=True)

    def status(self, key: str, status: str) -> None:
        """``key`` moved to ``status`` (Preparing, Processing, …)."""
        self.current[key] = status

    def done(self, key: str, ok: bool, text: str, **fields: Any) -> None:
        """``key`` finished."""
        self.finished += 1
        self.current[key] = "succeeded" if ok else "failed"
        self.line(f"[{self.finished}/{self.total}] {text}")

    def summary(self, text: str, **fields: Any) -> None:
        """The last word."""
        self.line(text)

    def eta(self) -> tuple[float, float | None]:
        """(items per minute, seconds left or None)."""
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.finished / elapsed
        left = (self.total - self.finished) / rate if rate > 0 else None
        return rate * 60, left


class JsonReporter(Reporter):
    """One JSON object per line: for scripts."""

    def _emit(self, **fields: Any) -> None:
        print(json.dumps(fields, default=str), file=self.stream, flush=True)

    def line(self, text: str) -> None:
        """Messages go to stderr: stdout carries JSON only."""
        print(terminal_safe(text), file=sys.stderr, flush=True)  # noqa: T201

    def status(self, key: str, status: str) -> None:
        """Report a status change."""
        super().status(key, status)
        self._emit(event="status", key=key, status=status)

    def done(self, key: str, ok: bool, text: str, **fields: Any) -> None:
        """Report a finished item."""
        self.finished += 1
        self.current[key] = "succeeded" if ok else "failed"
        self._emit(event="done", key=key, ok=ok, **fields)

    def summary(self, text: str, **fields: Any) -> None:
        """Report the totals."""
        self._emit(event="summary", **fields)


class LiveReporter(Reporter):
    """A live display on a terminal (rich): a bar, per-status counts, throughput and ETA."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        super().__init__(total, stream)
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._console = Console(file=self.stream)
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeRemainingColumn(),
            console=self._console,
        )
        self._bar = self._progress.add_task("generating", total=total, counts="")

    def __enter__(self) -> Reporter:
        self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()

    def line(self, text: str) -> None:
        """Print above the live display."""
        self._console.print(terminal_safe(text), highlight=False, markup=False)

    def _refresh(self) -> None:
        per_minute, _ = self.eta()
        shown = ", ".join(f"{name} {count}" for name, count in sorted(self.counts.items()))
        self._progress.update(
            self._bar, completed=self.finished, counts=f"{shown} | {per_minute:.1f}/min"
        )

    def status(self, key: str, status: str) -> None:
        """Count a status change."""
        super().status(key, status)
        self._refresh()

    def done(self, key: str, ok: bool, text: str, **fields: Any) -> None:
        """Print the item and advance the bar."""
        super().done(key, ok, text, **fields)
        self._refresh()


def make_reporter(total: int, *, as_json: bool) -> Reporter:
    """JSON lines with ``--json``; a live display on a terminal (with rich); else plain."""
    if as_json:
        return JsonReporter(total)
    if sys.stdout.isatty():
        try:
            return LiveReporter(total)
        except ImportError:
            pass
    return Reporter(total)
