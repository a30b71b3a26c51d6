"""The demo's customers behave the same for the same invoices and seed, in the planned mix."""

from __future__ import annotations

from collections import Counter

from fordring.ledger.v1 import ledger_pb2 as pb

from services.cli.demo_lifecycle import OUTCOMES, plan_outcomes


def _invoices(n: int) -> list[pb.Invoice]:
    return [pb.Invoice(id=f"id-{i}", external_id=f"DEMO-{i:05d}") for i in range(n)]


def test_same_invoices_and_seed_same_plan_whatever_the_order() -> None:
    invoices = _invoices(200)
    assert plan_outcomes(invoices, seed=3) == plan_outcomes(list(reversed(invoices)), seed=3)
    assert plan_outcomes(invoices, seed=3) != plan_outcomes(invoices, seed=4)


def test_every_outcome_occurs_roughly_as_often_as_planned() -> None:
    counts = Counter(plan_outcomes(_invoices(2000), seed=1).values())
    expected = Counter(OUTCOMES)
    for outcome, share in expected.items():
        assert abs(counts[outcome] / 2000 - share / len(OUTCOMES)) < 0.05, outcome
