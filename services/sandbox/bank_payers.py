"""How the sandbox bank's payers pay: which invoices get which kind of payment, with what amount,
reference, text and account, so that each payment comes to what its `ExpectedPayment` says (see
services/sandbox/bank.py for the promises kept)."""

from __future__ import annotations

import itertools
import random
import unicodedata
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

from services.sandbox.bank_keying import (
    KEYING_ERRORS,
    KeyingError,
    KidIndex,
    norwegian_account,
    norwegian_iban,
    one_keying_error,
    variants,
)
from services.sandbox.bank_scenarios import BankInvoice, ExpectedPayment, FileKind, Kind, Scenario, SingleKind
from services.sandbox.bankfiles import FilePayment

# The matcher sums sets of at most this many of a payer's open invoices, among at most _MAX_SET_ITEMS.
_MAX_SET_SIZE: Final = 5
_MAX_SET_ITEMS: Final = 12
# A payment in review gets at most this many suggestions.
_MAX_SUGGESTIONS: Final = 5


def plan_payments(
    invoices: Sequence[BankInvoice], scenario: Scenario, rng: random.Random, day: date, format: FileKind
) -> list[ExpectedPayment]:
    """The file's payments, in the order the bank lists them."""
    return _Planner(list(invoices), scenario, rng, day, format).plan()


@dataclass
class _Payer:
    """Who pays: their account (and name, in camt)."""

    account: str
    name: str = ""


