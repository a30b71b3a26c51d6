"""The step decision is cheap enough to run over every open invoice (bench/dunning_decide.py measures
200,000; its target is 20,000 decisions/s). Here a lenient floor that catches an accidental slowdown."""

from __future__ import annotations

import random
import time

from bench.dunning_decide import NOW, build, build_holds
from services.dunning.domain.schedule import decide


def test_thousands_of_decisions_per_second() -> None:
    rng = random.Random(3)
    cases = build(4_000, rng)
    holds = build_holds(4_000, rng)
    decide(*cases[0], NOW, holds)  # the year's holidays are read once
    started = time.perf_counter()
    decisions = [decide(invoice, policy, NOW, holds) for invoice, policy in cases]
    rate = len(cases) / (time.perf_counter() - started)
    assert {d.outcome for d in decisions} >= {"due", "waiting", "done"}
    assert rate > 5_000, f"{rate:,.0f} decisions/s"
