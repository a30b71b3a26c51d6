"""Which invoices a bank payment pays: a pure function of the payment and the open items.

The order of trust (issue 8):
1. the reference is the KID of an invoice → that invoice (exact, part or over-payment, the excess
   as the customer's credit);
2. the reference is no invoice's KID → the KIDs one keying error away; automatic only when exactly one
   of them fits (its open amount is the payment, or the payer's account is its customer's);
3. no usable reference → invoice numbers and KIDs in the free text; then the payer (a known account,
   then the name) whose open invoices, one or a small set of them, add up to the payment exactly once;
4. anything else → review, with ranked suggestions and the reason.

A wrong automatic allocation is far worse than none: whenever two readings fit, or the reading
points at a closed invoice, another currency or another customer's account, the payment goes to
review. Money pointed at a closed invoice is proposed as the customer's credit, never moved to
some other invoice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from services.common.kid import InvalidKid, validate_kid, validate_rf
from services.matcher.domain.open_items import KidCandidate, OpenItem, OpenItems, due_order
from services.matcher.domain.payments import BankPayment
from services.matcher.domain.references import Mention, mentions

Status = Literal["matched", "review", "reversal"]
Method = Literal[
    "kid",
    "kid_typo",
    "free_text",
    "payer_account_amount",
    "payer_set",
    "payer_name_amount",
    "payer_name_set",
    "debit",
    "none",
]


@dataclass(frozen=True)
class Policy:
    # Subset sums run over at most this many of a payer's open invoices (the oldest due), sets of at most
    # max_set_size: C(12,1..5) = 1,585 sets at most, most pruned.
    max_set_items: int = 12
    max_set_size: int = 5
    max_suggestions: int = 5


DEFAULT_POLICY: Final = Policy()


@dataclass(frozen=True)
class Suggestion:
    """A reading of the payment an operator may accept: these invoices, how well they fit, and why."""

    invoice_ids: tuple[str, ...]
    invoice_numbers: tuple[str, ...]
    score: float
    reason: str


@dataclass(frozen=True)
class Decision:
    status: Status
    method: Method
    confidence: float
    # Facts for people: which reference matched which invoice, amounts, which rule decided.
    evidence: tuple[str, ...]
    # invoice id → minor units, oldest due first; each at most that invoice's open amount.
    allocations: Mapping[str, int] = field(default_factory=dict)
    # The part of the payment proposed as the customer's credit (over-payment, or a closed invoice paid).
    credit_minor: int = 0
    customer_id: str = ""
    suggestions: tuple[Suggestion, ...] = ()
    # Why the payment is in review ("" when matched).
    reason: str = ""
    # The versions of the allocated invoices the decision was based on (the ledger rejects stale ones).
    based_on_versions: Mapping[str, int] = field(default_factory=dict)

    @property
    def allocated_minor(self) -> int:
        return sum(self.allocations.values())

    @property
    def candidate_invoice_ids(self) -> tuple[str, ...]:
        """The invoices this payment may pay while it is undecided (dunning holds reminders on them)."""
        seen: dict[str, None] = dict.fromkeys(self.allocations)
        for suggestion in self.suggestions:
            seen.update(dict.fromkeys(suggestion.invoice_ids))
        return tuple(seen)


def allocate(amount_minor: int, items: Iterable[OpenItem]) -> tuple[dict[str, int], int]:
    """Split amount over items, oldest due first, each at most its open amount: (allocations, left over).

    Closed items and items with nothing open get nothing; the allocations and what is left over always
    add up to amount (0 or more).
    """
    allocations: dict[str, int] = {}
    left = max(0, amount_minor)
    for item in sorted(items, key=due_order):
        if left == 0:
            break
        if not item.is_open or item.invoice_id in allocations:
            continue
        share = min(left, item.open_minor)
        allocations[item.invoice_id] = share
        left -= share
    return allocations, left


def decide(payment: BankPayment, items: OpenItems, policy: Policy = DEFAULT_POLICY) -> Decision:
    """The decision for one payment against the open items (nothing is changed)."""
    return _Decider(payment, items, policy).decide()


_NON_DIGITS: Final = re.compile(r"[\s.\-]")


class _Decider:
    def __init__(self, payment: BankPayment, items: OpenItems, policy: Policy) -> None:
        self.payment = payment
        self.amount = payment.amount_minor
        self.items = items
        self.policy = policy
        self.evidence: list[str] = []
        self.suggestions: dict[tuple[str, ...], Suggestion] = {}
        self.account_customers = (
            items.customers_by_account(payment.payer_account) if payment.payer_account else frozenset()
        )

    # --- the rules, in order of trust -----------------------------------------------------------

    def decide(self) -> Decision:
        payment = self.payment
        if payment.direction == "debit":
            return Decision(
                "reversal",
                "debit",
                1.0,
                ("a debit returns an earlier payment; it is reversed, not matched",),
                reason="returned payment",
            )
        if self.amount <= 0:
            return self._review("the amount is not positive")
        reference = _NON_DIGITS.sub("", payment.reference)
        extra_mentions: list[Mention] = []
        if reference.isdigit():
            item = self.items.by_kid(reference)
            if item is not None:
                return self._by_kid(item, reference)
            candidates = self.items.kid_candidates(reference) if self._kid_like(reference) else []
            if candidates:
                return self._by_typo(reference, candidates)
            self.evidence.append(
                f"the reference {reference} is no invoice's KID, nor one keying error from one"
            )
            extra_mentions.append(Mention(reference, "reference"))
        elif payment.reference.strip():
            self.evidence.append("the reference is not a KID")
            rf = payment.reference.replace(" ", "").upper()
            if validate_rf(rf) and rf[4:].isdigit():
                extra_mentions.append(Mention(rf[4:].lstrip("0") or "0", "reference"))
                extra_mentions.append(Mention(rf[4:], "reference"))
        decided = self._by_free_text(extra_mentions)
        if decided is not None:
            return decided
        decided = self._by_payer()
        if decided is not None:
            return decided
        self._suggest_same_amount()
        return self._review("no reference, invoice number or known payer identifies the invoice")

    def _by_kid(self, item: OpenItem, reference: str) -> Decision:
        try:
            scheme = validate_kid(reference)
            self.evidence.append(f"KID {reference} (valid {scheme.name}) is invoice {item.invoice_number}'s")
        except InvalidKid:
            self.evidence.append(f"the reference {reference} is invoice {item.invoice_number}'s KID")
        if self.account_customers and item.customer_id not in self.account_customers:
            self.evidence.append("the payer's account is known for another customer (paid on their behalf)")
        amount_fits = item.open_minor == self.amount
        account_fits = item.customer_id in self.account_customers
        if item.is_open and not account_fits and (not amount_fits or self.account_customers):
            # Luhn misses a 09/90 swap, so a mistyped KID can be another invoice's valid one. When the
            # amount or the payer's known account does not confirm this invoice and a neighbour's does,
            # both are readings (even with equal amounts: the account says whose invoice was meant).
            rivals = [
                c.item
                for c in self.items.kid_candidates(reference)
                if c.item.is_open
                and c.item.invoice_id != item.invoice_id
                and (
                    c.item.customer_id in self.account_customers
                    or (not amount_fits and c.item.open_minor == self.amount)
                )
            ]
            if rivals:
                self._suggest([item], 0.5, f"its KID is {reference}, but its open amount is not the payment")
                for rival in rivals:
                    self._suggest(
                        [rival], 0.5, f"KID {rival.kid} is one keying error away and fits the payment"
                    )
                return self._review(
                    f"the KID is invoice {item.invoice_number}'s, but the payment fits invoice(s) "
                    f"{', '.join(r.invoice_number for r in rivals)} one keying error away better",
                    method="kid",
                )
        return self._pay([item], "kid", 1.0, credit_if_closed=True)

    def _by_typo(self, reference: str, candidates: list[KidCandidate]) -> Decision:
        fitting: list[tuple[KidCandidate, list[str]]] = []
        for candidate in candidates:
            item = candidate.item
            why = []
            amount = item.open_minor if item.is_open else item.total_minor
            if amount == self.amount:
                why.append("its amount is the payment's")
            if item.customer_id in self.account_customers:
                why.append("the payer's account is its customer's")
            if self.account_customers and item.customer_id not in self.account_customers:
                why = []  # the payer's account belongs to someone else: no fit on amount alone
            described = f"KID {item.kid} ({_ERRORS[candidate.error]} at position {candidate.position + 1})"
            score = 0.5 + 0.2 * len(why) if item.is_open else 0.2
            self._suggest([item], score, described + (": " + ", ".join(why) if why else ""))
            if why:
                fitting.append((candidate, why))
        self.evidence.append(
            f"the reference {reference} is no invoice's KID; {len(candidates)} KID(s) one keying error away, "
            f"{len(fitting)} of them fitting"
        )
        if len(fitting) == 1:
            candidate, why = fitting[0]
            item = candidate.item
            if item.is_open and item.currency == self.payment.currency:
                self.evidence.append(
                    f"invoice {item.invoice_number}: KID {item.kid}, {_ERRORS[candidate.error]}; "
                    + ", ".join(why)
                )
                return self._pay([item], "kid_typo", 0.85 + 0.05 * len(why))
            reason = (
                f"the only fitting KID is invoice {item.invoice_number}'s, which is {item.status}"
                if not item.is_open
                else f"the only fitting KID is invoice {item.invoice_number}'s, in {item.currency}"
            )
            return self._review(reason, method="kid_typo", customer_id=item.customer_id)
        if not fitting:
            return self._review(
                "the KID is unknown; the KIDs one keying error away fit neither the amount nor the payer",
                method="kid_typo",
            )
        return self._review(
            f"the KID is unknown; {len(fitting)} KIDs one keying error away fit the payment",
            method="kid_typo",
        )

    def _by_free_text(self, extra: Sequence[Mention]) -> Decision | None:
        found = [*extra, *mentions(self.payment.free_text)]
        if not found:
            return None
        strong = [m for m in found if m.labelled]
        used = strong or found
        targets: dict[str, OpenItem] = {}
        for mention in used:
            readings = self._readings(mention)
            if len(readings) > 1:
                for item in readings:
                    self._suggest([item], 0.4, f"{mention.digits} is this invoice's number or KID")
                return self._review(
                    f"{mention.digits} in the text is one invoice's number and another's KID",
                    method="free_text",
                )
            for item in readings:
                targets[item.invoice_id] = item
        if not targets:
            self.evidence.append("no number in the text is an invoice's number or KID")
            return None
        chosen = list(targets.values())
        numbers = ", ".join(item.invoice_number for item in chosen)
        self.evidence.append(f"the text names invoice(s) {numbers}" + ("" if strong else " (unlabelled)"))
        closed = [item for item in chosen if not item.is_open]
        if closed:
            if len(chosen) == 1 and strong:
                return self._pay(chosen, "free_text", 0.9, credit_if_closed=True)
            for item in chosen:
                self._suggest([item], 0.3, f"named in the text ({item.status})")
            return self._review(
                "the text names an invoice that is already " + closed[0].status, method="free_text"
            )
        elsewhere = self.account_customers and not any(
            i.customer_id in self.account_customers for i in chosen
        )
        if elsewhere and not (strong and sum(item.open_minor for item in chosen) == self.amount):
            for item in chosen:
                self._suggest([item], 0.5, "named in the text, but the payer's account is another customer's")
            return self._review(
                "the text names another customer's invoice than the payer account's", method="free_text"
            )
        if elsewhere:
            self.evidence.append("the payer's account is known for another customer (paid on their behalf)")
        if not strong:
            exact = [item for item in chosen if item.open_minor == self.amount]
            payers = [item for item in chosen if item.customer_id in self.account_customers]
            if len(chosen) > 1 and sum(item.open_minor for item in chosen) == self.amount:
                return self._pay(chosen, "free_text", 0.85)
            if len(exact) == 1:
                self.evidence.append(f"invoice {exact[0].invoice_number}'s open amount is the payment")
                return self._pay(exact, "free_text", 0.85)
            if len(chosen) == 1 and payers:
                self.evidence.append("the payer's account is the invoice's customer's")
                return self._pay(chosen, "free_text", 0.8)
            for item in chosen:
                self._suggest([item], 0.5, "an unlabelled number in the text is its number or KID")
            return self._review("the text has numbers that may be invoices, and nothing confirms them")
        if len(chosen) == 1:
            return self._pay(chosen, "free_text", 0.95 if chosen[0].open_minor == self.amount else 0.9)
        total = sum(item.open_minor for item in chosen)
        if total == self.amount:
            return self._pay(chosen, "free_text", 0.95)
        self._suggest(chosen, 0.6, f"named in the text; together {total}, the payment {self.amount}")
        return self._review("the invoices named in the text do not add up to the payment", method="free_text")

    def _readings(self, mention: Mention) -> list[OpenItem]:
        by_number = self.items.by_invoice_number(mention.digits)
        by_kid = self.items.by_kid(mention.digits)
        if by_number is not None and by_kid is not None and by_number.invoice_id != by_kid.invoice_id:
            if mention.label == "invoice":
                return [by_number]
            if mention.label == "kid":
                return [by_kid]
            return [by_number, by_kid]
        found = by_number or by_kid
        return [found] if found is not None else []

    def _by_payer(self) -> Decision | None:
        payment = self.payment
        if self.account_customers:
            customers, how = self.account_customers, "account"
            self.evidence.append(f"the payer's account is known for {len(customers)} customer(s)")
        elif payment.payer_name.strip():
            customers, how = self.items.customers_by_name(payment.payer_name), "name"
            if not customers:
                return None
            self.evidence.append(f"the payer's name is {len(customers)} customer(s)' name")
            if len(customers) > 1:
                for customer_id in sorted(customers):
                    self._suggest_sets(customer_id, 0.3, "the payer's name is its customer's")
                return self._review(
                    "the payer's name is more than one customer's", method="payer_name_amount"
                )
        else:
            return None
        fits: list[list[OpenItem]] = []
        bounded = False
        for customer_id in sorted(customers):
            sets, was_bounded = self._sets_of(customer_id)
            fits.extend(sets)
            bounded = bounded or was_bounded
        if len(fits) == 1 and not (bounded and len(fits[0]) > 1):
            chosen = fits[0]
            single = len(chosen) == 1
            method: Method
            if how == "account":
                method, confidence = ("payer_account_amount", 0.9) if single else ("payer_set", 0.85)
            else:
                method, confidence = ("payer_name_amount", 0.8) if single else ("payer_name_set", 0.75)
            what = (
                f"invoice {chosen[0].invoice_number}'s open amount"
                if single
                else f"the open amounts of invoices {', '.join(i.invoice_number for i in chosen)} together"
            )
            self.evidence.append(f"the payment is {what}, the only such fit among the payer's open invoices")
            if bounded:
                self.evidence.append(
                    f"the payer has more than {self.policy.max_set_items} open invoices: "
                    "sets of more than two were not searched"
                )
            return self._pay(chosen, method, confidence)
        for chosen in fits:
            self._suggest(chosen, 0.6, f"the payer's invoices add up to the payment ({how})")
        if not fits:
            for customer_id in sorted(customers):
                self._suggest_sets(customer_id, 0.2, f"an open invoice of the payer ({how})")
        method = "payer_set" if how == "account" else "payer_name_set"
        if len(fits) > 1:
            return self._review(
                f"{len(fits)} sets of the payer's open invoices add up to the payment", method=method
            )
        if fits:
            return self._review("only a large set of the payer's many open invoices fits", method=method)
        return self._review(
            "no open invoice of the payer, nor a small set, adds up to the payment", method=method
        )

    # --- helpers ----------------------------------------------------------------------------------

    def _kid_like(self, reference: str) -> bool:
        lengths = self.items.kid_lengths
        return any(abs(len(reference) - length) <= 1 for length in lengths)

    def _sets_of(self, customer_id: str) -> tuple[list[list[OpenItem]], bool]:
        """The sets of the customer's open invoices (in the payment's currency) that add up to the payment,
        at most two (two are enough to refuse); and whether the search was bounded."""
        items = [i for i in self.items.open_items_of(customer_id) if i.currency == self.payment.currency]
        if len(items) <= self.policy.max_set_items:
            return _subsets(items, self.amount, self.policy.max_set_size, limit=2), False
        # Many open invoices: every single one and every pair is checked, larger sets only as suggestions.
        found: list[list[OpenItem]] = [[i] for i in items if i.open_minor == self.amount][:2]
        seen: dict[int, OpenItem] = {}
        for item in items:
            partner = seen.get(self.amount - item.open_minor)
            if partner is not None and len(found) < 2:
                found.append(sorted([partner, item], key=due_order))
            seen.setdefault(item.open_minor, item)
        if not found:
            oldest = items[: self.policy.max_set_items]
            found = _subsets(oldest, self.amount, self.policy.max_set_size, limit=2)
        return found, True

    def _pay(
        self, chosen: list[OpenItem], method: Method, confidence: float, *, credit_if_closed: bool = False
    ) -> Decision:
        currency = self.payment.currency
        customers = {item.customer_id for item in chosen}
        customer_id = next(iter(customers)) if len(customers) == 1 else ""
        closed = [item for item in chosen if not item.is_open]
        if closed:
            item = closed[0]
            if credit_if_closed and len(chosen) == 1 and item.currency == currency:
                for other in self.items.open_items_of(item.customer_id):
                    if other.currency == currency:
                        score = 0.5 if other.open_minor == self.amount else 0.2
                        self._suggest([other], score, "an open invoice of the same customer")
                return self._review(
                    f"invoice {item.invoice_number} is already {item.status}: the payment is proposed as the "
                    "customer's credit",
                    method=method,
                    customer_id=item.customer_id,
                    credit_minor=self.amount,
                )
            return self._review(f"invoice {item.invoice_number} is already {item.status}", method=method)
        other_currency = [item for item in chosen if item.currency != currency]
        if other_currency:
            item = other_currency[0]
            self._suggest(chosen, 0.5, f"the reference fits, but the invoice is in {item.currency}")
            return self._review(
                f"the payment is in {currency}, invoice {item.invoice_number} in {item.currency}",
                method=method,
                customer_id=customer_id,
            )
        if len(customers) > 1:
            self._suggest(chosen, 0.5, "the invoices belong to different customers")
            return self._review("the invoices the payment names belong to different customers", method=method)
        allocations, left = allocate(self.amount, chosen)
        open_total = sum(item.open_minor for item in chosen)
        if left:
            self.evidence.append(
                f"over-payment: {left} beyond the open {open_total} is the customer's credit"
            )
        elif self.amount < open_total:
            self.evidence.append(f"part payment: {self.amount} of the open {open_total}")
        return Decision(
            "matched",
            method,
            confidence,
            tuple(self.evidence),
            allocations,
            credit_minor=left,
            customer_id=customer_id,
            based_on_versions={
                item.invoice_id: item.version for item in chosen if item.invoice_id in allocations
            },
        )

    def _review(
        self, reason: str, *, method: Method = "none", customer_id: str = "", credit_minor: int = 0
    ) -> Decision:
        ranked = sorted(self.suggestions.values(), key=lambda s: (-s.score, s.invoice_numbers))
        suggestions = tuple(ranked[: self.policy.max_suggestions])
        confidence = suggestions[0].score if suggestions else 0.0
        return Decision(
            "review",
            method,
            min(confidence, 0.5),
            tuple(self.evidence),
            {},
            credit_minor=credit_minor,
            customer_id=customer_id,
            suggestions=suggestions,
            reason=reason,
        )

    def _suggest(self, chosen: Sequence[OpenItem], score: float, reason: str) -> None:
        ordered = sorted(chosen, key=due_order)
        key = tuple(item.invoice_id for item in ordered)
        known = self.suggestions.get(key)
        if known is None or known.score < score:
            self.suggestions[key] = Suggestion(
                key, tuple(item.invoice_number for item in ordered), score, reason
            )

    def _suggest_sets(self, customer_id: str, score: float, reason: str) -> None:
        items = [i for i in self.items.open_items_of(customer_id) if i.currency == self.payment.currency]
        ranked = sorted(items, key=lambda i: (abs(i.open_minor - self.amount), due_order(i)))
        for item in ranked[: self.policy.max_suggestions]:
            self._suggest([item], score, reason)

    def _suggest_same_amount(self) -> None:
        same = self.items.open_with_amount(self.payment.currency, self.amount)
        if 0 < len(same) <= self.policy.max_suggestions:
            for item in same:
                self._suggest([item], 0.2, "its open amount is the payment's (nothing else links them)")


_ERRORS: Final = {
    "wrong_digit": "one digit wrong",
    "adjacent_swap": "two adjacent digits swapped",
    "missing_digit": "one digit missing",
    "extra_digit": "one digit extra",
}


def _subsets(items: list[OpenItem], target: int, max_size: int, *, limit: int) -> list[list[OpenItem]]:
    """Up to limit sets of at most max_size items whose open amounts add up to target (amounts > 0)."""
    ordered = sorted(items, key=lambda i: -i.open_minor)
    amounts = [i.open_minor for i in ordered]
    # suffix[i]: the sum of amounts[i:] (a branch that cannot reach target any more is cut).
    suffix = [0] * (len(amounts) + 1)
    for i in range(len(amounts) - 1, -1, -1):
        suffix[i] = suffix[i + 1] + amounts[i]
    found: list[list[OpenItem]] = []
    chosen: list[int] = []

    def walk(start: int, left: int) -> None:
        if len(found) >= limit:
            return
        if left == 0:
            found.append(sorted((ordered[i] for i in chosen), key=due_order))
            return
        if len(chosen) == max_size or suffix[start] < left:
            return
        for i in range(start, len(amounts)):
            if amounts[i] <= left:
                chosen.append(i)
                walk(i + 1, left - amounts[i])
                chosen.pop()
                if len(found) >= limit:
                    return

    walk(0, target)
    return found
