"""The matcher: a 50,000-payment OCR Giro file against 200,000 open invoices, each figure beside a
baseline measured in the same run.

    make bench                 # or: python -m bench.matcher_import [--invoices 200000] [--payments 50000]

1. parse: the matcher's OCR Giro parser (checks every record, keeps every bank identifier) against
   netsgiro's parse of the same file (baseline);
2. decide: decisions per second over the 200,000 open items (target >= 10,000/s), against plain
   dictionary lookups of the exact KIDs (baseline: the least any matcher does);
3. apply: payments applied in the ledger per second through the ledger's batch path (the one its
   consumer runs) against raw bulk updates of as many invoice documents in the same database
   (baseline; target >= 50 %);
4. the whole import, file to ledger: on an embedded broker and database, a ledger and a matcher
   (each its own process, as `fordring up` runs them), both seeded in bulk with the open invoices
   (untimed); the file is uploaded through ImportPayments and the clock stops when the ledger has
   applied every matched payment (target under 60 s).
The payments mix exact KIDs, part-payments, KIDs with one keying error (with the payer's known
account), invoice numbers in the free text and known payers paying one or two invoices; every
automatic decision is checked against what the payment was made for (no wrong one is allowed).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import netsgiro

from bench.matcher_decide import typo
from services.common.kid import KidScheme, generate_kid
from services.matcher.adapters.bankfiles import parse
from services.matcher.domain.matching import decide
from services.matcher.domain.open_items import OpenItem, OpenItems
from services.sandbox.bankfiles import FilePayment, ocr_giro_file

DECISIONS_TARGET = 10_000
APPLY_TARGET = 0.50
IMPORT_TARGET_SECONDS = 60.0
DAY = date(2026, 11, 30)


@dataclass(frozen=True)
class Invoice:
    invoice_id: str
    number: str
    kid: str
    customer_id: str
    customer_number: str
    account: str
    amount_minor: int
    due: date


def norwegian_account(n: int) -> str:
    """A valid 11-digit Norwegian account number (MOD11), the n-th of a bank's series."""
    while True:
        body = f"{1503_00_0000 + n:010d}"
        total = sum(int(d) * w for d, w in zip(body, (5, 4, 3, 2, 7, 6, 5, 4, 3, 2), strict=True))
        check = (11 - total % 11) % 11
        if check != 10:
            return body + str(check)
        n += 10_000_000


def make_invoices(count: int, rng: random.Random, *, per_customer: int = 4) -> list[Invoice]:
    out = []
    for n in range(1, count + 1):
        c = (n - 1) // per_customer
        out.append(
            Invoice(
                invoice_id=f"inv-{n:07d}",
                number=str(100_000 + n),
                kid=generate_kid(100_000 + n, length=10, scheme=KidScheme.MOD10),
                customer_id=f"cust-{c:07d}",
                customer_number=f"K{c:07d}",
                account=norwegian_account(c),
                amount_minor=rng.randrange(100, 20_000) * 100 + rng.choice((0, 0, 50, 99)),
                due=DAY + timedelta(days=n % 30),
            )
        )
    return out


@dataclass(frozen=True)
class Case:
    kind: str
    payment: FilePayment
    expected: dict[str, int]


def make_payments(invoices: list[Invoice], count: int, rng: random.Random) -> list[Case]:
    """Each invoice is paid at most once (the file is one day's money), in a realistic mix."""
    chosen = rng.sample(range(0, len(invoices) - 1, 2), count)
    cases = []
    for i in chosen:
        inv = invoices[i]
        whole = {inv.invoice_id: inv.amount_minor}
        roll = rng.random()
        if roll < 0.70:
            cases.append(Case("kid exact", FilePayment(inv.amount_minor, reference=inv.kid), whole))
        elif roll < 0.75:
            half = inv.amount_minor // 2
            cases.append(Case("kid part", FilePayment(half, reference=inv.kid), {inv.invoice_id: half}))
        elif roll < 0.83:
            p = FilePayment(inv.amount_minor, reference=typo(inv.kid, rng), payer_account=inv.account)
            cases.append(Case("kid typo", p, whole))
        elif roll < 0.93:
            text = rng.choice(["Faktura {}", "fakt.nr {}", "Betaling faktura nr. {}", "Inv {}"]).format(
                inv.number
            )
            cases.append(Case("free text", FilePayment(inv.amount_minor, free_text=text), whole))
        else:
            # The customer's two invoices i and i+1 in one payment from the known account.
            other = invoices[i + 1]
            if other.customer_id == inv.customer_id:
                both = {inv.invoice_id: inv.amount_minor, other.invoice_id: other.amount_minor}
                p = FilePayment(sum(both.values()), payer_account=inv.account)
                cases.append(Case("payer set", p, both))
            else:
                cases.append(
                    Case("payer amount", FilePayment(inv.amount_minor, payer_account=inv.account), whole)
                )
    return cases


