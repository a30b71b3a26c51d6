"""Invoices, policies and moments for the dunning domain's tests."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from services.dunning.domain.calendar import TIMEZONES
from services.dunning.domain.interest import PartPayment
from services.dunning.domain.law import DebtorKind, Jurisdiction
from services.dunning.domain.policy import Policy, Step
from services.dunning.domain.schedule import InvoiceState, TakenStep


def at(day: date, hour: int = 12, minute: int = 0, jurisdiction: Jurisdiction = "NO") -> datetime:
    """A moment in local time (Oslo or Stockholm), as UTC like the clock gives it."""
    return datetime.combine(day, time(hour, minute), tzinfo=TIMEZONES[jurisdiction]).astimezone(UTC)


def invoice(
    due: date,
    *,
    principal: int = 100_000,
    kind: DebtorKind = "consumer",
    status: str = "overdue",
    balance: int | None = None,
    payments: tuple[PartPayment, ...] = (),
    history: tuple[TakenStep, ...] = (),
    **more: Any,
) -> InvoiceState:
    paid = sum(p.amount_minor for p in payments)
    return InvoiceState(
        invoice_id="inv-1",
        version=7,
        status=status,
        customer_kind=kind,
        due_date=due,
        principal_minor=principal,
        balance_minor=principal - paid if balance is None else balance,
        payments=payments,
        history=history,
        **more,
    )


def with_step(policy: Policy, index: int, **changes: Any) -> Policy:
    """The policy with one step changed (validated again as a new policy)."""
    steps = list(policy.steps)
    steps[index] = Step.model_validate({**steps[index].model_dump(), **changes})
    return Policy.model_validate({**policy.model_dump(), "steps": [s.model_dump() for s in steps]})


def with_steps(policy: Policy, *steps: Step, **changes: Any) -> Policy:
    return Policy.model_validate({**policy.model_dump(), **changes, "steps": [s.model_dump() for s in steps]})


def taken(
    kind: str, on: date, deadline: date | None = None, fee: int = 0, compensation: int = 0
) -> TakenStep:
    return TakenStep(kind, on, deadline, fee, compensation)  # type: ignore[arg-type]
