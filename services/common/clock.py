"""An injectable clock: domain code takes "now" as an argument, services get it from here."""

from __future__ import annotations

import re
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