def open_items(invoices: list[Invoice]) -> OpenItems:
    items = [
        OpenItem(
            invoice_id=i.invoice_id,
            invoice_number=i.number,
            kid=i.kid,
            customer_id=i.customer_id,
            customer_number=i.customer_number,
            currency="NOK",
            open_minor=i.amount_minor,
            status="open",
            due_date=i.due,
            version=1,
            total_minor=i.amount_minor,
        )
        for i in invoices
    ]
    accounts = {i.customer_id: [i.account] for i in invoices}
    return OpenItems(items, payer_accounts=accounts)


def best_of(rounds: int, work: Any) -> float:
    best = float("inf")
    for _ in range(rounds):
        gc.collect()
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def bench_parse(content: bytes, count: int, rounds: int) -> dict[str, float]:
    text = content.decode("iso-8859-1")
    ours = best_of(rounds, lambda: parse(content))
    theirs = best_of(rounds, lambda: netsgiro.parse(text))
    return {"ours": count / ours, "netsgiro": count / theirs}


def bench_decide(invoices: list[Invoice], cases: list[Case]) -> dict[str, Any]:
    started = time.perf_counter()
    book = open_items(invoices)
    build = time.perf_counter() - started
    parsed = parse(ocr_giro_file([c.payment for c in cases])).payments
    gc.collect()
    started = time.perf_counter()
    decisions = [decide(p, book) for p in parsed]
    seconds = time.perf_counter() - started
    kids = {i.kid: i.invoice_id for i in invoices}
    started = time.perf_counter()
    found = sum(1 for p in parsed if kids.get(p.reference) is not None)
    lookup = time.perf_counter() - started
    auto: Counter[str] = Counter()
    total: Counter[str] = Counter()
    wrong = 0
    for case, decision in zip(cases, decisions, strict=True):
        total[case.kind] += 1
        if decision.status == "matched":
            auto[case.kind] += 1
            wrong += dict(decision.allocations) != case.expected
    return {
        "build_seconds": build,
        "decisions_per_second": len(parsed) / seconds,
        "lookups_per_second": len(parsed) / max(lookup, 1e-9),
        "exact_found": found,
        "auto": auto,
        "total": total,
        "wrong": wrong,
    }


def report_pure(
    args: argparse.Namespace, parsed: dict[str, float], decided: dict[str, Any], results: dict[str, Any]
) -> bool:
    print(f"matcher bench: {args.payments:,} payments (OCR Giro) against {args.invoices:,} open invoices")
    ratio = parsed["ours"] / parsed["netsgiro"]
    print(
        f"  parse     {parsed['ours']:>10,.0f} payments/s   netsgiro {parsed['netsgiro']:>10,.0f}/s   "
        f"ratio {ratio:.2f}"
    )
    rate = float(decided["decisions_per_second"])
    ok = rate >= DECISIONS_TARGET and int(decided["wrong"]) == 0
    print(
        f"  decide    {rate:>10,.0f} decisions/s  "
        f"exact-KID dict lookups {decided['lookups_per_second']:>10,.0f}/s   "
        f"target >= {DECISIONS_TARGET:,}/s: {'ok' if rate >= DECISIONS_TARGET else 'BELOW TARGET'}"
        f"   (book of {args.invoices:,} built in {decided['build_seconds']:.1f} s)"
    )
    for kind, n in sorted(decided["total"].items()):
        print(f"            {kind:13} {n:7,}  automatic {decided['auto'][kind] / n:6.1%}")
    print(f"            wrong automatic decisions: {decided['wrong']}")
    results.update(
        parse_per_second=parsed["ours"],
        netsgiro_parse_per_second=parsed["netsgiro"],
        decisions_per_second=rate,
        exact_lookups_per_second=decided["lookups_per_second"],
        wrong_automatic=decided["wrong"],
    )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--invoices", type=int, default=200_000)
    parser.add_argument("--payments", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1000, help="the matcher's payments per transaction")
    parser.add_argument(
        "--pure", action="store_true", help="only parse and decide (no database, no services)"
    )
    parser.add_argument("--out", default="bench/results/matcher_import.json")
    parser.add_argument(
        "--patience", type=float, default=1800.0, help="seconds to wait for the ledger to apply the import"
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    invoices = make_invoices(args.invoices, rng)
    cases = make_payments(invoices, args.payments, rng)
    content = ocr_giro_file([c.payment for c in cases])
    results: dict[str, Any] = {"invoices": args.invoices, "payments": args.payments, "cores": os.cpu_count()}
    parsed = bench_parse(content, len(cases), args.rounds)
    ok = report_pure(args, parsed, bench_decide(invoices, cases), results)
    if not args.pure:
        from bench.matcher_stack import run_stack

        ok = asyncio.run(run_stack(args, results)) and ok
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    if not ok:
        print("matcher bench: a target was missed (see above)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
