"""Things with a limit: what is remembered of each nonce, and how often a warning is logged."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["BoundedMap", "PacedWarning"]

K = TypeVar("K")
V = TypeVar("V")


class BoundedMap(Generic[K, V]):
    """A dict that forgets its oldest entries once it holds ``max_items`` or they are too old.

    At the limit, putting a new entry forgets the oldest one first; an entry older than
    ``ttl`` seconds is forgotten when the next one is put. Putting a key again makes it the
    newest. A forgotten entry is simply missing: callers fall back on what is durable.
    """

    __slots__ = ("_created", "_items", "_max_items", "_ttl", "get")

    get: Callable[[K], V | None]
    """The value of a key, if still remembered (the dict's own ``get``: looked up per request)."""

    def __init__(self, max_items: int, ttl: float) -> None:
        # The values in insertion order, and when each was put apart from them: a dict of
        # str keys and float values is one the garbage collector never walks, where a
        # (time, value) tuple per entry would add one tracked object each.
        self._items: OrderedDict[K, V] = OrderedDict()
        self._created: dict[K, float] = {}
        self._max_items = max_items
        self._ttl = ttl
        self.get = self._items.get

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def put(self, key: K, value: V) -> V:
        """Remember ``value`` under ``key`` as the newest entry; returns ``value``."""
        items, created = self._items, self._created
        items.pop(key, None)
        now = time.monotonic()
        cutoff = now - self._ttl
        while items:
            oldest = next(iter(items))
            if len(items) < self._max_items and created[oldest] > cutoff:
                break
            del items[oldest], created[oldest]
        items[key] = value
        created[key] = now
        return value

    def pop(self, key: K) -> V | None:
        """Forget ``key``; its value, if it was remembered."""
        self._created.pop(key, None)
        return self._items.pop(key, None)


class PacedWarning:
    """The level of a warning that hostile input can repeat at will: one WARNING per period.

    The first one is a WARNING, and so is the first after ``every`` seconds have passed; the
    others in between are DEBUG (a sender must not flood the log, nor hide its own traces).
    """

    __slots__ = ("_every", "_quiet_until")

    def __init__(self, every: float = 10.0) -> None:
        self._every = every
        self._quiet_until = 0.0

    def level(self) -> int:
        """The level of the warning logged now."""
        now = time.monotonic()
        if now < self._quiet_until:
            return logging.DEBUG
        self._quiet_until = now + self._every
        return logging.WARNING
