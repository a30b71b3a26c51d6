"""The dunning step decision, pure: 200,000 overdue invoices decided in one loop, in one process.

    python -m bench.dunning_decide [--invoices 200000] [--seed 1]

Norwegian and Swedish, consumers and businesses, under the default policies; due dates spread over the
last 90 days, each invoice as far through its steps as its age makes it (some a step behind, so one is
due now), a tenth part-paid, a few paid since; holds on some (a payment in review, a dispute, an
AvtaleGiro debit in flight) and the day's bank files in. Prints decisions per second (target >= 20,000/s)
and how many were due, held, waiting or done, by reason.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta

from services.dunning.domain.interest import PartPayment
from services.dunning.domain.law import DEBTOR_KINDS, JURISDICTIONS, DebtorKind, Jurisdiction
from services.dunning.domain.policy import Policy, default_policy, timeline
from services.dunning.domain.schedule import (
    BankFiles,
    DebitInFlight,
    Holds,
    InvoiceState,
    Pause,
    PendingPayment,
    TakenStep,
    decide,
)

TARGET_PER_SECOND = 20_000
NOW = datetime(2026, 12, 1, 11, 0, tzinfo=UTC)  # a Tuesday, 12:00 in Oslo and Stockholm
TODAY = date(2026, 12, 1)


def build(count: int, rng: random.Random) -> list[tuple[InvoiceState, Policy]]:
    policies = {(j, k): default_policy(j, k) for j in JURISDICTIONS for k in DEBTOR_KINDS}
    found = []
    for n in range(count):
        jurisdiction: Jurisdiction = "NO" if n % 3 else "SE"
        kind: DebtorKind = "business" if n % 5 == 0 else "consumer"
        policy = policies[(jurisdiction, kind)]
        due = TODAY - timedelta(days=rng.randrange(-10, 90))
        principal = rng.randrange(100, 20_000) * 100
        age = (TODAY - due).days
        history = []
        for step, (sent, deadline) in zip(policy.steps, timeline(policy), strict=True):
            # Most invoices took every step their age allows; a third are one step behind (due now).
            if sent >= age or rng.random() < 0.3:
                break
            on = due + timedelta(days=sent)
            history.append(
                TakenStep(
                    step.kind,
                    on,
                    due + timedelta(days=deadline) if deadline is not None else None,
                    3_500 if step.has_fee and jurisdiction == "NO" else 0,
                )
            )
        payments = (
            (PartPayment(due + timedelta(days=rng.randrange(0, 30)), principal // 3),)
            if rng.random() < 0.1
            else ()
        )
        paid = rng.random() < 0.03
        found.append(
            (
                InvoiceState(
                    invoice_id=f"inv{n}",
                    version=3,
                    status="paid" if paid else "overdue",
                    customer_kind=kind,
                    due_date=due,
                    principal_minor=principal,
                    balance_minor=0 if paid else principal - sum(p.amount_minor for p in payments),
                    payments=payments,
                    stage=max((_stage(t.kind) for t in history), default=0),
                    history=tuple(history),
                ),
                policy,
            )
        )
    return found


def _stage(kind: str) -> int:
    return {"nudge": 0, "reminder": 1, "collection_notice": 2, "collection_handoff": 3}[kind]


def build_holds(count: int, rng: random.Random) -> Holds:
    ids = [f"inv{rng.randrange(count)}" for _ in range(count // 50)]
    third = len(ids) // 3
    return Holds(
        payments=[PendingPayment(f"pay{i}", (invoice_id,)) for i, invoice_id in enumerate(ids[:third])],
        pauses=[Pause(invoice_id, "dispute", "dispute") for invoice_id in ids[third : 2 * third]],
        debits=[
            DebitInFlight(invoice_id, "avtalegiro", TODAY, TODAY + timedelta(days=1))
            for invoice_id in ids[2 * third :]
        ],
        bank_files=BankFiles(cutoff=datetime(2026, 1, 1, 9).time(), last_import_on=TODAY),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--invoices", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    cases = build(args.invoices, rng)
    holds = build_holds(args.invoices, rng)
    gc.collect()

    started = time.perf_counter()
    decisions = [decide(invoice, policy, NOW, holds) for invoice, policy in cases]
    seconds = time.perf_counter() - started
    rate = len(cases) / seconds
    verdict = "ok" if rate >= TARGET_PER_SECOND else "BELOW TARGET"
    print(
        f"decide: {len(cases):,} invoices in {seconds:.2f} s = {rate:,.0f}/s "
        f"(target {TARGET_PER_SECOND:,}/s: {verdict})"
    )
    outcomes = Counter(d.outcome for d in decisions)
    reasons = Counter(f"{d.outcome}/{d.reason}" for d in decisions)
    steps = Counter(d.step.kind for d in decisions if d.outcome == "due" and d.step is not None)
    print("  outcomes: " + ", ".join(f"{o} {c:,}" for o, c in outcomes.most_common()))
    print("  reasons: " + ", ".join(f"{r} {c:,}" for r, c in reasons.most_common()))
    print("  due steps: " + ", ".join(f"{k} {c:,}" for k, c in steps.most_common()))


if __name__ == "__main__":
    main()
