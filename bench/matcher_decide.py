"""The matcher's decisions, pure: 50,000 payments against 200,000 open invoices, in one process.

    python -m bench.matcher_decide [--items 200000] [--payments 50000] [--seed 1]

Dense sequential KIDs (as the ledger generates them: every neighbour of a typo'd KID is likely a real
invoice), 4 open invoices per customer, one known payer account each, a tenth of the invoices paid.
The payments: exact KIDs (some part and over-payments), KIDs with one keying error, invoice numbers in
the free text, and payer account + amount (one invoice, or two together). Prints the index's build time
and memory, decisions per second (target >= 10,000/s), and per kind how many were decided automatically
and whether any automatic decision was wrong.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta

from services.common.kid import KidScheme, generate_kid
from services.matcher.domain.matching import decide
from services.matcher.domain.open_items import OpenItem, OpenItems
from services.matcher.domain.payments import BankPayment

TARGET_PER_SECOND = 10_000


@dataclass(frozen=True)
class Case:
    kind: str
    payment: BankPayment
    # The allocations a right automatic decision makes (None: it must not be decided automatically).
    expected: dict[str, int] | None


def build_items(count: int, rng: random.Random) -> tuple[list[OpenItem], dict[str, list[str]]]:
    items = []
    accounts: dict[str, list[str]] = {}
    for n in range(1, count + 1):
        customer = f"c{(n - 1) // 4}"
        amount = rng.randrange(100, 20_000) * 100
        paid = rng.random() < 0.1
        items.append(
            OpenItem(
                invoice_id=f"inv{n}",
                invoice_number=str(n),
                kid=generate_kid(n, length=10, scheme=KidScheme.MOD10),
                customer_id=customer,
                customer_number=customer[1:],
                currency="NOK",
                open_minor=0 if paid else amount,
                status="paid" if paid else "open",
                due_date=date(2025, 1, 1) + timedelta(days=n % 90),
                version=1,
                total_minor=amount,
            )
        )
        accounts.setdefault(customer, [f"{1200_00_00000 + (n - 1) // 4:011d}"])
    return items, accounts


def typo(kid: str, rng: random.Random) -> str:
    i = rng.randrange(len(kid) - 1)
    match rng.randrange(4):
        case 0:
            return kid[:i] + rng.choice([d for d in "0123456789" if d != kid[i]]) + kid[i + 1 :]
        case 1:
            return (
                kid[:i] + kid[i + 1] + kid[i] + kid[i + 2 :]
                if kid[i] != kid[i + 1]
                else kid[:i] + kid[i + 1 :]
            )
        case 2:
            return kid[:i] + kid[i + 1 :]
        case _:
            return kid[:i] + rng.choice("0123456789") + kid[i:]


def build_payments(items: list[OpenItem], count: int, rng: random.Random) -> list[Case]:
    open_items = [i for i in items if i.is_open]
    by_customer: dict[str, list[OpenItem]] = {}
    for item in open_items:
        by_customer.setdefault(item.customer_id, []).append(item)
    texts = ["Faktura {}", "fakt.nr {}", "Betaling faktura nr. {} 15.03.2025", "Inv#{}"]
    cases = []
    for n in range(count):
        item = rng.choice(open_items)
        account = f"{1200_00_00000 + int(item.customer_id[1:]):011d}"
        whole = {item.invoice_id: item.open_minor}
        roll = rng.random()
        if roll < 0.65:
            cases.append(_case(n, "kid exact", whole, reference=item.kid))
        elif roll < 0.70:
            cases.append(_case(n, "kid part", {item.invoice_id: item.open_minor // 2}, reference=item.kid))
        elif roll < 0.77:
            cases.append(_case(n, "kid typo", whole, reference=typo(item.kid, rng), payer_account=account))
        elif roll < 0.80:
            cases.append(_case(n, "typo, no acct", whole, reference=typo(item.kid, rng)))
        elif roll < 0.90:
            text = rng.choice(texts).format(item.invoice_number)
            cases.append(_case(n, "free text", whole, free_text=text))
        elif roll < 0.95:
            cases.append(_case(n, "payer amount", whole, payer_account=account))
        else:
            chosen = by_customer[item.customer_id][:2]
            expected = {i.invoice_id: i.open_minor for i in chosen}
            cases.append(_case(n, "payer set", expected, payer_account=account))
    return cases


def _case(
    n: int,
    kind: str,
    expected: dict[str, int],
    *,
    reference: str = "",
    free_text: str = "",
    payer_account: str = "",
) -> Case:
    payment = BankPayment(
        location=f"line {n}",
        bank_key=f"b{n}",
        direction="credit",
        amount_minor=sum(expected.values()),
        currency="NOK",
        reference=reference,
        free_text=free_text,
        payer_account=payer_account,
    )
    return Case(kind, payment, expected)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--payments", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    items, accounts = build_items(args.items, rng)
    gc.collect()

    started = time.perf_counter()
    index = OpenItems(items, payer_accounts=accounts)
    build_seconds = time.perf_counter() - started
    del index
    gc.collect()
    tracemalloc.start()
    index = OpenItems(items, payer_accounts=accounts)
    memory, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"index: {len(index):,} items, {index.memory_keys():,} deletion keys")
    print(f"  build {build_seconds:.2f} s; {memory / 1e6:.0f} MB beyond the items (peak {peak / 1e6:.0f} MB)")

    cases = build_payments(items, args.payments, rng)
    started = time.perf_counter()
    decisions = [decide(case.payment, index) for case in cases]
    seconds = time.perf_counter() - started
    rate = len(cases) / seconds
    verdict = "ok" if rate >= TARGET_PER_SECOND else "BELOW TARGET"
    print(
        f"decide: {len(cases):,} payments in {seconds:.2f} s = {rate:,.0f}/s "
        f"(target {TARGET_PER_SECOND:,}/s: {verdict})"
    )

    total: Counter[str] = Counter()
    auto: Counter[str] = Counter()
    wrong: Counter[str] = Counter()
    methods: Counter[str] = Counter()
    for case, decision in zip(cases, decisions, strict=True):
        total[case.kind] += 1
        methods[decision.method if decision.status == "matched" else "review"] += 1
        if decision.status == "matched":
            auto[case.kind] += 1
            if case.expected is None or dict(decision.allocations) != case.expected:
                wrong[case.kind] += 1
    for kind in total:
        share = auto[kind] / total[kind]
        print(f"  {kind:13} {total[kind]:6,}  automatic {share:6.1%}  wrong {wrong[kind]}")
    print("  by method: " + ", ".join(f"{m} {c:,}" for m, c in methods.most_common()))


if __name__ == "__main__":
    main()
