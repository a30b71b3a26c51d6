"""`fordring payments resolve`: an operator's decision as the matcher takes it. `--invoice NUMBER=AMOUNT`
gives an invoice that much; `--invoice NUMBER` gives it what is open on it, as far as the payment
reaches (invoices in the order given, after those with an amount); what is left of the payment
becomes a customer's credit balance."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from fordring.matcher.v1 import matcher_pb2 as pb

from services.common.money import CURRENCY_EXPONENTS

_AMOUNT = re.compile(r"-?[0-9][0-9 \u00a0]*(?:[.,][0-9]+)?")


class ResolutionError(ValueError):
    """The decision as given cannot be carried out (said before anything is sent)."""


@dataclass(frozen=True)
class InvoiceShare:
    """One `--invoice`: the invoice number and the amount as typed (major units), or None (what is open)."""

    number: str
    amount: Decimal | None = None


def parse_invoice_option(value: str) -> InvoiceShare:
    """ "10042" or "10042=1250" / "10042=1 250,50" / "10042=1250.50" (kroner and øre)."""
    number, sep, amount = value.partition("=")
    number = number.strip()
    if not number:
        raise ResolutionError(f"{value!r}: expected NUMBER or NUMBER=AMOUNT")
    if not sep:
        return InvoiceShare(number)
    text = amount.strip()
    if not _AMOUNT.fullmatch(text):
        raise ResolutionError(f"{value!r}: the amount {text!r} is not a number like 1250 or 1250,50")
    try:
        parsed = Decimal(text.replace(" ", "").replace("\u00a0", "").replace(",", "."))
    except InvalidOperation:
        raise ResolutionError(f"{value!r}: the amount {text!r} is not a number") from None
    if parsed <= 0:
        raise ResolutionError(f"{value!r}: the amount must be positive")
    return InvoiceShare(number, parsed)


def to_minor(amount: Decimal, currency: str) -> int:
    exponent = CURRENCY_EXPONENTS.get(currency, 2)
    minor = amount.scaleb(exponent)
    if minor != minor.to_integral_value():
        raise ResolutionError(f"{amount} {currency}: at most {exponent} decimals")
    return int(minor)


def plan_allocations(
    payment_minor: int,
    currency: str,
    shares: Sequence[InvoiceShare],
    open_minor: Mapping[str, int],
) -> list[tuple[str, int]]:
    """(invoice number, minor units) for each share: the amount given, else what is open on the
    invoice (`open_minor`) as far as what is left of the payment reaches."""
    given = {s.number: to_minor(s.amount, currency) for s in shares if s.amount is not None}
    if len(given) + sum(1 for s in shares if s.amount is None) != len({s.number for s in shares}):
        raise ResolutionError("an invoice is given more than once")
    left = payment_minor - sum(given.values())
    if left < 0:
        raise ResolutionError(
            f"the amounts given ({_major(sum(given.values()), currency)}) are more than the payment "
            f"({_major(payment_minor, currency)})"
        )
    planned: dict[str, int] = dict(given)
    for share in shares:
        if share.amount is not None:
            continue
        owed = open_minor.get(share.number, 0)
        if owed <= 0:
            raise ResolutionError(f"invoice {share.number} has nothing open: give an amount (NUMBER=AMOUNT)")
        if left <= 0:
            raise ResolutionError(f"nothing is left of the payment for invoice {share.number}")
        planned[share.number] = min(owed, left)
        left -= planned[share.number]
    return [(s.number, planned[s.number]) for s in shares]


def resolve_request(
    payment_id: str,
    *,
    refund: bool,
    allocations: Sequence[tuple[str, int]] = (),
    customer_number: str = "",
    learn: bool = True,
    note: str = "",
) -> pb.ResolvePaymentRequest:
    if refund:
        return pb.ResolvePaymentRequest(payment_id=payment_id, refund=pb.Refund(), note=note)
    return pb.ResolvePaymentRequest(
        payment_id=payment_id,
        allocate=pb.Allocate(
            allocations=[
                pb.AllocationInput(invoice_number=number, amount_minor=minor) for number, minor in allocations
            ],
            customer_number=customer_number,
            do_not_learn_account=not learn,
        ),
        note=note,
    )


def _major(minor: int, currency: str) -> str:
    exponent = CURRENCY_EXPONENTS.get(currency, 2)
    return f"{Decimal(minor).scaleb(-exponent)} {currency}"
