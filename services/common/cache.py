"""A small in-memory cache: least recently used entries go first, and every entry expires."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Generic, TypeVar

V = TypeVar("V")


class ExpiringLru(Generic[V]):
    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def get(self, key: str) -> tuple[bool, V | None]:
        """(True, value) while the entry is fresh, else (False, None)."""
        hit = self._items.get(key)
        if hit is None or hit[0] <= time.monotonic():
            return False, None
        self._items.move_to_end(key)
        return True, hit[1]

    def put(self, key: str, value: V, seconds: float) -> None:
        self._items[key] = (time.monotonic() + seconds, value)
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def pop(self, key: str) -> None:
        self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)
