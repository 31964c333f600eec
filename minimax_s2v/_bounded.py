"""A mapping with a limit: what the receiver and the tracker remember of each nonce."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["BoundedMap"]

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
