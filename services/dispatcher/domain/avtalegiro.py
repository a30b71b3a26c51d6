"""When an AvtaleGiro payment claim may go to Nets (DOMAIN.md; Nets' AvtaleGiro system specification).

A claim file must reach Nets at least 4 calendar days before the earliest due date in it, and files
that arrive after the 14:00 cut-off (Oslo time) count as sent the next day; a due date may be at
most 12 months ahead. Nets refuses the whole file otherwise, so a claim that cannot meet the rule is
refused before it is spooled, and again when its file is written.

A claim is in Norwegian kroner (AvtaleGiro is a Norwegian service), for a positive amount that fits
the 17 digits of øre of record 30, with a KID of 4-25 digits whose check digit holds (MOD10 or
MOD11). A MOD11 KID ending in "-" is valid as a reference but cannot go in a claim file: Nets' KID
field is digits only.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from services.common.clock import OSLO
from services.common.kid import InvalidKid, validate_kid

CURRENCY = "NOK"
MAX_AMOUNT_MINOR = 10**17 - 1
MIN_DAYS_AHEAD = 4
MAX_MONTHS_AHEAD = 12
# Nets processes files received before 14:00 the same day; from 14:00 on, the next day.
CUT_OFF = time(14, 0)


def _local(sent_at: datetime) -> datetime:
    if sent_at.tzinfo is None:
        raise ValueError("sent_at must be timezone-aware")
    return sent_at.astimezone(OSLO)


def earliest_due_date(sent_at: datetime) -> date:
    """The first due date a claim sent at `sent_at` may have: 4 calendar days after the Oslo date
    of sending, one more when it is sent at or after the 14:00 cut-off."""
    local = _local(sent_at)
    days = MIN_DAYS_AHEAD + (1 if local.time() >= CUT_OFF else 0)
    return local.date() + timedelta(days=days)


def latest_due_date(sent_at: datetime) -> date:
    """The last due date a claim sent at `sent_at` may have: 12 months after the Oslo date of sending
    (29 February gives 28 February)."""
    sent = _local(sent_at).date()
    year = sent.year + MAX_MONTHS_AHEAD // 12
    try:
        return sent.replace(year=year)
    except ValueError:
        return sent.replace(year=year, day=28)


def claim_possible(due_date: date, sent_at: datetime) -> str | None:
    """None when a claim due on `due_date` may be sent at `sent_at`; else why not."""
    earliest = earliest_due_date(sent_at)
    if due_date < earliest:
        return (
            f"due date {due_date.isoformat()} is too soon: Nets needs {MIN_DAYS_AHEAD} calendar days"
            f" (one more after 14:00 Oslo time), the earliest possible is {earliest.isoformat()}"
        )
    latest = latest_due_date(sent_at)
    if due_date > latest:
        return (
            f"due date {due_date.isoformat()} is more than {MAX_MONTHS_AHEAD} months ahead"
            f" (the latest possible is {latest.isoformat()})"
        )
    return None


def claim_problem(
    *, kid: str, amount_minor: int, currency: str, due_date: date, sent_at: datetime
) -> tuple[str, str] | None:
    """None when this claim may go to Nets at `sent_at`; else (code, reason): "currency",
    "invalid_amount", "invalid_kid" or "deadline"."""
    if currency != CURRENCY:
        return "currency", f"AvtaleGiro claims are in {CURRENCY}, not {currency}"
    if not 0 < amount_minor <= MAX_AMOUNT_MINOR:
        return "invalid_amount", "the amount must be positive and at most 17 digits of øre"
    if kid.endswith("-"):
        return "invalid_kid", "a KID ending in '-' cannot be claimed: Nets' KID field is digits only"
    try:
        validate_kid(kid)
    except InvalidKid as exc:
        return "invalid_kid", exc.reason
    deadline = claim_possible(due_date, sent_at)
    if deadline is not None:
        return "deadline", deadline
    return None
