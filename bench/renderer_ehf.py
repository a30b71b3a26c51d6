"""EHF documents per second on one core: rendering alone, rendering with Peppol validation, beside a
same-run baseline that serialises the same views to JSON.

    python -m bench.renderer_ehf                    # 300 generated views, 3 rounds, no PDF attached
    python -m bench.renderer_ehf --pdf-kb 60        # with a 60 kB PDF embedded in every document

The process is pinned to one CPU (where the OS allows) so the numbers are per core. The views are
tests/support/renderer_views.py's varied set: NO and SE sellers, every VAT category, credit notes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from services.renderer.adapters.ehf import render_ehf
from services.renderer.adapters.peppol import PeppolValidator
from services.renderer.domain.model import DocumentView
from tests.support.renderer_views import varied_views

console = Console()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal | date):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def as_json(view: DocumentView) -> bytes:
    return json.dumps(dataclasses.asdict(view), default=_plain, ensure_ascii=False).encode()


@dataclasses.dataclass(frozen=True)
class Run:
    name: str
    documents: int
    seconds: float
    per_document_ms: list[float] = dataclasses.field(repr=False)

    @property
    def rate(self) -> float:
        return self.documents / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.per_document_ms)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def measure(name: str, views: list[DocumentView], rounds: int, work: Callable[[DocumentView], object]) -> Run:
    for view in views[:20]:
        work(view)  # warm up (JIT of the SaxonC native image, lxml caches)
    timings: list[float] = []
    started = time.perf_counter()
    for _ in range(rounds):
        for view in views:
            t0 = time.perf_counter()
            work(view)
            timings.append((time.perf_counter() - t0) * 1000)
    return Run(name, len(timings), time.perf_counter() - started, timings)


def pin_to_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity here)"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--views", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pdf-kb", type=int, default=0, help="embed a PDF of this size (0: none)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="bench/results/renderer_ehf.json")
    args = parser.parse_args()

    pinned = pin_to_one_core()
    views = varied_views(args.views, seed=args.seed)
    pdf = (b"%PDF-1.7\n" + os.urandom(args.pdf_kb * 1024)) if args.pdf_kb else None
    started = time.perf_counter()
    validator = PeppolValidator()
    compile_seconds = time.perf_counter() - started

    def validated(view: DocumentView) -> None:
        report = validator.validate(render_ehf(view, pdf=pdf))
        if not report.valid:
            raise SystemExit(f"{view.number}: {report.summary()}")

    def validate_only(xml: bytes) -> None:
        validator.validate(xml)

    documents = {view.number: render_ehf(view, pdf=pdf) for view in views}
    runs = [
        measure("JSON (baseline)", views, args.rounds, as_json),
        measure("EHF, no validation", views, args.rounds, lambda v: render_ehf(v, pdf=pdf)),
        measure("EHF + Peppol validation", views, args.rounds, validated),
        measure("validation alone", views, args.rounds, lambda v: validate_only(documents[v.number])),
    ]
    baseline = runs[0].rate
    table = Table(title=f"EHF rendering, {len(views)} views x {args.rounds} rounds, {pinned}")
    for column in ("form", "docs/s", "p50 ms", "p99 ms", "vs JSON"):
        table.add_column(column, justify="left" if column == "form" else "right")
    for run in runs:
        table.add_row(
            run.name,
            f"{run.rate:,.0f}",
            f"{run.percentile(0.5):.3f}",
            f"{run.percentile(0.99):.3f}",
            f"{run.rate / baseline:.3f}",
        )
    console.print(table)
    sizes = [len(xml) for xml in documents.values()]
    median_kb = statistics.median(sizes) / 1024
    validation_ms = statistics.mean(runs[3].per_document_ms)
    console.print(
        f"EHF size: median {median_kb:.1f} kB; rules compiled in {compile_seconds:.2f} s; "
        f"validation {validation_ms:.1f} ms per document on average"
    )
    render, checked = runs[1].rate, runs[2].rate
    console.print(
        f"ratios: EHF/JSON = {render / baseline:.3f}, EHF+validation/JSON = {checked / baseline:.4f}, "
        f"EHF+validation/EHF = {checked / render:.3f}"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "views": len(views),
                "rounds": args.rounds,
                "pdf_kb": args.pdf_kb,
                "pinned": pinned,
                "compile_seconds": compile_seconds,
                "runs": {
                    r.name: {"docs_per_s": r.rate, "p50_ms": r.percentile(0.5), "p99_ms": r.percentile(0.99)}
                    for r in runs
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
