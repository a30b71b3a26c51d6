"""A clock the tests can move: the real time plus an offset (overdue sweeps, aging)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from services.common.clock import local_today


class MovableClock:
    """Runs with real time so leases and timestamps behave; `advance` jumps it forward."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def today(self) -> date:
        """Today where the tenants are (Europe/Oslo): the date the ledger puts on invoices."""
        return local_today(self)

    def advance(self, delta: timedelta) -> None:
        self.offset += delta

    def reset(self) -> None:
        self.offset = timedelta(0)