class _Planner:
    def __init__(
        self, invoices: list[BankInvoice], scenario: Scenario, rng: random.Random, day: date, format: FileKind
    ) -> None:
        self.invoices = sorted(invoices, key=lambda i: (i.number.zfill(32), i.kid))
        self.scenario = scenario
        self.rng = rng
        self.day = day
        self.format = format
        self.kids = KidIndex(self.invoices)
        self.amounts = {amount for i in self.invoices for amount in i.amounts}
        self.used: set[str] = set()
        self.planned: list[ExpectedPayment] = []
        self.ids: set[str] = set()
        owners: dict[str, set[str]] = defaultdict(set)
        for invoice in self.invoices:
            if invoice.customer_account:
                owners[invoice.customer_account].add(invoice.customer_number)
        # Known accounts of exactly one customer (a shared account says nothing about who paid).
        self.own_account = {
            next(iter(customers)): account for account, customers in owners.items() if len(customers) == 1
        }
        self.taken_accounts = set(owners)
        self.fresh: dict[str, str] = {}
        self.names = {_name_key(i.customer_name) for i in self.invoices}

    def payable(self) -> list[BankInvoice]:
        return [
            i
            for i in self.invoices
            if i.is_open and i.amount_minor > 0 and i.currency == "NOK" and i.number not in self.used
        ]

    def plan(self) -> list[ExpectedPayment]:
        scenario = self.scenario
        n = len(self.payable())
        for _ in range(self._count(n, scenario.ambiguous_share)):
            self._ambiguous_typo()
        for _ in range(self._count(n, scenario.ambiguous_share)):
            self._unknown_payer()
        for _ in range(self._count(n, scenario.multi_share)):
            self._multi()
        left = self.payable()
        self.rng.shuffle(left)
        paid_already = sum(len(p.pays) for p in self.planned)
        to_pay = min(len(left), max(0, round(scenario.paid_share * n) - paid_already))
        kinds = self._single_kinds(to_pay)
        for invoice, kind in zip(left, kinds, strict=False):
            self._single(invoice, kind)
        self.rng.shuffle(self.planned)
        return self.planned

    def _count(self, invoices: int, share: float) -> int:
        if share <= 0 or invoices == 0:
            return 0
        return max(1 if self.scenario.every_kind and invoices >= 4 else 0, round(invoices * share))

    def _single_kinds(self, count: int) -> list[SingleKind]:
        weighted = [(kind, weight) for kind, weight in self.scenario.weights if weight > 0]
        kinds: list[SingleKind] = []
        if self.scenario.every_kind and count >= len(weighted):
            kinds = [kind for kind, _ in weighted]
        names = [kind for kind, _ in weighted]
        kinds += self.rng.choices(names, weights=[w for _, w in weighted], k=count - len(kinds))
        self.rng.shuffle(kinds)
        return kinds

    # --- payers and bank identifiers ---------------------------------------------------------------

    def payer_of(self, invoice: BankInvoice) -> _Payer:
        """The customer as payer: their known account, else their own account the creditor does not know."""
        account = self.own_account.get(invoice.customer_number) or self._fresh_account(
            invoice.customer_number
        )
        name = invoice.customer_name
        if self.rng.random() < 0.4:
            name = name.upper()
        return _Payer(account, name)

    def stranger(self) -> _Payer:
        """A payer the creditor does not know: an account and a name no customer has."""
        account = self._fresh_account(f"stranger-{len(self.fresh)}")
        while True:
            name = f"{self.rng.choice(_FIRST_NAMES)} {self.rng.choice(_LAST_NAMES)}"
            if _name_key(name) not in self.names:
                return _Payer(account, name)

    def _fresh_account(self, key: str) -> str:
        if key not in self.fresh:
            while True:
                account = norwegian_account(self.rng)
                if account not in self.taken_accounts:
                    break
            self.taken_accounts.add(account)
            self.fresh[key] = account
        return self.fresh[key]

    def _unique_id(self, make: Iterator[str]) -> str:
        for candidate in make:
            if candidate not in self.ids:
                self.ids.add(candidate)
                return candidate
        raise AssertionError("unreachable")  # pragma: no cover

    def payment(self, amount: int, payer: _Payer, *, reference: str = "", text: str = "") -> FilePayment:
        rng = self.rng

        def digits(width: int) -> Iterator[str]:
            while True:
                yield f"{rng.randrange(10 ** (width - 1), 10**width)}"

        if self.format == "ocr_giro":
            return FilePayment(
                amount,
                reference=reference,
                free_text=text[:40],
                payer_account=payer.account,
                booking_date=self.day,
                value_date=self.day - timedelta(days=rng.choice((0, 1, 1, 2))),
                archive_reference=self._unique_id(digits(9)),
                form_number=f"{rng.randrange(10**10):010d}",
                transaction_type=rng.choice(("10", "10", "10", "16", "14")),
            )
        end_to_end = "NOTPROVIDED" if rng.random() < 0.2 else self._unique_id(f"E2E{d}" for d in digits(16))
        return FilePayment(
            amount,
            reference=reference,
            free_text=text[:140],
            payer_name=payer.name,
            payer_account=norwegian_iban(payer.account),
            booking_date=self.day,
            acct_svcr_ref=self._unique_id(f"{self.day:%Y%m%d}{d}" for d in digits(10)),
            end_to_end_id=end_to_end,
        )

    def add(
        self,
        kind: Kind,
        payment: FilePayment,
        pays: Mapping[str, int],
        *,
        credit: int = 0,
        candidates: Sequence[BankInvoice] = (),
        note: str = "",
    ) -> None:
        self.planned.append(
            ExpectedPayment(kind, payment, dict(pays), credit, tuple(c.number for c in candidates), note=note)
        )

    # --- single invoices -------------------------------------------------------------------------

    def _single(self, invoice: BankInvoice, kind: SingleKind) -> None:
        self.used.add(invoice.number)
        payer = self.payer_of(invoice)
        amount = invoice.amount_minor
        if kind == "part" and amount >= 200:
            part = self._part_amount(amount)
            if part is not None:
                self.add(
                    "part",
                    self.payment(part, payer, reference=invoice.kid),
                    {invoice.number: part},
                    note=f"pays {part} of {amount} on invoice {invoice.number}",
                )
                return
        if kind == "over":
            over = self._over_amount(amount)
            if over is not None:
                self.add(
                    "over",
                    self.payment(over, payer, reference=invoice.kid),
                    {invoice.number: amount},
                    credit=over - amount,
                    note=f"pays {over - amount} too much on invoice {invoice.number}",
                )
                return
        if kind == "kid_typo":
            typo = self._typo(invoice, payer)
            if typo is not None:
                typed, error = typo
                self.add(
                    "kid_typo",
                    self.payment(amount, payer, reference=typed),
                    {invoice.number: amount},
                    note=f"KID {invoice.kid} typed {typed}: {error.replace('_', ' ')}",
                )
                return
        if kind == "free_text" and invoice.number.isdigit():
            text = self.rng.choice(_INVOICE_TEXTS).format(invoice.number)
            self.add(
                "free_text",
                self.payment(amount, payer, text=text),
                {invoice.number: amount},
                note=f"no KID; {text!r}",
            )
            return
        self.add("exact", self.payment(amount, payer, reference=invoice.kid), {invoice.number: amount})

    def _part_amount(self, amount: int) -> int | None:
        """A round part of `amount` that is no invoice's amount, and leaves open no invoice's amount
        either (so neither the payment nor what is left can be taken for another invoice)."""
        share = self.rng.choice((0.25, 0.3, 0.4, 0.5, 0.5, 0.6, 0.75))
        part = max(100, int(amount * share) // 100 * 100)
        while 0 < part < amount:
            if part not in self.amounts and amount - part not in self.amounts:
                self.amounts.update((part, amount - part))
                return part
            part -= 100
        return None

    def _over_amount(self, amount: int) -> int | None:
        """`amount` and a bit more (a reminder fee, a rounding up), and no invoice's amount."""
        over = amount + self.rng.choice((3500, 10000, 20000, 50000))
        for _ in range(1000):
            if over not in self.amounts:
                self.amounts.add(over)
                return over
            over += 100
        return None

    def _typo(self, invoice: BankInvoice, payer: _Payer) -> tuple[str, KeyingError] | None:
        """A keying error of the invoice's KID that no other invoice's KID is near enough to fit."""
        errors = list(KEYING_ERRORS)
        self.rng.shuffle(errors)
        for error in errors:
            typings = sorted(set(variants(invoice.kid, error)))
            self.rng.shuffle(typings)
            for typed in typings:
                if self.kids.get(typed) is not None or not typed:
                    continue
                others = [i for i in self.kids.near(typed) if i.number != invoice.number]
                if not any(self._fits(other, invoice.amount_minor, invoice, payer) for other in others):
                    return typed, error
        return None

    @staticmethod
    def _fits(other: BankInvoice, amount: int, meant: BankInvoice, payer: _Payer) -> bool:
        """Whether the matcher could take `other` for the payment too: its amount or its payer."""
        return (
            amount in other.amounts
            or other.customer_number == meant.customer_number
            or other.customer_account == payer.account
        )

    # --- several invoices --------------------------------------------------------------------------

    def _multi(self) -> None:
        by_customer: dict[str, list[BankInvoice]] = defaultdict(list)
        for invoice in self.payable():
            by_customer[invoice.customer_number].append(invoice)
        customers = sorted(c for c, items in by_customer.items() if len(items) >= 2 and c)
        self.rng.shuffle(customers)
        for customer in customers:
            items = by_customer[customer]
            if self.rng.random() < 0.5 and self._multi_by_account(customer, items):
                return
            if self._multi_by_text(items):
                return

    def _multi_by_text(self, items: list[BankInvoice]) -> bool:
        chosen = sorted(self.rng.sample(items, min(len(items), self.rng.choice((2, 3)))), key=_by_number)
        if not all(i.number.isdigit() for i in chosen):
            return False
        numbers = [i.number for i in chosen]
        listed = ", ".join(numbers[:-1]) + " og " + numbers[-1]
        text = self.rng.choice(("Faktura {}", "Fakturaene {}", "Betaler faktura {}")).format(listed)
        if len(text) > 40:
            return False
        total = sum(i.amount_minor for i in chosen)
        self.used.update(numbers)
        self.add(
            "multi_text",
            self.payment(total, self.payer_of(chosen[0]), text=text),
            {i.number: i.amount_minor for i in chosen},
            note=f"no KID; {text!r}",
        )
        return True

    def _multi_by_account(self, customer: str, items: list[BankInvoice]) -> bool:
        """The sum of two or three of the customer's open invoices from their known account, no text:
        only when no other set of their open invoices adds up to the same."""
        account = self.own_account.get(customer)
        everything = [i for i in self.invoices if i.customer_number == customer]
        if not account or any(i.number in self.used for i in everything):
            return False
        open_items = [i for i in everything if i.is_open and i.amount_minor > 0 and i.currency == "NOK"]
        if len(open_items) > _MAX_SET_ITEMS:
            return False
        for size in self.rng.sample((2, 3), 2):
            for chosen in itertools.combinations(sorted(items, key=_by_number), size):
                total = sum(i.amount_minor for i in chosen)
                if _sets_adding_up(open_items, total) == 1:
                    self.used.update(i.number for i in everything)
                    self.add(
                        "multi_account",
                        self.payment(total, self.payer_of(chosen[0])),
                        {i.number: i.amount_minor for i in chosen},
                        note=f"no KID, no text: {len(chosen)} invoices' sum from the customer's account",
                    )
                    return True
        return False

    # --- deliberately ambiguous --------------------------------------------------------------------

    def _ambiguous_typo(self) -> None:
        """A mistyped KID one keying error from two invoices that both fit: the same customer paying
        from their known account, or the same amount from an account nobody knows."""
        payable = self.payable()
        pairs: list[tuple[BankInvoice, BankInvoice]] = []
        by_customer: dict[str, list[BankInvoice]] = defaultdict(list)
        by_amount: dict[int, list[BankInvoice]] = defaultdict(list)
        for invoice in payable:
            if invoice.customer_number in self.own_account:
                by_customer[invoice.customer_number].append(invoice)
            else:
                by_amount[invoice.amount_minor].append(invoice)
        for group in [*by_customer.values(), *by_amount.values()]:
            pairs.extend(itertools.permutations(group, 2))
        self.rng.shuffle(pairs)
        for meant, other in pairs:
            common = sorted(
                typed
                for error in KEYING_ERRORS
                for typed in variants(meant.kid, error)
                if self.kids.get(typed) is None and one_keying_error(typed, other.kid)
            )
            if not common:
                continue
            typed = self.rng.choice(common)
            self.used.update((meant.number, other.number))
            payer = self.payer_of(meant)
            self.add(
                "ambiguous_typo",
                self.payment(meant.amount_minor, payer, reference=typed),
                {},
                candidates=sorted((meant, other), key=_by_number),
                note=f"{typed} is one keying error from KID {meant.kid} and KID {other.kid}; both fit",
            )
            return

    def _unknown_payer(self) -> None:
        """No KID, no text, from an account and name nobody knows, with an amount open on a few
        invoices (the matcher suggests at most _MAX_SUGGESTIONS of them); on many, or on one, when no
        amount is shared by a few."""
        by_amount: dict[int, list[BankInvoice]] = defaultdict(list)
        for invoice in self.payable():
            by_amount[invoice.amount_minor].append(invoice)
        if not by_amount:
            return
        few = sorted(a for a, group in by_amount.items() if 2 <= len(group) <= _MAX_SUGGESTIONS)
        many = sorted(a for a, group in by_amount.items() if len(group) > _MAX_SUGGESTIONS)
        amount = self.rng.choice(few or many or sorted(by_amount))
        group = by_amount[amount]
        self.used.update(i.number for i in group)
        text = self.rng.choice(("", "", "Betaling", "Innbetaling")) if self.format == "camt.054" else ""
        self.add(
            "unknown_payer",
            self.payment(amount, self.stranger(), text=text),
            {},
            candidates=group,
            note=f"an unknown payer; {len(group)} open invoice(s) of that amount",
        )


def _sets_adding_up(items: Sequence[BankInvoice], target: int) -> int:
    """How many sets of at most _MAX_SET_SIZE of the items add up to target (0, 1, or 2 for more)."""
    found = 0
    for size in range(1, min(_MAX_SET_SIZE, len(items)) + 1):
        for chosen in itertools.combinations(items, size):
            if sum(i.amount_minor for i in chosen) == target:
                found += 1
                if found > 1:
                    return found
    return found


def _name_key(name: str) -> str:
    text = unicodedata.normalize("NFKC", name).casefold()
    return " ".join(sorted(text.split()))


def _by_number(invoice: BankInvoice) -> str:
    return invoice.number.zfill(32)


_INVOICE_TEXTS: Final = (
    "Faktura {}",
    "Fakturanr. {}",
    "Betaling faktura {}",
    "Fakt.nr {}",
    "faktura nr {}",
    "Innbetaling fakturanummer {}",
)
_FIRST_NAMES: Final = ("Mona", "Geir", "Hilde", "Trond", "Randi", "Arild", "Wenche", "Svein", "Tove", "Odd")
_LAST_NAMES: Final = ("Tangen", "Bråthen", "Myhre", "Rønning", "Aasen", "Sunde", "Brekke", "Ulvestad")
