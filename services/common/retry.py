"""Capped exponential backoff with jitter, for loops that must outlive any outage."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, first: float = 0.2, cap: float = 30.0, factor: float = 2.0) -> None:
        self._first = first
        self._cap = cap
        self._factor = factor
        self.failures = 0

    def next(self) -> float:
        """The pause before the next try: first, first x factor, ... up to cap, +-20 % jitter."""
        delay = min(self._cap, self._first * self._factor**self.failures)
        self.failures += 1
        return delay * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not a secret

    def reset(self) -> None:
        self.failures = 0

    @staticmethod
    def delay_for(failures: int, first: float = 1.0, cap: float = 300.0, factor: float = 2.0) -> float:
        """The pause after `failures` failures, for work whose failure count is stored (timers)."""
        delay = min(cap, first * factor ** min(failures, 32))
        return delay * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not a secret
