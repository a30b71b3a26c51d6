"""An injectable clock: domain code takes "now" as an argument, services get it from here."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

OSLO = ZoneInfo("Europe/Oslo")


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock for tests: stands still until told to move."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware datetime")
        self._at = at.astimezone(UTC)

    def now(self) -> datetime:
        return self._at

    def advance(self, delta: timedelta) -> None:
        self._at += delta

    def set(self, at: datetime) -> None:
        self._at = at.astimezone(UTC)


class SandboxClock:
    """The real time plus an offset that a sandbox moves forward for every service of a stack at once
    (`fordring sandbox clock advance`), so a demo or a test sees invoices fall due, fallbacks fire
    and reminders go out without waiting days.

    The offset comes from `read_offset` (one MongoDB document the stack's services share:
    services/common/sandbox_clock.py); `refresh` reads it, and ServiceRuntime refreshes every half
    second. The offset only grows: a smaller one read (an older copy) is ignored, so this clock never
    goes back and leases, timers and "today" stay sound. A jump ends every lease at once; their
    holders renew, and timers' handlers are idempotent.
    """

    def __init__(self, read_offset: Callable[[], Awaitable[float]], *, base: Clock | None = None) -> None:
        self._read_offset = read_offset
        self._base = base or SystemClock()
        self._offset = 0.0
        self._moved = asyncio.Event()

    @property
    def offset_seconds(self) -> float:
        return self._offset

    def now(self) -> datetime:
        return self._base.now() + timedelta(seconds=self._offset)

    async def refresh(self) -> bool:
        """Read the stack's offset; True when this clock moved forward."""
        return self.take(await self._read_offset())

    def take(self, offset_seconds: float) -> bool:
        """Use this offset if it is ahead of the one in use; True when the clock moved."""
        if not (math.isfinite(offset_seconds) and offset_seconds > self._offset):
            return False
        self._offset = offset_seconds
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()
        return True

    async def moved(self) -> None:
        """Returns when this clock next jumps forward: work that waits "until something is due"
        looks again at once instead of after its poll interval."""
        await self._moved.wait()


def local_today(clock: Clock, tz: ZoneInfo = OSLO) -> date:
    """Today's date where the creditor is (dates on invoices are local dates)."""
    return clock.now().astimezone(tz).date()


def isoformat_utc(at: datetime) -> str:
    """RFC 3339 in UTC with milliseconds and a Z, as every API and event shows time."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_iso_date(text: str) -> date:
    """A calendar date written exactly YYYY-MM-DD, as the contracts say.

    `date.fromisoformat` also takes "20261123" and "2026-W48-1" (Python 3.11): those are refused,
    so one date has one spelling in every document, event and bank file we write.
    """
    if not _ISO_DATE.fullmatch(text):
        raise ValueError(f"{text!r} is not a date written YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a calendar date") from None
